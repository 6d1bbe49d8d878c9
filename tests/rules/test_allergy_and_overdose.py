"""naltrexone-allergy and overdose-risk, through the HTTP endpoint; dates are day offsets from NOW (2026-11-21)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.config import Settings
from cds_service.domain import AllergyRecord, Concept, Indicator, NaltrexoneOrder, PatientInfo, PatientSnapshot, Product
from cds_service.policy import Policy
from cds_service.rules import naltrexone_allergy, overdose_risk
from tests.builders import CONTRAVE, NOW, RXNORM, VIVITROL, medication_request, naltrexone_draft, topics
from tests.conftest import ClientFactory
from tests.rules import allergy, card, medication_statement, post

ALLERGY = "naltrexone-allergy"

ALLERGY_CASES = [
    pytest.param([allergy("7243", "naltrexone")], "critical", id="naltrexone-by-ingredient-code"),
    pytest.param([allergy(None, "Naltrexone (ReVia)")], "critical", id="naltrexone-by-text-only"),
    pytest.param([allergy("L-77", "NALTREXONE HCL", system="urn:local:allergens")], "critical",
                 id="naltrexone-local-code-with-text"),
    pytest.param([allergy("1483744", "naltrexone hydrochloride 50 MG Oral Tablet")], "critical",
                 id="naltrexone-product-code"),
    pytest.param([allergy(None, "Contrave")], "critical", id="bupropion-naltrexone-combination"),
    pytest.param([allergy(clinical=None)], "critical", id="no-clinical-status-counts-as-current"),
    pytest.param([allergy(verification="unconfirmed")], "critical", id="unconfirmed-still-counts"),
    pytest.param([allergy("7242", "naloxone")], "warning", id="naloxone-cross-sensitivity"),
    pytest.param([allergy(None, "Nalmefene")], "warning", id="nalmefene-cross-sensitivity"),
    pytest.param([allergy("7242", "naloxone"), allergy("7243", "naltrexone")], "critical",
                 id="naltrexone-and-naloxone-is-critical"),
    # near-misses
    pytest.param([allergy(verification="refuted")], None, id="refuted"),
    pytest.param([allergy(verification="entered-in-error")], None, id="entered-in-error"),
    pytest.param([allergy(clinical="inactive")], None, id="inactive"),
    pytest.param([allergy(clinical="resolved")], None, id="resolved"),
    pytest.param([allergy("7242", "naloxone", clinical="inactive")], None, id="naloxone-inactive"),
    pytest.param([allergy(None, "buprenorphine / naloxone")], None, id="buprenorphine-naloxone-is-not-naloxone"),
    pytest.param([allergy("7980", "Penicillin G")], None, id="other-drug"),
]  # fmt: skip


@pytest.mark.parametrize(("allergies", "indicator"), ALLERGY_CASES)
def test_naltrexone_allergy(client: TestClient, allergies: list[dict[str, Any]], indicator: str | None) -> None:
    out = post(client, allergies=allergies)
    if indicator is None:
        assert ALLERGY not in topics(out)
    else:
        assert card(out, ALLERGY)["indicator"] == indicator


def test_naltrexone_allergy_card_is_a_stop_with_every_current_allergy_listed(client: TestClient) -> None:
    out = post(
        client,
        allergies=[
            allergy("7242", "naloxone", id="al-nlx"),
            allergy("7243", "naltrexone", id="al-ntx", reaction="Anaphylaxis"),
            allergy("7243", "naltrexone", id="al-refuted", verification="refuted"),
        ],
    )
    c = card(out, ALLERGY)
    assert c["indicator"] == "critical"
    assert c["summary"].startswith("Allergy to naltrexone on record (naltrexone and 1 more)")
    detail = c["detail"]
    assert detail.index("AllergyIntolerance/al-ntx") < detail.index("AllergyIntolerance/al-nlx")
    assert "al-refuted" not in detail and "Anaphylaxis" in detail and "criticality high" in detail
    assert "known to be allergic to naltrexone or any of its ingredients" in detail
    assert [s["actions"][0]["type"] for s in c["suggestions"]] == ["delete"]
    assert "Benefit outweighs risk; patient informed" in {r["display"] for r in c["overrideReasons"]}


def test_cross_sensitivity_card_has_its_own_wording(client: TestClient) -> None:
    c = card(post(client, allergies=[allergy("7242", "naloxone hydrochloride", id="al-nlx")]), ALLERGY)
    assert c["indicator"] == "warning"
    assert "cross-sensitivity with naltrexone unknown" in c["summary"]
    assert "It is not known if there is any cross-sensitivity with naloxone" in c["detail"]
    assert "AllergyIntolerance/al-nlx" in c["detail"]
    assert len(c["summary"]) < 140 and not c["summary"].endswith("…")
    assert c["overrideReasons"]
    assert not c.get("suggestions")  # a caution: no one-click removal


@pytest.mark.parametrize(
    ("setting", "allergies", "expected"),
    [
        pytest.param("warning", [allergy()], "warning", id="site-lowers-naltrexone-allergy"),
        pytest.param("critical", [allergy("7242", "naloxone")], "critical", id="site-raises-cross-sensitivity"),
    ],
)
def test_naltrexone_allergy_indicator_is_site_policy(
    make_client: ClientFactory, setting: str, allergies: list[dict[str, Any]], expected: str
) -> None:
    c = make_client(Settings.development(policy={"indicators": {ALLERGY: setting}}))
    assert card(post(c, allergies=allergies), ALLERGY)["indicator"] == expected


# -- overdose-risk -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "draft",
    [
        pytest.param(naltrexone_draft(), id="oral-tablet"),
        pytest.param(naltrexone_draft(VIVITROL, dose_mg=380, period=4, period_unit="wk"), id="injection"),
        pytest.param(naltrexone_draft(CONTRAVE, dose_mg=None), id="bupropion-naltrexone"),
    ],
)
def test_overdose_risk_on_every_naltrexone_order(client: TestClient, draft: dict[str, Any]) -> None:
    c = card(post(client, [draft]), "overdose-risk")
    assert c["indicator"] == "info"
    assert "overrideReasons" not in c or not c["overrideReasons"]
    (suggestion,) = c["suggestions"]
    resource = suggestion["actions"][0]["resource"]
    assert suggestion["actions"][0]["type"] == "create" and resource["resourceType"] == "MedicationRequest"
    assert resource["status"] == "draft" and resource["subject"] == {"reference": "Patient/pat-1"}
    assert resource["medicationCodeableConcept"]["coding"][0]["system"] == RXNORM
    assert "naloxone" in suggestion["label"].lower()


def test_overdose_risk_card_cites_the_documented_basis(client: TestClient) -> None:
    c = card(post(client), "overdose-risk")
    assert len(c["summary"]) < 140 and not c["summary"].endswith("…")
    detail = c["detail"]
    for quote in (
        "Attempted intake of heroin or other opiates during treatment with Naltrexone may lead to overdosing and death",
        "So called 'usual doses' may lead to death!",
        "Injectable label: tell patients about opioid overdose reversal agents at each injection",
    ):
        assert quote in detail
    assert "MedicationRequest/draft-ntx" in detail


def test_overdose_risk_lists_naloxone_already_on_record(client: TestClient) -> None:
    out = post(
        client,
        medicationRequests=[
            medication_request(("1725059", "naloxone 4 MG/ACTUAT Nasal Spray"), id="nlx"),
            medication_request(("1010606", "buprenorphine 8 MG / naloxone 2 MG Sublingual Film"), id="bup",
                               status="completed", authored=-400),
        ],
        medicationStatements=[medication_statement("Narcan nasal spray", status="completed", end=-100)],
    )  # fmt: skip
    detail = card(out, "overdose-risk")["detail"]
    assert "MedicationRequest/nlx" in detail and "naloxone already on record" in detail
    assert "MedicationRequest/bup" not in detail and "Narcan" not in detail


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        pytest.param(None, "info", id="default-info"),
        pytest.param("off", None, id="site-turns-it-off"),
        pytest.param("warning", "warning", id="site-raises-it"),
    ],
)
def test_overdose_risk_is_site_policy(make_client: ClientFactory, setting: str | None, expected: str | None) -> None:
    policy = {"indicators": {"overdose-risk": setting}} if setting else {}
    out = post(make_client(Settings.development(policy=policy)))
    if expected is None:
        assert "overdose-risk" not in topics(out)
    else:
        c = card(out, "overdose-risk")
        assert c["indicator"] == expected
        assert bool(c.get("overrideReasons")) is (expected != "info")


# -- unit level -----------------------------------------------------------------------------------------------------
ORDER = NaltrexoneOrder(ref="MedicationRequest/d", product=Product.ORAL, medication=Concept(text="naltrexone 50 mg"))


def rec(group: str, clinical: str | None = "active", verification: str | None = None) -> AllergyRecord:
    return AllergyRecord(ref=f"AllergyIntolerance/{group}", substance=Concept(text=group), groups=frozenset({group}),
                         clinical_status=clinical, verification_status=verification)  # fmt: skip


@pytest.mark.parametrize(
    ("records", "indicator", "variant"),
    [
        pytest.param((rec("naltrexone"),), Indicator.CRITICAL, None, id="naltrexone"),
        pytest.param((rec("nalmefene"),), Indicator.WARNING, "cross-sensitivity", id="nalmefene"),
        pytest.param((rec("nalmefene"), rec("naloxone")), Indicator.WARNING, "cross-sensitivity", id="both-cross"),
        pytest.param((rec("naloxone"), rec("naltrexone", clinical="resolved")), Indicator.WARNING,
                     "cross-sensitivity", id="resolved-naltrexone-leaves-the-naloxone-warning"),
        pytest.param((rec("naltrexone", verification="refuted"),), None, None, id="refuted"),
    ],
)  # fmt: skip
def test_allergy_indicator_and_variant(
    records: tuple[AllergyRecord, ...], indicator: Indicator | None, variant: str | None
) -> None:
    found = naltrexone_allergy.evaluate(PatientSnapshot(PatientInfo("p"), allergies=records), ORDER, Policy(), NOW)
    if indicator is None:
        assert found is None
    else:
        assert found is not None and found.indicator is indicator and found.variant == variant
        assert len(found.evidence) == sum(1 for r in records if (r.clinical_status or "") == "active")


def test_overdose_risk_is_independent_of_the_patient() -> None:
    found = overdose_risk.evaluate(PatientSnapshot(PatientInfo(None)), ORDER, Policy(), NOW)
    assert found is not None and found.indicator is Indicator.INFO
    assert (
        overdose_risk.evaluate(
            PatientSnapshot(PatientInfo(None)), ORDER, Policy(indicators={"overdose-risk": "off"}), NOW
        )
        is None
    )
