"""A small read/search FHIR R4 endpoint over the sandbox patients, mounted at ``/fhir``.

It answers exactly what the service's prefetch templates ask (``cds_service.hooks.services.PREFETCH``), so the
service's fallback fetch runs for real over HTTP in the sandbox's "let the service fetch" mode:

- ``GET /fhir/Patient/{id}`` (and any ``/fhir/{type}/{id}``);
- ``GET /fhir/{type}?patient={id}`` for MedicationRequest, MedicationStatement, MedicationDispense, Condition,
  AllergyIntolerance, Observation; ``code=system|code,...`` (token OR-list), ``_sort=-date`` / ``date``,
  ``_count`` (default 50) with ``next`` links (``_offset``);
- ``GET /fhir/metadata``.

Unknown search parameters get a 400 OperationOutcome instead of being ignored, so a prefetch template that drifts
from what the sandbox understands fails loudly in the tests. A fixture's ``failSearches`` makes every search of
those types for that patient answer 500, which is how the sandbox shows the data-unavailable card.
The same search code builds the sandbox's prefetch (``build_prefetch``), so both paths see the same data.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from cds_service.errors import operation_outcome
from cds_service.fhir.values import as_dict, as_list, as_str
from cds_service.hooks.services import PREFETCH
from cds_service.sandbox.patients import PatientStore

DEFAULT_COUNT = 50
MAX_COUNT = 1000
FHIR_JSON = "application/fhir+json"
_IGNORED = frozenset({"_format", "_total", "_pretty", "_summary", "_elements"})
_SORT_KEYS = (
    "effectiveDateTime", "effectiveInstant", "issued", "authoredOn", "onsetDateTime", "recordedDate",
    "whenHandedOver", "whenPrepared", "dateAsserted",
)  # fmt: skip


class SearchError(ValueError):
    """The search asks for something this small server does not support (answered 400)."""


class SimulatedOutage(RuntimeError):
    """A fixture asked for this search to fail (``failSearches``; answered 500)."""


def _date_of(res: dict[str, Any]) -> str:
    for key in _SORT_KEYS:
        if isinstance(value := res.get(key), str):
            return value
    period = as_dict(res.get("effectivePeriod"))
    return as_str(period.get("start")) or ""


def _codes_of(res: dict[str, Any]) -> set[tuple[str | None, str]]:
    out: set[tuple[str | None, str]] = set()
    for key in ("code", "medicationCodeableConcept"):
        for coding in as_list(as_dict(res.get(key)).get("coding")):
            c = as_dict(coding)
            if code := as_str(c.get("code")):
                out.add((as_str(c.get("system")), code))
    return out


def _token_matches(token: str, codes: set[tuple[str | None, str]]) -> bool:
    if "|" in token:
        system, code = token.split("|", 1)
        if not system:  # "|code": a code with no system
            return (None, code) in codes
        return (system, code) in codes if code else any(s == system for s, _ in codes)
    return any(c == token for _, c in codes)


def _patient_id(value: str) -> str:
    return value.rsplit("Patient/", 1)[-1] if "Patient/" in value else value


def search(store: PatientStore, rtype: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every resource of ``rtype`` matching ``params`` (paging parameters are the caller's business)."""
    patient: str | None = None
    tokens: list[str] | None = None
    sort: str | None = None
    for name, value in params:
        if name in ("patient", "subject"):
            patient = _patient_id(value)
        elif name == "code":
            tokens = [t for t in value.split(",") if t]
        elif name == "_sort":
            sort = value
        elif name == "_id":
            one = store.read(rtype, value)
            return [one] if one else []
        elif name not in ("_count", "_offset") and name not in _IGNORED:
            raise SearchError(f"search parameter {name!r} is not supported by the sandbox FHIR server")
    if sort not in (None, "date", "-date"):
        raise SearchError(f"_sort={sort!r} is not supported (only date and -date)")
    found: list[dict[str, Any]]
    if patient is not None:
        sandbox_patient = store.patients.get(patient)
        if sandbox_patient and rtype in sandbox_patient.fail_searches:
            raise SimulatedOutage(f"simulated outage: {rtype} searches fail for this sandbox patient")
        found = (
            store.resources_of(patient, rtype)
            if rtype != "Patient"
            else [r for r in [store.read("Patient", patient)] if r]
        )
    else:
        found = list(store.by_type.get(rtype, {}).values())
    if tokens is not None:
        found = [r for r in found if any(_token_matches(t, _codes_of(r)) for t in tokens)]
    if sort is not None:
        found = sorted(found, key=_date_of, reverse=sort.startswith("-"))
    return found


def _searchset(
    items: list[dict[str, Any]], total: int, links: list[dict[str, str]], base: str | None = None
) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": total}
    if links:
        bundle["link"] = links
    if items:
        bundle["entry"] = [
            {
                **({"fullUrl": f"{base}/{r['resourceType']}/{r['id']}"} if base else {}),
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in items
        ]
    return bundle


def _fhir(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON)


def _int(params: list[tuple[str, str]], name: str, default: int) -> int:
    for key, value in params:
        if key == name:
            try:
                number = int(value)
            except ValueError:
                raise SearchError(f"{name} must be a whole number") from None
            if number < 0:
                raise SearchError(f"{name} must not be negative")
            return number
    return default


def fhir_router(store: PatientStore, max_count: int = MAX_COUNT) -> APIRouter:
    """The ``/fhir`` routes. ``max_count`` caps the page size whatever ``_count`` asks (tests use 1 to force paging)."""
    router = APIRouter(prefix="/fhir", tags=["sandbox FHIR server"])

    @router.get("/metadata")
    async def metadata() -> Response:
        types = sorted(set(store.by_type) | {"Patient"})
        return _fhir(
            {
                "resourceType": "CapabilityStatement",
                "status": "active",
                "date": "2026-01-01",
                "kind": "instance",
                "fhirVersion": "4.0.1",
                "format": ["json"],
                "software": {"name": "naltrexone-cds sandbox FHIR server"},
                "rest": [
                    {
                        "mode": "server",
                        "resource": [
                            {
                                "type": t,
                                "interaction": [{"code": "read"}, {"code": "search-type"}],
                                "searchParam": [
                                    {"name": "patient", "type": "reference"},
                                    {"name": "code", "type": "token"},
                                ],
                            }
                            for t in types
                        ],
                    }
                ],
            }
        )

    @router.get("/{rtype}/{rid}")
    async def read(rtype: str, rid: str) -> Response:
        found = store.read(rtype, rid)
        if found is None:
            return _fhir(operation_outcome(f"{rtype}/{rid} is not in the sandbox", code="not-found"), 404)
        return _fhir(found)

    @router.get("/{rtype}")
    async def search_type(rtype: str, request: Request) -> Response:
        params = parse_qsl(request.url.query, keep_blank_values=True)
        try:
            count = min(_int(params, "_count", DEFAULT_COUNT), max_count)
            offset = _int(params, "_offset", 0)
            found = search(store, rtype, params)
        except SearchError as exc:
            return _fhir(operation_outcome(str(exc), code="not-supported"), 400)
        except SimulatedOutage as exc:
            return _fhir(operation_outcome(str(exc), code="transient"), 500)
        page = found[offset : offset + count] if count else []
        links = [{"relation": "self", "url": str(request.url)}]
        if count and offset + count < len(found):
            links.append({"relation": "next", "url": str(request.url.include_query_params(_offset=offset + count))})
        base = str(request.base_url).rstrip("/") + "/fhir"
        return _fhir(_searchset(page, len(found), links, base))

    return router


def build_prefetch(store: PatientStore, patient_id: str, base: str | None = None) -> dict[str, Any]:
    """What an EHR would prefetch for the service's templates: every key, from the same search code.

    A key whose search fails (``failSearches``) holds an OperationOutcome, as CDS Hooks 2.0 says a client sends
    when its own fetch failed.
    """
    out: dict[str, Any] = {}
    for pk in PREFETCH:
        query = pk.template.replace("{{context.patientId}}", patient_id)
        path, _, qs = query.partition("?")
        if not qs:
            rtype, _, rid = path.partition("/")
            found = store.read(rtype, rid)
            out[pk.key] = found if found is not None else None
            continue
        try:
            items = search(store, path, parse_qsl(qs, keep_blank_values=True))
        except SimulatedOutage as exc:
            out[pk.key] = operation_outcome(str(exc), code="transient")
            continue
        out[pk.key] = _searchset(items, len(items), [], base)
    return out
