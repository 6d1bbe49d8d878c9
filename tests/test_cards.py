"""Every card file, filled with sample evidence, honours the CDS Hooks card contract.

This is the review gate for the clinical content in ``cards/``: wording may change freely as long as it keeps
these properties.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from cds_service.domain import Concept, Evidence, Finding, Indicator, NaltrexoneOrder, Product
from cds_service.policy import RULE_IDS
from cds_service.render import SUMMARY_MAX, CardLibrary

LIBRARY = CardLibrary.load()
ORDER = NaltrexoneOrder(ref="MedicationRequest/draft-1", product=Product.INJECTION, medication=Concept(text="Vivitrol"))

# Realistic, deliberately long values for every placeholder a card may use.
SAMPLE_FACT = "oxycodone hydrochloride 5 MG Oral Tablet"


def _sample_finding(rule_id: str, variant: str | None, indicator: Indicator) -> Finding:
    tpl = LIBRARY.templates[rule_id]
    facts = {name: SAMPLE_FACT for name in tpl.placeholders() - {"evidence", "citation", "product"}}
    evidence = (
        Evidence(
            "oxycodone hydrochloride 5 MG Oral Tablet — prescription, status active; from 2026-11-11",
            "MedicationRequest/1",
        ),
        Evidence("Alanine aminotransferase: 168 U/L; reference range –40 U/L; 4.2× ULN; 2026-11-16", "Observation/2"),
    )
    return Finding(rule_id=rule_id, indicator=indicator, evidence=evidence, facts=facts, variant=variant)


def _no_empty(value: Any, where: str = "card") -> None:
    assert value not in (None, "", [], {}), f"{where} is empty"
    if isinstance(value, dict):
        for k, v in value.items():
            _no_empty(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_empty(v, f"{where}[{i}]")


def test_every_rule_has_exactly_one_card() -> None:
    assert set(LIBRARY.templates) == set(RULE_IDS)


CASES = [
    (rule_id, variant, indicator)
    for rule_id in RULE_IDS
    if rule_id in LIBRARY.templates
    for variant in (None, *LIBRARY.templates[rule_id].variants)
    for indicator in Indicator
]


@pytest.mark.parametrize(
    ("rule_id", "variant", "indicator"), CASES, ids=[f"{r}-{v or 'default'}-{i.value}" for r, v, i in CASES]
)
def test_filled_card_honours_the_contract(rule_id: str, variant: str | None, indicator: Indicator) -> None:
    card = LIBRARY.render(_sample_finding(rule_id, variant, indicator), ORDER, "pat-1")
    body = card.dump()
    _no_empty(body)
    uuid.UUID(body["uuid"])
    assert len(body["summary"]) <= SUMMARY_MAX
    assert not body["summary"].endswith("…"), f"summary had to be truncated: {body['summary']}"
    assert body["indicator"] == indicator.value
    assert body["source"]["topic"] == {
        "system": "urn:naltrexone-cds:rule",
        "code": rule_id,
        "display": LIBRARY.templates[rule_id].title,
    }
    assert body["source"]["label"]
    if body.get("suggestions"):
        assert body["selectionBehavior"] in ("at-most-one", "any")
        for s in body["suggestions"]:
            uuid.UUID(s["uuid"])
            for action in s["actions"]:
                assert action["description"]
                if action["type"] == "delete":
                    assert action["resourceId"] == ORDER.ref and "resource" not in action
                else:
                    assert action["resource"]["resourceType"] in ("ServiceRequest", "MedicationRequest")
    else:
        assert "selectionBehavior" not in body
    for reason in body.get("overrideReasons", []):
        assert reason["display"] and reason["code"]
    if indicator is not Indicator.INFO:
        assert body.get("overrideReasons"), "critical and warning cards offer override reasons"
    detail = body["detail"]
    assert "(not recorded)" not in detail and "(not recorded)" not in body["summary"], "a placeholder had no fact"
    assert "MedicationRequest/1" in detail and "2026-11-16" in detail, "the detail lists the evidence"
    assert LIBRARY.templates[rule_id].citation.split()[0] in detail, "the detail cites the documented basis"
