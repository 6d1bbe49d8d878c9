"""Small builders for FHIR resources and CDS Hooks requests used across the tests.

Dates are given as offsets in days from ``NOW`` so that a case reads like the clinical question it asks
("an oxycodone course that ended 20 days ago").
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
PATIENT_ID = "pat-1"

_ids = itertools.count(1)


def day(offset: float) -> str:
    """ISO date ``offset`` days from NOW (negative = past)."""
    return (NOW + timedelta(days=offset)).date().isoformat()


def instant(offset: float) -> str:
    return (NOW + timedelta(days=offset)).isoformat().replace("+00:00", "Z")


def cc(
    code: str | None = None, system: str = RXNORM, display: str | None = None, text: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if code is not None:
        coding: dict[str, Any] = {"system": system, "code": code}
        if display:
            coding["display"] = display
        out["coding"] = [coding]
    if text:
        out["text"] = text
    return out


def _id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


# -- medications --------------------------------------------------------------------------------------------------
OXYCODONE_5 = ("1049621", "oxycodone hydrochloride 5 MG Oral Tablet")
NALTREXONE_50 = ("1483744", "naltrexone hydrochloride 50 MG Oral Tablet")
VIVITROL = ("637213", "naltrexone 380 MG Extended Release Injectable Suspension")
CONTRAVE = ("1551468", "bupropion hydrochloride 90 MG / naltrexone hydrochloride 8 MG Extended Release Oral Tablet")


def medication_request(
    code: tuple[str, str] = OXYCODONE_5,
    *,
    status: str = "active",
    authored: float | None = -10,
    validity_end: float | None = None,
    supply_days: int | None = None,
    refills: int | None = None,
    id: str | None = None,
    text: str | None = None,
    system: str = RXNORM,
    **extra: Any,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": id or _id("mr"),
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "medicationCodeableConcept": cc(code[0], system, code[1], text),
    }
    if authored is not None:
        res["authoredOn"] = day(authored)
    dispense: dict[str, Any] = {}
    if validity_end is not None:
        dispense["validityPeriod"] = {"start": day(authored or 0), "end": day(validity_end)}
    if supply_days is not None:
        dispense["expectedSupplyDuration"] = {
            "value": supply_days,
            "unit": "days",
            "system": "http://unitsofmeasure.org",
            "code": "d",
        }
    if refills is not None:
        dispense["numberOfRepeatsAllowed"] = refills
    if dispense:
        res["dispenseRequest"] = dispense
    res.update(extra)
    return res


def naltrexone_draft(
    code: tuple[str, str] = NALTREXONE_50,
    *,
    id: str = "draft-ntx",
    dose_mg: float | None = 50,
    dose_unit: str = "mg",
    frequency: int = 1,
    period: float = 1,
    period_unit: str = "d",
    supply_days: int | None = 30,
    refills: int | None = 5,
    **extra: Any,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": id,
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "medicationCodeableConcept": cc(code[0], RXNORM, code[1]),
        "authoredOn": day(0),
    }
    if dose_mg is not None:
        res["dosageInstruction"] = [
            {
                "timing": {"repeat": {"frequency": frequency, "period": period, "periodUnit": period_unit}},
                "doseAndRate": [{"doseQuantity": {"value": dose_mg, "unit": dose_unit}}],
            }
        ]
    dispense: dict[str, Any] = {}
    if supply_days is not None:
        dispense["expectedSupplyDuration"] = {"value": supply_days, "unit": "days", "code": "d"}
    if refills is not None:
        dispense["numberOfRepeatsAllowed"] = refills
    if dispense:
        res["dispenseRequest"] = dispense
    res.update(extra)
    return res


# -- observations and conditions ----------------------------------------------------------------------------------
def observation(
    loinc: str,
    display: str,
    *,
    days_ago: float | None = 1,
    status: str = "final",
    value: float | None = None,
    unit: str | None = None,
    high: float | None = None,
    interpretation: str | None = None,
    value_code: tuple[str, str] | None = None,
    value_string: str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": id or _id("obs"),
        "status": status,
        "code": cc(loinc, LOINC, display),
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }
    if days_ago is not None:
        res["effectiveDateTime"] = instant(-days_ago)
    if value is not None:
        res["valueQuantity"] = {"value": value, **({"unit": unit} if unit else {})}
    if high is not None:
        res["referenceRange"] = [{"high": {"value": high, **({"unit": unit} if unit else {})}}]
    if interpretation:
        res["interpretation"] = [
            cc(interpretation, "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation")
        ]
    if value_code:
        res["valueCodeableConcept"] = cc(value_code[0], SNOMED, value_code[1])
    if value_string:
        res["valueString"] = value_string
    return res


def condition(
    code: str,
    display: str,
    *,
    system: str = ICD10,
    clinical: str = "active",
    verification: str | None = "confirmed",
    onset: float | None = -100,
    abatement: float | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "id": id or _id("cond"),
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "code": cc(code, system, display),
        "clinicalStatus": cc(clinical, "http://terminology.hl7.org/CodeSystem/condition-clinical"),
    }
    if verification:
        res["verificationStatus"] = cc(verification, "http://terminology.hl7.org/CodeSystem/condition-ver-status")
    if onset is not None:
        res["onsetDateTime"] = day(onset)
    if abatement is not None:
        res["abatementDateTime"] = day(abatement)
    return res


def bundle(*resources: dict[str, Any], type_: str | None = "searchset", next_url: str | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]}
    if type_:
        b["type"] = type_
    if next_url:
        b["link"] = [{"relation": "next", "url": next_url}]
    return b


def empty_prefetch() -> dict[str, Any]:
    """Every prefetch key present with an empty searchset (and the patient)."""
    from cds_service.hooks.services import PREFETCH

    out: dict[str, Any] = {pk.key: bundle() for pk in PREFETCH}
    out["patient"] = {"resourceType": "Patient", "id": PATIENT_ID, "gender": "female", "birthDate": "1990-01-01"}
    return out


def prefetch_with(**keys: list[dict[str, Any]] | dict[str, Any] | None) -> dict[str, Any]:
    """Full prefetch where the named keys hold the given resources (a list becomes a searchset Bundle)."""
    out = empty_prefetch()
    for key, value in keys.items():
        out[key] = bundle(*value) if isinstance(value, list) else value
    return out


def hook_request(
    hook: str = "order-sign",
    *,
    draft_orders: list[dict[str, Any]] | None = None,
    prefetch: dict[str, Any] | None = None,
    selections: list[str] | None = None,
    fhir_server: str | None = None,
    access_token: str | None = None,
) -> dict[str, Any]:
    drafts = draft_orders if draft_orders is not None else [naltrexone_draft()]
    context: dict[str, Any] = {"userId": "Practitioner/doc-1", "patientId": PATIENT_ID}
    if hook == "medication-prescribe":
        context["medications"] = bundle(*drafts, type_="collection")
    else:
        context["draftOrders"] = bundle(*drafts, type_="collection")
    if hook == "order-select":
        context["selections"] = (
            selections if selections is not None else [f"MedicationRequest/{d['id']}" for d in drafts[:1]]
        )
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": context,
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    if fhir_server:
        body["fhirServer"] = fhir_server
    if access_token:
        body["fhirAuthorization"] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "cds-service",
        }
    return body


SERVICE_FOR_HOOK = {
    "order-select": "naltrexone-order-select",
    "order-sign": "naltrexone-order-sign",
    "medication-prescribe": "naltrexone-medication-prescribe",
}


def topics(response_json: dict[str, Any]) -> list[str]:
    """The rule ids of the cards in a response, in order."""
    return [c["source"]["topic"]["code"] for c in response_json["cards"]]
