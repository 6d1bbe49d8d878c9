"""Sandbox patients: the project's fixtures (``fixtures/patients``) and any FHIR R4 patient Bundle, ready to serve.

Loading does three things to each Bundle file:

1. **Metadata.** A fixture carries a top-level ``"_sandbox"`` object (description, expected rule ids, the
   suggested order, searches the sandbox FHIR server must fail); it is removed before anything else sees the
   Bundle. Other Bundles get a description from the file name.
2. **References.** Transaction Bundles (Synthea) name resources by ``fullUrl: urn:uuid:...`` and reference them
   the same way; every resource gets an ``id`` and every ``urn:uuid:`` / absolute ``fullUrl`` reference that
   resolves inside the file becomes ``Type/id``, so the FHIR server can answer ``?patient=<id>``.
3. **Dates.** Fixtures are written as of the day in ``_sandbox.anchor``; every full date and dateTime is moved by
   (today - anchor) days, so "a urine screen yesterday" stays yesterday for ever. Other Bundles (whose dates
   may end years ago) are moved so that their newest clinical event lands yesterday; ``roll="none"`` keeps them.
   Only whole days are added: times of day and time zones are kept as written. Year-only and year-month partial
   dates are left alone.

See ``fixtures/patients/README.md`` for the fixture format.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from cds_service.fhir.values import as_dict, as_list, as_str

Roll = Literal["anchor", "newest", "none"]

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?$")
# Keys whose string values are identifiers or text, never dates, even when they look like one.
_NOT_DATES = frozenset({"id", "reference", "fullUrl", "url", "system", "code", "display", "text", "div", "value"})
# Keys that record when something clinical happened: the newest of them is the patient's "last event".
EVENT_KEYS = frozenset(
    {
        "effectiveDateTime", "effectiveInstant", "issued", "authoredOn", "onsetDateTime", "recordedDate",
        "whenHandedOver", "whenPrepared", "dateAsserted", "occurrenceDateTime", "performedDateTime",
    }
)  # fmt: skip
SUBJECT_KEYS = ("subject", "patient", "beneficiary")


class PatientFileError(ValueError):
    """A patient file cannot be used: not JSON, not a FHIR Bundle or resource, or fixture metadata is invalid."""


@dataclass(frozen=True, slots=True)
class OrderChoice:
    """The naltrexone order a fixture suggests (and the defaults a form or the ``check`` command starts from).

    ``dose`` is in mg for oral and injection, in tablets for the bupropion/naltrexone combination.
    ``frequency`` is a key of ``cds_service.sandbox.orders.FREQUENCIES``.
    """

    product: str = "oral"
    dose: float = 50
    frequency: str = "daily"
    supply_days: int = 30
    refills: int = 11

    def as_json(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "dose": self.dose,
            "frequency": self.frequency,
            "supplyDays": self.supply_days,
            "refills": self.refills,
        }


@dataclass(slots=True)
class SandboxPatient:
    id: str
    name: str
    description: str
    source: str  # file name it came from
    group: str  # "fixtures" or the folder/file it was loaded from
    expect: tuple[str, ...] | None  # rule ids a fixture expects; None for other Bundles
    order: OrderChoice | None
    fail_searches: frozenset[str]
    shift_days: int
    resource: dict[str, Any]  # the Patient


@dataclass
class PatientStore:
    """Every loaded resource, by type and id, plus the patients and what references each of them."""

    patients: dict[str, SandboxPatient] = field(default_factory=dict)
    by_type: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    by_patient: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add_file(self, loaded: LoadedFile) -> None:
        for patient in loaded.patients:
            if patient.id in self.patients:
                raise PatientFileError(
                    f"{loaded.source}: patient id {patient.id!r} is also in {self.patients[patient.id].source}"
                )
        for res in loaded.resources:
            rtype, rid = res["resourceType"], res["id"]
            self.by_type.setdefault(rtype, {})[rid] = res
            if rtype != "Patient" and (pid := patient_of(res)):
                self.by_patient.setdefault(pid, []).append(res)
        for patient in loaded.patients:
            self.patients[patient.id] = patient

    def read(self, rtype: str, rid: str) -> dict[str, Any] | None:
        return self.by_type.get(rtype, {}).get(rid)

    def resources_of(self, patient_id: str, rtype: str | None = None) -> list[dict[str, Any]]:
        found = self.by_patient.get(patient_id, [])
        return [r for r in found if rtype is None or r.get("resourceType") == rtype]


@dataclass(frozen=True, slots=True)
class LoadedFile:
    source: str
    resources: list[dict[str, Any]]
    patients: list[SandboxPatient]


# -- dates -------------------------------------------------------------------------------------------------------
def _shift_string(value: str, days: int) -> str:
    m = _DATE.match(value)
    if not m:
        return value
    try:
        moved = date(int(m[1]), int(m[2]), int(m[3])) + timedelta(days=days)
    except (ValueError, OverflowError):
        return value
    return moved.isoformat() + (m[4] or "")


def shift_dates(value: Any, days: int) -> Any:
    """A copy of ``value`` with every full FHIR date/dateTime string moved by ``days`` days."""
    copy = json.loads(json.dumps(value))
    _shift_in_place(copy, days)
    return copy


def _shift_in_place(value: Any, days: int) -> None:
    """Move every full date/dateTime inside ``value`` (dicts and lists changed in place; iterative, no recursion)."""
    stack = [value]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            if isinstance(v, str):
                if k not in _NOT_DATES and len(v) >= 10 and v[4] == "-":
                    node[k] = _shift_string(v, days)
            elif isinstance(v, dict | list):
                if isinstance(v, list) and k in _NOT_DATES:
                    continue
                stack.append(v)


def _walk_dates(value: Any) -> Iterator[tuple[str, date]]:
    """(key, date) for every full date/dateTime string inside ``value`` (list items report their list's key)."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        key, node = stack.pop()
        items = node.items() if isinstance(node, dict) else ((key, v) for v in node)
        for k, v in items:
            if isinstance(v, str):
                if k not in _NOT_DATES and len(v) >= 10 and v[4] == "-" and (m := _DATE.match(v)):
                    try:
                        yield k, date(int(m[1]), int(m[2]), int(m[3]))
                    except ValueError:
                        continue
            elif isinstance(v, dict | list):
                stack.append((k, v))


def newest_event(resources: Iterable[dict[str, Any]]) -> date | None:
    """The date of the most recent clinical event (result, order, diagnosis, dispense...) in ``resources``."""
    dates = [d for res in resources for key, d in _walk_dates(res) if key in EVENT_KEYS]
    if not dates:  # e.g. only Encounters: fall back on any date that is not a birth date
        dates = [d for res in resources for key, d in _walk_dates(res) if key not in ("birthDate", "deceasedDateTime")]
    return max(dates) if dates else None


# -- references --------------------------------------------------------------------------------------------------
def _rewrite_references_in_place(value: Any, targets: dict[str, str]) -> None:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and ref in targets:
                node["reference"] = targets[ref]
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        else:
            stack.extend(v for v in node if isinstance(v, dict | list))


def patient_of(resource: dict[str, Any]) -> str | None:
    """The id of the Patient a resource is about (``subject``/``patient``/``beneficiary``), if it names one."""
    for key in SUBJECT_KEYS:
        ref = as_str(as_dict(resource.get(key)).get("reference"))
        if ref and "Patient/" in ref:
            return ref.rsplit("Patient/", 1)[1].split("/")[0] or None
    return None


def _entries(data: dict[str, Any], source: str) -> list[tuple[str | None, dict[str, Any]]]:
    if data.get("resourceType") != "Bundle":
        return [(None, data)]
    out = []
    for entry in as_list(data.get("entry")):
        res = as_dict(entry).get("resource")
        if isinstance(res, dict) and isinstance(res.get("resourceType"), str):
            out.append((as_str(as_dict(entry).get("fullUrl")), res))
    if not out:
        raise PatientFileError(f"{source}: the Bundle has no resources")
    return out


def _with_ids(entries: list[tuple[str | None, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The entries' resources, each with an id, references to other entries' fullUrls rewritten as Type/id.

    Changes the resources in place: they come from a document this module just parsed.
    """
    targets: dict[str, str] = {}
    counter = itertools.count(1)
    resources_: list[dict[str, Any]] = []
    for full_url, res in entries:
        rtype = res["resourceType"]
        rid = as_str(res.get("id"))
        if rid is None and full_url:
            rid = full_url.rstrip("/").rsplit("/", 1)[-1].removeprefix("urn:uuid:")
        if rid is None:
            rid = f"{rtype.lower()}-{next(counter)}"
        res["id"] = rid
        if full_url:
            targets[full_url] = f"{rtype}/{rid}"
        resources_.append(res)
    if targets:
        for res in resources_:
            _rewrite_references_in_place(res, targets)
    return resources_


# -- metadata ----------------------------------------------------------------------------------------------------
def _name(patient: dict[str, Any]) -> str:
    for name in as_list(patient.get("name")):
        n = as_dict(name)
        if text := as_str(n.get("text")):
            return text
        given = " ".join(g for g in as_list(n.get("given")) if isinstance(g, str))
        family = as_str(n.get("family")) or ""
        if given or family:
            return f"{given} {family}".strip()
    return as_str(patient.get("id")) or "unnamed patient"


def _order(raw: Any, source: str) -> OrderChoice:
    from cds_service.sandbox.orders import FREQUENCIES, PRODUCTS

    o = as_dict(raw)
    product = o.get("product", "oral")
    if product not in PRODUCTS:
        raise PatientFileError(f"{source}: _sandbox.order.product must be one of {sorted(PRODUCTS)}")
    frequency = o.get("frequency", PRODUCTS[product].frequency)
    if frequency not in FREQUENCIES:
        raise PatientFileError(f"{source}: _sandbox.order.frequency must be one of {sorted(FREQUENCIES)}")
    try:
        return OrderChoice(
            product=product,
            dose=float(o.get("doseMg", o.get("dose", PRODUCTS[product].dose))),
            frequency=frequency,
            supply_days=int(o.get("supplyDays", PRODUCTS[product].supply_days)),
            refills=int(o.get("refills", 11)),
        )
    except (TypeError, ValueError):
        raise PatientFileError(
            f"{source}: _sandbox.order has a dose, supplyDays or refills that is not a number"
        ) from None


def _metadata(raw: Any, source: str) -> dict[str, Any]:
    meta = as_dict(raw)
    expect = meta.get("expect")
    if not isinstance(meta.get("description"), str) or not meta["description"].strip():
        raise PatientFileError(f"{source}: _sandbox.description (one line: what the patient should show) is required")
    if not isinstance(expect, list) or not all(isinstance(e, str) for e in expect):
        raise PatientFileError(f"{source}: _sandbox.expect must be a list of rule ids")
    try:
        anchor = date.fromisoformat(meta["anchor"])
    except (KeyError, TypeError, ValueError):
        raise PatientFileError(
            f"{source}: _sandbox.anchor must be an ISO date (the day the file was written as)"
        ) from None
    fail = meta.get("failSearches", [])
    if not isinstance(fail, list) or not all(isinstance(f, str) for f in fail):
        raise PatientFileError(f"{source}: _sandbox.failSearches must be a list of resource types")
    return {"description": meta["description"].strip(), "expect": tuple(expect), "anchor": anchor, "fail": fail}


# -- loading -----------------------------------------------------------------------------------------------------
def load_data(
    data: Any, source: str, today: date, *, roll: Roll = "anchor", group: str = "fixtures", copy: bool = True
) -> LoadedFile:
    """Turn one parsed JSON document (a fixture, a patient Bundle, or a single Patient) into served resources.

    ``roll="anchor"`` shifts fixtures by their anchor and other Bundles so their newest event is yesterday;
    ``"newest"`` does the latter for every file; ``"none"`` keeps every date as written. ``copy=False`` lets the
    loader change ``data`` in place (for a document it has just parsed itself).
    """
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise PatientFileError(f"{source}: not a FHIR resource or Bundle (no resourceType)")
    if copy:  # ids, references and dates are changed in place
        data = json.loads(json.dumps(data))
    raw_meta = data.pop("_sandbox", None)
    meta = _metadata(raw_meta, source) if raw_meta is not None else None
    resources_ = _with_ids(_entries(data, source))

    shift = 0
    if roll != "none":
        if meta is not None and roll == "anchor":
            shift = (today - meta["anchor"]).days
        elif (newest := newest_event(r for r in resources_ if r["resourceType"] != "Patient")) is not None:
            shift = (today - timedelta(days=1) - newest).days
    if shift:
        for res in resources_:
            _shift_in_place(res, shift)

    patients = [r for r in resources_ if r["resourceType"] == "Patient"]
    if meta is not None and len(patients) != 1:
        raise PatientFileError(f"{source}: a fixture holds exactly one Patient (found {len(patients)})")
    loaded = []
    for p in patients:
        if meta:
            description = meta["description"]
        elif shift:
            description = f"FHIR R4 Bundle {source}; dates moved {shift:+d} days so its newest event was yesterday"
        else:
            description = f"FHIR R4 Bundle {source}"
        loaded.append(
            SandboxPatient(
                id=p["id"],
                name=_name(p),
                description=description,
                source=source,
                group=group,
                expect=meta["expect"] if meta else None,
                order=_order(as_dict(raw_meta).get("order"), source) if meta else None,
                fail_searches=frozenset(meta["fail"]) if meta else frozenset(),
                shift_days=shift,
                resource=p,
            )
        )
    return LoadedFile(source, resources_, loaded)


def load_file(path: Path, today: date, *, roll: Roll = "anchor", group: str | None = None) -> LoadedFile:
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise PatientFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PatientFileError(f"{path}: not valid JSON ({exc})") from None
    return load_data(data, path.name, today, roll=roll, group=group or str(path.parent), copy=False)


def fixture_files() -> list[tuple[str, bytes]]:
    """The project's fixture patients (installed as the package ``cds_service.fixture_patients``)."""
    root = resources.files("cds_service.fixture_patients")
    return sorted((e.name, e.read_bytes()) for e in root.iterdir() if e.name.endswith(".json"))


def load_fixtures(today: date) -> list[LoadedFile]:
    out = []
    for name, raw in fixture_files():
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PatientFileError(f"{name}: not valid JSON ({exc})") from None
        out.append(load_data(data, name, today, roll="anchor", group="fixtures", copy=False))
    return out


def load_paths(paths: Iterable[Path], today: date, *, roll: Roll = "anchor") -> tuple[list[LoadedFile], list[str]]:
    """Load every ``*.json`` under the given folders (or the given files); returns (files, warnings).

    Files that hold no Patient (Synthea's hospital and practitioner bundles) are still loaded: patients reference
    their Organizations and Practitioners. Unreadable files are reported, not fatal.
    """
    loaded: list[LoadedFile] = []
    warnings: list[str] = []
    for path in paths:
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        if path.is_dir() and not files:
            warnings.append(f"{path}: no *.json files")
        for f in files:
            try:
                loaded.append(load_file(f, today, roll=roll, group=str(path)))
            except PatientFileError as exc:
                warnings.append(str(exc))
    return loaded, warnings


def build_store(files: Iterable[LoadedFile]) -> tuple[PatientStore, list[str]]:
    """One store from loaded files; a patient id seen twice keeps the first and is reported."""
    store = PatientStore()
    warnings = []
    for f in files:
        try:
            store.add_file(f)
        except PatientFileError as exc:
            warnings.append(str(exc))
    return store, warnings
