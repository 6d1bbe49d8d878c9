"""Tests of the clinical rules, mostly through the HTTP endpoint so the whole path (prefetch, FHIR door,
terminology, rule, card file, renderer) is proven for each case. Small helpers shared by these tests live here;
FHIR resources come from ``tests.builders`` or the builders below (resources it has no builder for).
"""

from __future__ import annotations

import itertools
from typing import Any

from fastapi.testclient import TestClient

from tests.builders import (
    LOINC,
    PATIENT_ID,
    RXNORM,
    SNOMED,
    cc,
    day,
    hook_request,
    instant,
    observation,
    prefetch_with,
)

SIGN = "/cds-services/naltrexone-order-sign"
_ids = itertools.count(1)


def _next_id(prefix: str) -> str:
    return f"{prefix}-rules-{next(_ids)}"


V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
OPIATES_SCREEN = ("19295-5", "Opiates [Presence] in Urine by Screen method")


def post(client: TestClient, drafts: list[dict[str, Any]] | None = None, **prefetch: Any) -> dict[str, Any]:
    """POST an order-sign request whose prefetch holds ``prefetch`` (key -> resources); return the JSON body."""
    r = client.post(SIGN, json=hook_request(draft_orders=drafts, prefetch=prefetch_with(**prefetch)))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def card(body: dict[str, Any], rule_id: str) -> dict[str, Any]:
    """The one card of ``rule_id`` in a response (fails when there is none or more than one)."""
    found: list[dict[str, Any]] = [c for c in body["cards"] if c["source"]["topic"]["code"] == rule_id]
    assert len(found) == 1, f"expected one {rule_id} card, got {[c['source']['topic']['code'] for c in body['cards']]}"
    return found[0]


def medication_statement(
    text: str = "oxycodone hydrochloride 5 MG Oral Tablet",
    *,
    status: str = "active",
    start: float | None = -30,
    end: float | None = None,
    asserted: float | None = None,
    id: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": id or _next_id("ms"),
        "status": status,
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "medicationCodeableConcept": cc(code, RXNORM, None, text) if code else {"text": text},
    }
    if start is not None and end is not None:
        res["effectivePeriod"] = {"start": day(start), "end": day(end)}
    elif start is not None:
        res["effectiveDateTime"] = day(start)
    elif end is not None:
        res["effectivePeriod"] = {"end": day(end)}
    if asserted is not None:
        res["dateAsserted"] = day(asserted)
    return res


def medication_dispense(
    code: tuple[str, str] = ("1049621", "oxycodone hydrochloride 5 MG Oral Tablet"),
    *,
    handed_over: float | None = -5,
    days_supply: float | None = 30,
    status: str = "completed",
    id: str | None = None,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "MedicationDispense",
        "id": id or _next_id("md"),
        "status": status,
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "medicationCodeableConcept": cc(code[0], RXNORM, code[1]),
    }
    if handed_over is not None:
        res["whenHandedOver"] = instant(handed_over)
    if days_supply is not None:
        res["daysSupply"] = {"value": days_supply, "unit": "day", "system": "http://unitsofmeasure.org", "code": "d"}
    return res


def allergy(
    code: str | None = "7243",
    text: str | None = "naltrexone",
    *,
    system: str = RXNORM,
    clinical: str | None = "active",
    verification: str | None = "confirmed",
    criticality: str | None = "high",
    recorded: float | None = -200,
    reaction: str | None = "Urticaria",
    id: str | None = None,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "id": id or _next_id("al"),
        "patient": {"reference": f"Patient/{PATIENT_ID}"},
        "code": cc(code, system, None, text) if code else {"text": text},
    }
    if clinical:
        res["clinicalStatus"] = cc(clinical, "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical")
    if verification:
        res["verificationStatus"] = cc(
            verification, "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
        )
    if criticality:
        res["criticality"] = criticality
    if recorded is not None:
        res["recordedDate"] = day(recorded)
    if reaction:
        res["reaction"] = [{"manifestation": [cc("126485001", SNOMED, reaction, reaction)]}]
    return res


def urine(
    result: str | None = "POS",
    *,
    days_ago: float = 1,
    loinc: tuple[str, str] = OPIATES_SCREEN,
    status: str = "final",
    id: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """An opioid urine screen; ``result`` is a v3 interpretation code (None: give the value through kwargs).

    Keyword arguments of ``tests.builders.observation`` (value, unit, high, value_code, value_string) go to it;
    any other (FHIR element names such as ``valueCodeableConcept``) are set on the resource as given.
    """
    known = {k: kwargs.pop(k) for k in ("value", "unit", "high", "value_code", "value_string") if k in kwargs}
    res = observation(loinc[0], loinc[1], days_ago=days_ago, status=status, interpretation=result, id=id, **known)
    res.update(kwargs)
    res["category"] = [cc("laboratory", "http://terminology.hl7.org/CodeSystem/observation-category")]
    return res


def negative_urine_yesterday() -> dict[str, Any]:
    """A negative opioid screen from yesterday: keeps opioid-urine-missing quiet in tests about other rules."""
    return urine("NEG", days_ago=1)


def loinc_answer(code: str, display: str) -> dict[str, Any]:
    return cc(code, LOINC, display)
