"""The ``/sandbox`` page and its JSON API: patients with chart summaries, and hook requests for an order.

The page itself calls the real service endpoints (``/cds-services/...``); this API only plays the EHR's part:
it lists patients, shows their chart, and builds the request an EHR would send for the order on screen (with
prefetch built from the chart, or without prefetch and with ``fhirServer`` pointing at the sandbox's ``/fhir``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from cds_service.errors import BadRequest, NotFound
from cds_service.fhir.values import as_dict, as_list, as_str, concept, parse_date
from cds_service.hooks.services import PREFETCH
from cds_service.sandbox.fhir_server import build_prefetch
from cds_service.sandbox.orders import (
    FREQUENCIES,
    PRODUCTS,
    SERVICE_FOR_HOOK,
    default_choice,
    describe,
    draft_order,
    hook_request,
)
from cds_service.sandbox.patients import OrderChoice, PatientStore, SandboxPatient

if TYPE_CHECKING:
    from cds_service.sandbox.app import SandboxActivity

STATIC_DIR = Path(__file__).parent / "static"
LIST_LIMIT = 40

# LOINC codes the service's prefetch asks for: the page marks these results as "read by the service".
RELEVANT_LOINC = frozenset(
    token.split("|", 1)[1]
    for pk in PREFETCH
    if "code=" in pk.template
    for token in pk.template.split("code=", 1)[1].split("&", 1)[0].split(",")
)


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    product: Literal["oral", "injection", "combo"]
    dose: float = Field(gt=0, le=5000)
    frequency: str
    supply_days: int = Field(alias="supplyDays", gt=0, le=400)
    refills: int = Field(ge=0, le=24)


class HookRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    patient_id: str = Field(alias="patientId", min_length=1)
    hook: Literal["order-select", "order-sign"]
    mode: Literal["prefetch", "fetch"] = "prefetch"
    draft_id: str | None = Field(default=None, alias="draftId", pattern=r"^[A-Za-z0-9\-.]{1,64}$")
    order: OrderIn


# -- chart summaries ---------------------------------------------------------------------------------------------
def _age(birth: date | None, today: date) -> int | None:
    if birth is None:
        return None
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def _label(value: Any) -> str:
    c = concept(value)
    return c.label if (c.codings or c.text) else "unnamed"


def _code(value: Any) -> str | None:
    short = {
        "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
        "http://loinc.org": "LOINC",
        "http://snomed.info/sct": "SNOMED",
        "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
        "http://hl7.org/fhir/sid/icd-10": "ICD-10",
    }
    for c in concept(value).codings:
        if c.code:
            return f"{short.get(c.system or '', c.system or 'code')} {c.code}"
    return None


def _status(value: Any) -> str | None:
    for c in concept(value).codings:
        if c.code:
            return c.code
    return None


def _medication_name(res: dict[str, Any], store: PatientStore) -> tuple[str, str | None]:
    if "medicationCodeableConcept" in res:
        return _label(res["medicationCodeableConcept"]), _code(res["medicationCodeableConcept"])
    ref = as_dict(res.get("medicationReference"))
    target = as_str(ref.get("reference")) or ""
    med: dict[str, Any] | None = None
    if target.startswith("#"):
        med = next((c for c in as_list(res.get("contained")) if as_dict(c).get("id") == target[1:]), None)
    elif "/" in target:
        med = store.read(*target.split("/", 1))
    if isinstance(med, dict) and med.get("code"):
        return _label(med["code"]), _code(med["code"])
    return as_str(ref.get("display")) or "unnamed medication", None


def _medications(store: PatientStore, pid: str) -> list[dict[str, Any]]:
    out = []
    for res in store.resources_of(pid):
        rtype = res.get("resourceType")
        if rtype not in ("MedicationRequest", "MedicationStatement", "MedicationDispense"):
            continue
        name, code = _medication_name(res, store)
        dispense = as_dict(res.get("dispenseRequest"))
        validity = as_dict(dispense.get("validityPeriod"))
        dosage = next((as_str(as_dict(d).get("text")) for d in as_list(res.get("dosageInstruction"))), None)
        if rtype == "MedicationRequest":
            when, kind = as_str(res.get("authoredOn")), "order"
            details = [dosage, f"valid until {validity['end']}" if validity.get("end") else None]
        elif rtype == "MedicationDispense":
            when, kind = as_str(res.get("whenHandedOver")), "dispensed"
            supply = as_dict(res.get("daysSupply")).get("value")
            details = [dosage, f"{supply:g} days' supply" if isinstance(supply, int | float) else None]
        else:
            period = as_dict(res.get("effectivePeriod"))
            when = as_str(res.get("effectiveDateTime")) or as_str(period.get("start"))
            kind = "statement"
            details = [dosage, f"until {period['end']}" if period.get("end") else None]
        out.append(
            {
                "name": name,
                "code": code,
                "kind": kind,
                "status": as_str(res.get("status")) or "unknown",
                "date": (when or "")[:10] or None,
                "detail": "; ".join(d for d in details if d) or None,
                "ref": f"{rtype}/{res['id']}",
            }
        )
    current = {"active", "on-hold", "intended", "in-progress"}
    out.sort(key=lambda m: m["date"] or "", reverse=True)
    out.sort(key=lambda m: m["status"] not in current)
    return out


def _value(res: dict[str, Any]) -> str | None:
    if isinstance(q := res.get("valueQuantity"), dict) and q.get("value") is not None:
        value = q["value"]
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        return f"{shown} {as_str(q.get('unit')) or as_str(q.get('code')) or ''}".strip()
    if isinstance(res.get("valueCodeableConcept"), dict):
        return _label(res["valueCodeableConcept"])
    for key in ("valueString", "valueBoolean", "valueInteger"):
        if key in res:
            return str(res[key])
    if res.get("component"):
        parts = [f"{_label(c.get('code'))}: {_value(c)}" for c in as_list(res["component"]) if isinstance(c, dict)]
        return "; ".join(p for p in parts if not p.endswith("None")) or None
    return None


def _range(res: dict[str, Any]) -> str | None:
    rng = as_dict(next(iter(as_list(res.get("referenceRange"))), None))
    low, high = as_dict(rng.get("low")).get("value"), as_dict(rng.get("high")).get("value")
    unit = as_str(as_dict(rng.get("high")).get("unit")) or as_str(as_dict(rng.get("low")).get("unit")) or ""
    if low is not None and high is not None:
        return f"{low:g}–{high:g} {unit}".strip()
    if high is not None:
        return f"≤ {high:g} {unit}".strip()
    if low is not None:
        return f"≥ {low:g} {unit}".strip()
    return as_str(rng.get("text"))


def _labs(store: PatientStore, pid: str) -> list[dict[str, Any]]:
    out = []
    for res in store.resources_of(pid, "Observation"):
        codes = {c.code for c in concept(res.get("code")).codings if c.system == "http://loinc.org"}
        period = as_dict(res.get("effectivePeriod"))
        when = as_str(res.get("effectiveDateTime")) or as_str(period.get("start")) or as_str(res.get("issued"))
        flag = None
        for interp in as_list(res.get("interpretation")):
            flag = _status(interp) or flag
        out.append(
            {
                "name": _label(res.get("code")),
                "code": _code(res.get("code")),
                "value": _value(res),
                "flag": flag,
                "range": _range(res),
                "date": (when or "")[:10] or None,
                "status": as_str(res.get("status")),
                "relevant": bool(codes & RELEVANT_LOINC),
                "ref": f"Observation/{res['id']}",
            }
        )
    out.sort(key=lambda o: o["date"] or "", reverse=True)
    return out


def _problems(store: PatientStore, pid: str) -> list[dict[str, Any]]:
    out = []
    for res in store.resources_of(pid, "Condition"):
        abated = as_str(res.get("abatementDateTime")) or as_str(as_dict(res.get("abatementPeriod")).get("end"))
        onset = as_str(res.get("onsetDateTime")) or as_str(as_dict(res.get("onsetPeriod")).get("start"))
        out.append(
            {
                "name": _label(res.get("code")),
                "code": _code(res.get("code")),
                "status": _status(res.get("clinicalStatus")) or ("resolved" if abated else "unknown"),
                "verification": _status(res.get("verificationStatus")),
                "onset": (onset or "")[:10] or None,
                "abated": (abated or "")[:10] or None,
                "ref": f"Condition/{res['id']}",
            }
        )
    out.sort(key=lambda c: c["onset"] or "", reverse=True)
    out.sort(key=lambda c: c["status"] not in ("active", "recurrence", "relapse"))
    return out


def _allergies(store: PatientStore, pid: str) -> list[dict[str, Any]]:
    out = []
    for res in store.resources_of(pid, "AllergyIntolerance"):
        reactions = [_label(m) for r in as_list(res.get("reaction")) for m in as_list(as_dict(r).get("manifestation"))]
        out.append(
            {
                "name": _label(res.get("code")),
                "code": _code(res.get("code")),
                "status": _status(res.get("clinicalStatus")) or "unknown",
                "criticality": as_str(res.get("criticality")),
                "reactions": reactions,
                "recorded": (as_str(res.get("recordedDate")) or "")[:10] or None,
                "ref": f"AllergyIntolerance/{res['id']}",
            }
        )
    return out


def _listing(p: SandboxPatient, today: date) -> dict[str, Any]:
    res = p.resource
    identifiers = [as_dict(i) for i in as_list(res.get("identifier"))]
    medical_record = [i for i in identifiers if any(c.code == "MR" for c in concept(i.get("type")).codings)]
    mrn = next((as_str(i.get("value")) for i in medical_record + identifiers if as_str(i.get("value"))), None)
    return {
        "id": p.id,
        "name": p.name,
        "gender": as_str(res.get("gender")),
        "birthDate": as_str(res.get("birthDate")),
        "age": _age(parse_date(res.get("birthDate")), today),
        "mrn": mrn,
        "group": p.group,
        "source": p.source,
        "description": p.description,
        "expect": list(p.expect) if p.expect is not None else None,
        "order": p.order.as_json() if p.order else None,
        "failSearches": sorted(p.fail_searches),
        "shiftDays": p.shift_days,
    }


def patient_chart(store: PatientStore, p: SandboxPatient, today: date) -> dict[str, Any]:
    meds, labs = _medications(store, p.id), _labs(store, p.id)
    problems, allergies = _problems(store, p.id), _allergies(store, p.id)
    return {
        **_listing(p, today),
        "medications": meds[:LIST_LIMIT],
        "labs": labs[: LIST_LIMIT * 3],
        "problems": problems[:LIST_LIMIT],
        "allergies": allergies,
        "counts": {
            "medications": len(meds),
            "labs": len(labs),
            "problems": len(problems),
            "allergies": len(allergies),
        },
    }


def _choice(order: OrderIn) -> OrderChoice:
    if order.frequency not in FREQUENCIES:
        raise BadRequest(f"frequency must be one of {', '.join(FREQUENCIES)}", expression=["order.frequency"])
    return OrderChoice(order.product, order.dose, order.frequency, order.supply_days, order.refills)


def page_router(store: PatientStore, activity: SandboxActivity, today: Callable[[], date]) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    html = (STATIC_DIR / "sandbox.html").read_text(encoding="utf-8")

    def patient(pid: str) -> SandboxPatient:
        found = store.patients.get(pid)
        if found is None:
            raise NotFound(f"no sandbox patient with id {pid!r}")
        return found

    @router.get("/")
    async def root() -> Response:
        return RedirectResponse("/sandbox")

    @router.get("/sandbox")
    async def page() -> Response:
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @router.get("/sandbox/api/options")
    async def options() -> dict[str, Any]:
        return {
            "products": [
                {
                    "key": p.key,
                    "label": p.label,
                    "rxnorm": p.rxnorm,
                    "doseUnit": p.dose_unit,
                    "default": default_choice(p.key).as_json(),
                }
                for p in PRODUCTS.values()
            ],
            "frequencies": [{"key": f.key, "label": f.label} for f in FREQUENCIES.values()],
        }

    @router.get("/sandbox/api/patients")
    async def patients() -> dict[str, Any]:
        now = today()
        listed = sorted(store.patients.values(), key=lambda p: (p.group != "fixtures", p.group, p.name.lower()))
        return {"patients": [_listing(p, now) for p in listed]}

    @router.get("/sandbox/api/patients/{pid}")
    async def chart(pid: str) -> dict[str, Any]:
        return patient_chart(store, patient(pid), today())

    @router.post("/sandbox/api/hook-request")
    async def build_request(body: HookRequestIn, request: Request) -> dict[str, Any]:
        p = patient(body.patient_id)
        choice = _choice(body.order)
        draft = draft_order(choice, p.id, today(), body.draft_id)
        fhir_base = str(request.base_url).rstrip("/") + "/fhir"
        prefetch = build_prefetch(store, p.id, fhir_base) if body.mode == "prefetch" else None
        return {
            "service": SERVICE_FOR_HOOK[body.hook],
            "orderText": describe(choice),
            "request": hook_request(body.hook, p.id, draft, prefetch=prefetch, fhir_server=fhir_base),
        }

    @router.get("/sandbox/api/activity")
    async def recent() -> dict[str, Any]:
        return {
            "calls": [
                {
                    "hookInstance": c.hook_instance,
                    "service": c.service_id,
                    "at": c.started_at.isoformat(),
                    "latencyMs": round(c.latency_ms, 1),
                    "status": c.status_code,
                    "cards": [{"rule": r.rule_id, "indicator": r.indicator, "uuid": r.card_uuid} for r in c.cards],
                    "unavailable": list(c.unavailable),
                    "provenance": dict(c.provenance),
                    "fetchErrors": c.fetch_errors,
                }
                for c in activity.calls
            ],
            "feedback": [
                {
                    "service": f.service_id,
                    "card": f.item.card,
                    "outcome": f.item.outcome,
                    "acceptedSuggestions": [s.id for s in f.item.acceptedSuggestions],
                    "overrideReason": (
                        as_str(as_dict(f.item.overrideReason.reason).get("display")) if f.item.overrideReason else None
                    ),
                    "userComment": f.item.overrideReason.userComment if f.item.overrideReason else None,
                    "at": f.received_at.isoformat(),
                }
                for f in activity.feedback
            ],
        }

    return router
