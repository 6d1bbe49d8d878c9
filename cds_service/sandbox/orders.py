"""Naltrexone draft orders and CDS Hooks request bodies, as an EHR's order screen would build them.

One builder for the sandbox page and the ``check`` command, so both send the service the same shape: an R4
``MedicationRequest`` (status ``draft``) with an RxNorm code, a structured dose and timing, a route, and a
dispense request (days' supply and refills), inside ``context.draftOrders``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from cds_service.sandbox.patients import OrderChoice

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
SANDBOX_USER = "Practitioner/sandbox-clinician"


@dataclass(frozen=True, slots=True)
class Product:
    key: str
    label: str
    rxnorm: str
    display: str
    dose: float
    dose_unit: str  # "mg" or "tablet"
    frequency: str
    supply_days: int
    route: tuple[str, str]
    route_text: str


@dataclass(frozen=True, slots=True)
class Frequency:
    key: str
    label: str
    frequency: int
    period: float
    period_unit: str


PRODUCTS: dict[str, Product] = {
    p.key: p
    for p in (
        Product(
            "oral", "Naltrexone 50 mg oral tablet (generic; ReVia)", "1483744",
            "naltrexone hydrochloride 50 MG Oral Tablet", 50, "mg", "daily", 30,
            ("26643006", "Oral route"), "by mouth",
        ),
        Product(
            "injection", "Naltrexone 380 mg extended-release injection (Vivitrol)", "637213",
            "naltrexone 380 MG Extended Release Injectable Suspension", 380, "mg", "every-4-weeks", 28,
            ("78421000", "Intramuscular route"), "intramuscularly",
        ),
        Product(
            "combo", "Bupropion 90 mg / naltrexone 8 mg ER tablet (Contrave)", "1551468",
            "bupropion hydrochloride 90 MG / naltrexone hydrochloride 8 MG Extended Release Oral Tablet",
            2, "tablet", "twice-daily", 30, ("26643006", "Oral route"), "by mouth",
        ),
    )
}  # fmt: skip

FREQUENCIES: dict[str, Frequency] = {
    f.key: f
    for f in (
        Frequency("daily", "once daily", 1, 1, "d"),
        Frequency("twice-daily", "twice daily", 2, 1, "d"),
        Frequency("every-other-day", "every other day", 1, 2, "d"),
        Frequency("every-third-day", "every third day", 1, 3, "d"),
        Frequency("every-2-weeks", "every 2 weeks", 1, 2, "wk"),
        Frequency("every-4-weeks", "every 4 weeks", 1, 4, "wk"),
        Frequency("monthly", "once a month", 1, 1, "mo"),
    )
}


def default_choice(product: str) -> OrderChoice:
    p = PRODUCTS[product]
    return OrderChoice(product=product, dose=p.dose, frequency=p.frequency, supply_days=p.supply_days, refills=11)


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def dose_text(choice: OrderChoice) -> str:
    p, f = PRODUCTS[choice.product], FREQUENCIES[choice.frequency]
    unit = "mg" if p.dose_unit == "mg" else ("tablet" if choice.dose == 1 else "tablets")
    return f"{_number(choice.dose):g} {unit} {p.route_text} {f.label}"


def describe(choice: OrderChoice) -> str:
    """One line: what is ordered, e.g. "<product label>: 50 mg by mouth once daily, 30 days + 11 refills"."""
    refills = f" + {choice.refills} refill{'s' if choice.refills != 1 else ''}" if choice.refills else ", no refills"
    return f"{PRODUCTS[choice.product].label}: {dose_text(choice)}, {choice.supply_days} days{refills}"


def draft_order(choice: OrderChoice, patient_id: str, today: date, draft_id: str | None = None) -> dict[str, Any]:
    """The draft MedicationRequest for ``choice``."""
    p, f = PRODUCTS[choice.product], FREQUENCIES[choice.frequency]
    dose_quantity = (
        {"value": _number(choice.dose), "unit": "mg", "system": UCUM, "code": "mg"}
        if p.dose_unit == "mg"
        else {"value": _number(choice.dose), "unit": "tablet", "system": UCUM, "code": "{tbl}"}
    )
    return {
        "resourceType": "MedicationRequest",
        "id": draft_id or f"sandbox-draft-{uuid.uuid4().hex[:12]}",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": p.rxnorm, "display": p.display}],
            "text": p.display,
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": today.isoformat(),
        "requester": {"reference": SANDBOX_USER},
        "dosageInstruction": [
            {
                "text": dose_text(choice),
                "timing": {
                    "repeat": {"frequency": f.frequency, "period": _number(f.period), "periodUnit": f.period_unit}
                },
                "route": {"coding": [{"system": SNOMED, "code": p.route[0], "display": p.route[1]}]},
                "doseAndRate": [{"doseQuantity": dose_quantity}],
            }
        ],
        "dispenseRequest": {
            "numberOfRepeatsAllowed": choice.refills,
            "expectedSupplyDuration": {"value": choice.supply_days, "unit": "days", "system": UCUM, "code": "d"},
        },
    }


def hook_request(
    hook: str,
    patient_id: str,
    draft: dict[str, Any],
    *,
    prefetch: dict[str, Any] | None = None,
    fhir_server: str | None = None,
) -> dict[str, Any]:
    """A CDS Hooks 2.0 ``order-select`` or ``order-sign`` request for one draft naltrexone order."""
    if hook not in ("order-select", "order-sign"):
        raise ValueError(f"unsupported hook {hook!r}")
    context: dict[str, Any] = {
        "userId": SANDBOX_USER,
        "patientId": patient_id,
        "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]},
    }
    if hook == "order-select":
        context["selections"] = [f"MedicationRequest/{draft['id']}"]
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if fhir_server:
        body["fhirServer"] = fhir_server
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


SERVICE_FOR_HOOK = {"order-select": "naltrexone-order-select", "order-sign": "naltrexone-order-sign"}
