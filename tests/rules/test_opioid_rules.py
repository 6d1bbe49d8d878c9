"""The opioid rules, case by case: each fires on its cases and stays silent on its near-misses.

Most cases go through the HTTP endpoint (prefetch -> FHIR door -> terminology -> rule -> card); the unit tests at
the end pin edge logic on hand-built snapshots. Dates are day offsets from ``tests.builders.NOW`` (2026-11-21).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.config import Settings
from cds_service.domain import (
    Category,
    Coding,
    Concept,
    ConditionRecord,
    Indicator,
    LabResult,
    MedicationUse,
    NaltrexoneOrder,
    OpioidKind,
    PatientInfo,
    PatientSnapshot,
    Product,
    Unavailable,
)
from cds_service.policy import Policy
from cds_service.rules import evaluate as evaluate_all
from cds_service.rules import opioid_active, opioid_recent, opioid_urine_missing, opioid_urine_positive
from cds_service.rules.common import INCONCLUSIVE, NEGATIVE, POSITIVE, urine_screen_result
from tests.builders import (
    ICD10,
    LOINC,
    NOW,
    RXNORM,
    SNOMED,
    VIVITROL,
    bundle,
    cc,
    condition,
    empty_prefetch,
    hook_request,
    instant,
    medication_request,
    naltrexone_draft,
    topics,
)
from tests.conftest import ClientFactory
from tests.rules import (
    SIGN,
    V3_INTERPRETATION,
    card,
    loinc_answer,
    medication_dispense,
    medication_statement,
    negative_urine_yesterday,
    post,
    urine,
)

TODAY = NOW.date()
METHADONE = ("864706", "methadone hydrochloride 10 MG Oral Tablet")
BUP_NALOXONE = ("1010606", "buprenorphine 8 MG / naloxone 2 MG Sublingual Film")
TRAMADOL = ("836466", "tramadol hydrochloride 50 MG Oral Tablet")
NALOXONE_SPRAY = ("1725059", "naloxone hydrochloride 4 MG/ACTUAT Nasal Spray")
NALTREXONE_TAB = ("1483744", "naltrexone hydrochloride 50 MG Oral Tablet")
SYNTHEA_OXY = ("1049221", "Acetaminophen 325 MG / oxyCODONE Hydrochloride 5 MG Oral Tablet")


def mr(code: tuple[str, str] = ("1049621", "oxycodone hydrochloride 5 MG Oral Tablet"), **kw: Any) -> dict[str, Any]:
    return medication_request(code, **kw)


def updated(days: float) -> dict[str, Any]:
    """``meta.lastUpdated`` ``days`` from NOW: the door's "status change date" when nothing better is recorded."""
    return {"meta": {"lastUpdated": instant(days)}}


def tablets_not_days(dispense: dict[str, Any]) -> dict[str, Any]:
    """Bad data: daysSupply given as a count of tablets, which cannot be read as days."""
    dispense["daysSupply"] = {"value": 30, "unit": "tablets"}
    return dispense


def contained_medication(request: dict[str, Any]) -> dict[str, Any]:
    """The drug moved into a contained Medication behind medicationReference (common in EHR exports)."""
    med = request.pop("medicationCodeableConcept")
    request["contained"] = [{"resourceType": "Medication", "id": "med1", "code": med}]
    request["medicationReference"] = {"reference": "#med1"}
    return request


# -- opioid-active -------------------------------------------------------------------------------------------------
ACTIVE_CASES = [
    pytest.param({"medicationRequests": [mr()]}, True, id="request-active"),
    pytest.param({"medicationRequests": [mr(status="on-hold")]}, True, id="request-on-hold"),
    pytest.param({"medicationRequests": [mr(status="active", authored=-900, validity_end=-800)]}, True,
                 id="request-active-with-old-end-still-current-by-status"),
    pytest.param({"medicationStatements": [medication_statement(status="active")]}, True, id="statement-active"),
    pytest.param({"medicationStatements": [medication_statement(status="intended", start=None)]}, True,
                 id="statement-intended"),
    pytest.param({"medicationDispenses": [medication_dispense(handed_over=-25, days_supply=30)]}, True,
                 id="dispense-supply-covers-today"),
    pytest.param({"medicationDispenses": [medication_dispense(handed_over=-30, days_supply=30)]}, True,
                 id="dispense-supply-ends-today"),
    pytest.param({"medicationRequests": [mr(BUP_NALOXONE)]}, True, id="buprenorphine-naloxone"),
    pytest.param({"medicationRequests": [mr(METHADONE)]}, True, id="methadone"),
    pytest.param({"medicationRequests": [mr(TRAMADOL)]}, True, id="tramadol"),
    pytest.param({"medicationRequests": [mr(("1310197", "Vicodin 5 MG / 300 MG Oral Tablet"))]}, True,
                 id="brand-sbd-vicodin"),
    pytest.param({"medicationRequests": [mr(("73032", "remifentanil"))]}, True, id="ingredient-remifentanil"),
    pytest.param({"medicationRequests": [mr(("X1", "Lomotil"), system="urn:local:drug")]}, True,
                 id="diphenoxylate-by-brand-text"),
    pytest.param({"medicationRequests": [mr(("X2", "codeine/guaifenesin syrup"), system="urn:local:drug")]}, True,
                 id="codeine-cough-product"),
    pytest.param({"medicationRequests": [mr(("L-123", "OXY5"), system="urn:local:drug", text="oxycodone 5 mg tab")]},
                 True, id="local-code-with-text-only"),
    pytest.param({"medicationRequests": [mr(SYNTHEA_OXY)]}, True, id="acetaminophen-oxycodone-combination"),
    pytest.param({"medicationRequests": [contained_medication(mr(TRAMADOL))]}, True,
                 id="medication-reference-to-contained-medication"),
    pytest.param({"medicationDispenses": [tablets_not_days(medication_dispense(handed_over=-2))]}, False,
                 id="dispense-supply-in-unknown-units-cannot-cover-today"),
    # near-misses
    pytest.param({"medicationRequests": [mr(status="completed", authored=-400)]}, False, id="request-completed"),
    pytest.param({"medicationRequests": [mr(status="stopped", authored=-400)]}, False, id="request-stopped"),
    pytest.param({"medicationRequests": [mr(status="cancelled")]}, False, id="request-cancelled"),
    pytest.param({"medicationRequests": [mr(status="entered-in-error")]}, False, id="request-entered-in-error"),
    pytest.param({"medicationRequests": [mr(status="draft")]}, False, id="draft-from-earlier-session-in-record"),
    pytest.param({"medicationStatements": [medication_statement(status="completed", end=-100)]}, False,
                 id="statement-completed"),
    pytest.param({"medicationStatements": [medication_statement(status="not-taken")]}, False,
                 id="statement-not-taken"),
    pytest.param({"medicationDispenses": [medication_dispense(handed_over=-31, days_supply=30)]}, False,
                 id="dispense-supply-ended-yesterday"),
    pytest.param({"medicationDispenses": [medication_dispense(handed_over=-2, days_supply=30, status="cancelled")]},
                 False, id="dispense-cancelled"),
    pytest.param({"medicationDispenses": [medication_dispense(handed_over=-2, days_supply=None)]}, False,
                 id="dispense-without-days-supply-cannot-cover-today"),
    pytest.param({"medicationRequests": [mr(NALOXONE_SPRAY)]}, False, id="naloxone-alone-is-not-an-opioid"),
    pytest.param({"medicationRequests": [mr(NALTREXONE_TAB)]}, False, id="naltrexone-is-not-an-opioid"),
]  # fmt: skip


@pytest.mark.parametrize(("prefetch", "fires"), ACTIVE_CASES)
def test_opioid_active(client: TestClient, prefetch: dict[str, Any], fires: bool) -> None:
    assert ("opioid-active" in topics(post(client, **prefetch))) is fires


@pytest.mark.parametrize(
    ("draft_status", "fires"),
    [
        pytest.param("draft", True, id="opioid-drafted-in-this-session"),
        pytest.param("active", True, id="opioid-in-draftOrders-with-odd-status"),
        pytest.param("entered-in-error", False, id="draft-entered-in-error"),
        pytest.param("cancelled", False, id="draft-cancelled"),
    ],
)
def test_opioid_active_opioid_in_the_same_draft_orders(client: TestClient, draft_status: str, fires: bool) -> None:
    drafts = [naltrexone_draft(), mr(status=draft_status, id="draft-oxy")]
    out = post(client, drafts)
    assert ("opioid-active" in topics(out)) is fires
    if fires:
        assert "MedicationRequest/draft-oxy" in card(out, "opioid-active")["detail"]
        assert "draft order in this session" in card(out, "opioid-active")["detail"]


def test_opioid_active_order_select_counts_unselected_opioid_drafts(client: TestClient) -> None:
    body = hook_request("order-select", draft_orders=[naltrexone_draft(), mr(status="draft", id="draft-oxy")])
    body["prefetch"] = empty_prefetch()
    r = client.post("/cds-services/naltrexone-order-select", json=body)
    assert r.status_code == 200, r.text
    assert "opioid-active" in topics(r.json())


def test_opioid_active_card_lists_every_current_opioid_and_suggests_removal(client: TestClient) -> None:
    out = post(
        client,
        medicationRequests=[mr(id="oxy-1"), mr(METHADONE, id="mtd-1"), mr(status="completed", id="old-1")],
        medicationDispenses=[medication_dispense(TRAMADOL, handed_over=-3, days_supply=10, id="disp-1")],
    )
    c = card(out, "opioid-active")
    assert c["indicator"] == "critical"
    for ref in ("MedicationRequest/oxy-1", "MedicationRequest/mtd-1", "MedicationDispense/disp-1"):
        assert ref in c["detail"]
    assert "old-1" not in c["detail"]
    assert "Active opioid (oxycodone and 2 more)" in c["summary"]
    assert [s["actions"][0]["type"] for s in c["suggestions"]] == ["delete"]
    assert "opioid-recent" not in topics(out)  # the same records are not reported twice


# -- opioid-recent -------------------------------------------------------------------------------------------------
RECENT_CASES = [
    pytest.param({"medicationRequests": [mr(status="completed", authored=-36, validity_end=-6)]}, True,
                 id="short-acting-ended-6-days-ago"),
    pytest.param({"medicationRequests": [mr(status="completed", authored=-38, validity_end=-8)]}, False,
                 id="short-acting-ended-8-days-ago"),
    pytest.param({"medicationRequests": [mr(status="completed", authored=-37, validity_end=-7)]}, False,
                 id="short-acting-ended-7-days-ago-window-passed"),
    pytest.param({"medicationRequests": [mr(status="completed", authored=-50, validity_end=-20)]}, False,
                 id="opioid-ended-20-days-ago"),
    pytest.param({"medicationRequests": [mr(METHADONE, status="completed", authored=-40, validity_end=-10)]}, True,
                 id="methadone-ended-10-days-ago-14-day-window"),
    pytest.param({"medicationRequests": [mr(METHADONE, status="completed", authored=-45, validity_end=-15)]}, False,
                 id="methadone-ended-15-days-ago"),
    pytest.param({"medicationRequests": [mr(BUP_NALOXONE, status="stopped", authored=-43, validity_end=-13)]}, True,
                 id="buprenorphine-naloxone-ended-13-days-ago"),
    pytest.param({"medicationRequests": [mr(("197696", "72 HR Fentanyl 0.025 MG/HR Transdermal System"),
                                            status="completed", authored=-40, validity_end=-10)]}, True,
                 id="fentanyl-patch-long-acting-ended-10-days-ago"),
    pytest.param({"medicationRequests": [mr(TRAMADOL, status="completed", authored=-10, validity_end=-5)]}, True,
                 id="tramadol-ended-5-days-ago"),
    pytest.param({"medicationRequests": [mr(status="completed", authored=-10, supply_days=5)]}, True,
                 id="end-from-authored-plus-supply"),
    pytest.param({"medicationRequests": [mr(status="stopped", authored=-60, **updated(-2))]}, True,
                 id="end-from-status-change-date"),
    pytest.param({"medicationRequests": [mr(status="stopped", authored=-3)]}, True,
                 id="no-end-date-ordered-3-days-ago"),
    pytest.param({"medicationRequests": [mr(status="stopped", authored=-30)]}, False,
                 id="no-end-date-ordered-30-days-ago-cannot-tell"),
    pytest.param({"medicationRequests": [mr(status="stopped", authored=-5, validity_end=25)]}, True,
                 id="stopped-before-planned-end"),
    pytest.param({"medicationDispenses": [medication_dispense(handed_over=-33, days_supply=30)]}, True,
                 id="dispense-supply-ran-out-3-days-ago"),
    pytest.param({"medicationDispenses": [medication_dispense(handed_over=-31, days_supply=30)]}, True,
                 id="dispense-supply-ended-yesterday"),
    pytest.param({"medicationDispenses": [medication_dispense(handed_over=-2, days_supply=None)]}, True,
                 id="dispense-without-days-supply-2-days-ago"),
    pytest.param({"medicationDispenses": [medication_dispense(handed_over=-50, days_supply=30)]}, False,
                 id="dispense-ran-out-20-days-ago"),
    pytest.param({"medicationDispenses": [tablets_not_days(medication_dispense(handed_over=-2))]}, True,
                 id="dispense-supply-in-unknown-units-dispensed-2-days-ago"),
    pytest.param({"medicationDispenses": [tablets_not_days(medication_dispense(handed_over=-20))]}, False,
                 id="dispense-supply-in-unknown-units-dispensed-20-days-ago"),
    pytest.param({"medicationStatements": [medication_statement(status="completed", start=-30, end=-4)]}, True,
                 id="statement-completed-4-days-ago"),
    pytest.param({"medicationStatements": [medication_statement(status="not-taken", start=-30, end=-4)]}, False,
                 id="statement-not-taken"),
    # never taken, or someone else's business
    pytest.param({"medicationRequests": [mr(status="cancelled", authored=-10, validity_end=-2)]}, False,
                 id="cancelled-order-was-never-taken"),
    pytest.param({"medicationRequests": [mr(status="entered-in-error", authored=-10, validity_end=-2)]}, False,
                 id="entered-in-error"),
    pytest.param({"medicationRequests": [mr(status="draft", authored=-3)]}, False, id="draft-from-earlier-session"),
    pytest.param({"medicationRequests": [mr(authored=-30, validity_end=-2)]}, False,
                 id="active-order-is-opioid-active-not-recent"),
    pytest.param({"medicationRequests": [mr(NALOXONE_SPRAY, status="completed", authored=-10, validity_end=-2)]},
                 False, id="naloxone-is-not-an-opioid"),
]  # fmt: skip


@pytest.mark.parametrize(("prefetch", "fires"), RECENT_CASES)
def test_opioid_recent(client: TestClient, prefetch: dict[str, Any], fires: bool) -> None:
    assert ("opioid-recent" in topics(post(client, **prefetch))) is fires


@pytest.mark.parametrize(
    ("prefetch", "basis"),
    [
        pytest.param({"medicationRequests": [mr(status="completed", authored=-36, validity_end=-6)]},
                     "validity period end", id="validity-period"),
        pytest.param({"medicationRequests": [mr(status="completed", authored=-10, supply_days=5)]},
                     f"ordered {(TODAY - timedelta(days=10)).isoformat()} + 5 days' supply", id="authored-plus-supply"),
        pytest.param({"medicationDispenses": [medication_dispense(handed_over=-33, days_supply=30)]},
                     f"dispensed {(TODAY - timedelta(days=33)).isoformat()} + 30 days' supply", id="dispense"),
        pytest.param({"medicationRequests": [mr(status="stopped", authored=-60, **updated(-2))]},
                     "status change date", id="status-change"),
        pytest.param({"medicationRequests": [mr(status="stopped", authored=-3)]},
                     f"end date not recorded; ordered {(TODAY - timedelta(days=3)).isoformat()}", id="no-end-date"),
        pytest.param({"medicationDispenses": [medication_dispense(handed_over=-2, days_supply=None)]},
                     "no usable days' supply; dispensed", id="dispense-no-supply"),
        pytest.param({"medicationRequests": [mr(status="stopped", authored=-5, validity_end=25)]},
                     "may have been taken until today", id="stopped-early"),
    ],
)  # fmt: skip
def test_opioid_recent_says_how_the_end_was_found(client: TestClient, prefetch: dict[str, Any], basis: str) -> None:
    c = card(post(client, **prefetch), "opioid-recent")
    assert c["indicator"] == "critical"
    assert basis in c["detail"]


def test_opioid_recent_card_is_actionable(client: TestClient) -> None:
    out = post(client, medicationRequests=[mr(METHADONE, status="completed", authored=-40, validity_end=-10, id="m1")])
    c = card(out, "opioid-recent")
    assert c["summary"].startswith("Recent opioid (methadone)")
    assert f"The earliest start is {(TODAY + timedelta(days=4)).isoformat()}" in c["detail"]  # end + 14 days
    assert "last possible use 10 days ago" in c["detail"]
    assert "MedicationRequest/m1" in c["detail"] and "long-acting, 14-day window" in c["detail"]
    assert "Labels:" in c["detail"] and "Seeds:" in c["detail"]
    assert "as long as two weeks" in c["detail"]
    kinds = sorted(s["actions"][0]["type"] for s in c["suggestions"])
    assert kinds == ["create", "delete"]
    create = next(s["actions"][0]["resource"] for s in c["suggestions"] if s["actions"][0]["type"] == "create")
    assert create["resourceType"] == "ServiceRequest" and create["code"]["coding"][0]["system"] == LOINC
    displays = {r["display"] for r in c["overrideReasons"]}
    assert "Opioid-free interval confirmed by patient and negative naloxone challenge" in displays
    assert "Urine screen done today, result pending" in displays


def test_opioid_recent_without_any_date_warns_instead_of_stopping(client: TestClient) -> None:
    out = post(client, medicationRequests=[mr(status="stopped", authored=None, id="nodate")])
    c = card(out, "opioid-recent")
    assert c["indicator"] == "warning"
    assert [s["label"] for s in c["suggestions"]] == ["Order a urine opioid screen"]
    assert "no dates" in c["summary"] and "MedicationRequest/nodate" in c["detail"]
    assert "when it was last taken is unknown" in c["detail"]


def test_opioid_recent_dated_and_undated_records_share_one_critical_card(client: TestClient) -> None:
    out = post(
        client,
        medicationRequests=[
            mr(status="stopped", authored=None, id="nodate"),
            mr(status="completed", authored=-36, validity_end=-6, id="dated"),
        ],
    )
    c = card(out, "opioid-recent")
    assert c["indicator"] == "critical"
    assert "MedicationRequest/nodate" in c["detail"] and "MedicationRequest/dated" in c["detail"]


@pytest.mark.parametrize(
    ("policy", "ended_days_ago", "fires"),
    [
        pytest.param({}, 8, False, id="default-7-days-ended-8-days-ago"),
        pytest.param({"opioid_free_days_short_acting": 10}, 8, True, id="site-10-days-ended-8-days-ago"),
        pytest.param({"opioid_free_days_short_acting": 10}, 10, False, id="site-10-days-ended-10-days-ago"),
    ],
)
def test_opioid_recent_window_is_site_policy(
    make_client: ClientFactory, policy: dict[str, Any], ended_days_ago: int, fires: bool
) -> None:
    c = make_client(Settings.development(policy=policy))
    out = post(c, medicationRequests=[mr(status="completed", authored=-40, validity_end=-ended_days_ago)])
    assert ("opioid-recent" in topics(out)) is fires


def test_opioid_recent_long_acting_window_is_site_policy(make_client: ClientFactory) -> None:
    c = make_client(Settings.development(policy={"opioid_free_days_long_acting": 10}))
    out = post(c, medicationRequests=[mr(METHADONE, status="completed", authored=-40, validity_end=-12)])
    assert "opioid-recent" not in topics(out)


# -- opioid-urine-positive -----------------------------------------------------------------------------------------
MORPHINE = ("19597-4", "Morphine [Presence] in Urine by Screen method")
FENTANYL = ("59673-4", "Fentanyl [Presence] in Urine by Screen method")
NALTREXONE_URINE = ("12309-1", "Naltrexone [Presence] in Urine")

URINE_POSITIVE_CASES = [
    pytest.param([urine("POS", days_ago=2)], True, id="interpretation-POS"),
    pytest.param([urine("DET", days_ago=2)], True, id="interpretation-DET"),
    pytest.param([urine("A", days_ago=2)], True, id="interpretation-A"),
    pytest.param([urine("H", days_ago=2)], True, id="interpretation-H"),
    pytest.param([urine(None, value_code=("10828004", "Positive"))], True, id="snomed-positive"),
    pytest.param([urine(None, value_code=("260373001", "Detected"))], True, id="snomed-detected"),
    pytest.param([urine(None, valueCodeableConcept=loinc_answer("LA6576-8", "Positive"))], True, id="loinc-positive"),
    pytest.param([urine(None, valueCodeableConcept=loinc_answer("LA11882-0", "Detected"))], True,
                 id="loinc-detected"),
    pytest.param([urine(None, value_string="POSITIVE (confirm)")], True, id="string-positive"),
    pytest.param([urine(None, value_string="Detected")], True, id="string-detected"),
    pytest.param([urine(None, value=350, unit="ng/mL", high=300)], True, id="quantity-above-cutoff"),
    pytest.param([urine(None, value=300, unit="ng/mL", high=300)], True, id="quantity-at-cutoff"),
    pytest.param([urine("POS", status="preliminary")], True, id="preliminary-counts"),
    pytest.param([urine("POS", status="amended")], True, id="amended"),
    pytest.param([urine("POS", status="corrected")], True, id="corrected"),
    pytest.param([urine("POS", days_ago=29, loinc=FENTANYL)], True, id="fentanyl-positive-29-days-ago"),
    pytest.param([urine("POS", days_ago=3, loinc=MORPHINE), urine("NEG", days_ago=1)], True,
                 id="later-negative-for-another-analyte-does-not-clear"),
    pytest.param([urine("POS", days_ago=3), urine(None, days_ago=1, value_string="see comment")], True,
                 id="later-inconclusive-does-not-clear"),
    pytest.param([urine("POS", days_ago=2, loinc=("10998-3", "oxyCODONE [Presence] in Urine"))], True,
                 id="oxycodone-confirmation"),
    # near-misses
    pytest.param([urine("NEG")], False, id="negative"),
    pytest.param([urine(None, value_code=("260415000", "Not detected"))], False, id="not-detected"),
    pytest.param([urine("POS", days_ago=5), urine("NEG", days_ago=1)], False, id="negative-after-positive"),
    pytest.param([urine("POS", days_ago=5, loinc=("8222-2", "Opiates [Presence] in Urine")), urine("NEG", days_ago=1)],
                 False, id="negative-screen-clears-positive-of-same-analyte-other-code"),
    pytest.param([urine("POS", days_ago=31)], False, id="positive-31-days-ago"),
    pytest.param([urine("POS", loinc=NALTREXONE_URINE)], False, id="naltrexone-urine-test-positive"),
    pytest.param([urine("POS", status="entered-in-error")], False, id="entered-in-error"),
    pytest.param([urine("POS", status="cancelled")], False, id="cancelled"),
    pytest.param([urine("POS", status="unknown")], False, id="status-unknown"),
    pytest.param([urine("POS", status="registered")], False, id="registered-no-result-yet"),
    pytest.param([urine(None, value=350, unit="ug/L", referenceRange=[{"high": {"value": 300, "unit": "ng/mL"}}])],
                 False, id="quantity-unit-differs-from-cutoff"),
    pytest.param([urine(None, value=120, unit="ng/mL", high=300)], False, id="quantity-below-cutoff"),
    pytest.param([urine(None, value=350, unit="ng/mL")], False, id="quantity-without-cutoff"),
    pytest.param([urine(None, value_string="see comment")], False, id="string-inconclusive"),
    pytest.param([urine(None, interpretation=None, valueCodeableConcept=cc("P", "urn:local", None, "Pos?"))], True,
                 id="local-code-with-positive-text"),
    pytest.param([urine(None, valueCodeableConcept={"coding": [{"system": "urn:local", "code": "POS"}]})], False,
                 id="local-code-only-is-inconclusive"),
]  # fmt: skip


@pytest.mark.parametrize(("screens", "fires"), URINE_POSITIVE_CASES)
def test_opioid_urine_positive(client: TestClient, screens: list[dict[str, Any]], fires: bool) -> None:
    assert ("opioid-urine-positive" in topics(post(client, urineScreens=screens))) is fires


def test_opioid_urine_positive_interpretation_needs_the_v3_system(client: TestClient) -> None:
    obs = urine(None)
    obs["interpretation"] = [cc("POS", "urn:local:interp")]
    assert "opioid-urine-positive" not in topics(post(client, urineScreens=[obs]))
    obs["interpretation"] = [cc("POS", V3_INTERPRETATION)]
    assert "opioid-urine-positive" in topics(post(client, urineScreens=[obs]))


def test_opioid_urine_positive_card_lists_the_latest_positive_per_analyte(client: TestClient) -> None:
    screens = [
        urine("POS", days_ago=10, id="opi-old"),
        urine("POS", days_ago=2, id="opi-new"),
        urine("POS", days_ago=4, loinc=FENTANYL, id="fen"),
        urine("NEG", days_ago=1, loinc=MORPHINE, id="mor"),
    ]
    c = card(post(client, urineScreens=screens), "opioid-urine-positive")
    assert c["indicator"] == "critical"
    assert "Observation/opi-new" in c["detail"] and "Observation/fen" in c["detail"]
    assert "opi-old" not in c["detail"] and "Observation/mor" not in c["detail"]
    assert c["summary"].startswith("Positive urine opioid screen (opiates and 1 more)")
    assert "positive, 2 days ago" in c["detail"]
    assert "positive urine screen for opioids" in c["detail"] and "Seeds:" in c["detail"]
    assert [s["actions"][0]["type"] for s in c["suggestions"]] == ["delete"]
    assert c["overrideReasons"]


def test_opioid_urine_positive_lookback_is_site_policy(make_client: ClientFactory) -> None:
    c = make_client(Settings.development(policy={"urine_positive_lookback_days": 60}))
    assert "opioid-urine-positive" in topics(post(c, urineScreens=[urine("POS", days_ago=31)]))


# -- opioid-urine-missing ------------------------------------------------------------------------------------------
def naltrexone_mr(**kw: Any) -> dict[str, Any]:
    return medication_request(NALTREXONE_TAB, **kw)


URINE_MISSING_CASES = [
    pytest.param({}, True, id="no-screen-at-all"),
    pytest.param({"urineScreens": [urine("NEG", days_ago=8)]}, True, id="negative-8-days-ago"),
    pytest.param({"urineScreens": [urine(None, days_ago=1, value_string="see comment")]}, True,
                 id="only-inconclusive-result"),
    pytest.param({"urineScreens": [urine(None, days_ago=1, value=80, unit="mg/dL",
                                         referenceRange=[{"high": {"value": 300, "unit": "ng/mL"}}])]}, True,
                 id="quantity-in-units-other-than-the-cutoff-is-inconclusive"),
    pytest.param({"urineScreens": [urine("NEG", days_ago=1, status="entered-in-error")]}, True,
                 id="only-entered-in-error-result"),
    pytest.param({"urineScreens": [urine("NEG", days_ago=1, loinc=NALTREXONE_URINE)]}, True,
                 id="naltrexone-urine-test-is-not-an-opioid-screen"),
    pytest.param({"medicationRequests": [naltrexone_mr(status="completed", authored=-200)]}, True,
                 id="naltrexone-completed-long-ago-is-not-a-renewal"),
    pytest.param({"medicationDispenses": [medication_dispense(NALTREXONE_TAB, handed_over=-40, days_supply=30)]},
                 True, id="naltrexone-supply-ran-out-10-days-ago"),
    pytest.param({"medicationRequests": [naltrexone_mr(status="draft")]}, True, id="naltrexone-draft-in-record"),
    # near-misses
    pytest.param({"urineScreens": [urine("NEG", days_ago=6)]}, False, id="negative-6-days-ago"),
    pytest.param({"urineScreens": [urine("NEG", days_ago=0, status="preliminary")]}, False,
                 id="preliminary-negative-today"),
    pytest.param({"urineScreens": [urine("POS", days_ago=2)]}, False, id="positive-is-a-screen-positive-card-acts"),
    pytest.param({"medicationRequests": [naltrexone_mr(status="active", authored=-25)]}, False,
                 id="renewal-active-naltrexone-order"),
    pytest.param({"medicationRequests": [naltrexone_mr(status="on-hold", authored=-25)]}, False,
                 id="renewal-on-hold-naltrexone-order"),
    pytest.param({"medicationStatements": [medication_statement("naltrexone 50 mg tablet", status="active")]}, False,
                 id="renewal-active-naltrexone-statement"),
    pytest.param({"medicationDispenses": [medication_dispense(VIVITROL, handed_over=-31, days_supply=28)]}, False,
                 id="renewal-injection-covered-3-days-ago"),
]  # fmt: skip


@pytest.mark.parametrize(("prefetch", "fires"), URINE_MISSING_CASES)
def test_opioid_urine_missing(client: TestClient, prefetch: dict[str, Any], fires: bool) -> None:
    assert ("opioid-urine-missing" in topics(post(client, **prefetch))) is fires


def test_opioid_urine_missing_card_suggests_a_screen_and_shows_the_last_one(client: TestClient) -> None:
    c = card(post(client, urineScreens=[urine("NEG", days_ago=20, id="old-neg")]), "opioid-urine-missing")
    assert c["indicator"] == "warning"
    assert c["summary"].startswith("No urine opioid screen in 7 days")
    assert "Observation/old-neg" in c["detail"] and "older than 7 days" in c["detail"]
    assert "Before starting naltrexone, you should have a urine test" in c["detail"]
    (suggestion,) = c["suggestions"]
    resource = suggestion["actions"][0]["resource"]
    assert resource["resourceType"] == "ServiceRequest" and resource["status"] == "draft"
    assert resource["code"]["coding"][0] == {
        "system": LOINC, "code": "19295-5", "display": resource["code"]["coding"][0]["display"]
    }  # fmt: skip
    assert resource["subject"] == {"reference": "Patient/pat-1"}
    assert "Urine screen done today, result pending" in {r["display"] for r in c["overrideReasons"]}


def test_opioid_urine_missing_is_silent_when_urine_screens_could_not_be_read(client: TestClient) -> None:
    failed = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    body = hook_request(prefetch={**empty_prefetch(), "urineScreens": failed})
    out = client.post(SIGN, json=body).json()
    assert "opioid-urine-missing" not in topics(out)
    assert "data-unavailable" in topics(out)


def test_opioid_urine_missing_window_is_site_policy(make_client: ClientFactory) -> None:
    c = make_client(Settings.development(policy={"urine_required_within_days": 10}))
    assert "opioid-urine-missing" not in topics(post(c, urineScreens=[urine("NEG", days_ago=8)]))


# -- opioid-withdrawal and opioid-dependence-documented ------------------------------------------------------------
WITHDRAWAL_CASES = [
    pytest.param(condition("F11.23", "Opioid dependence with withdrawal"), True, id="F11.23"),
    pytest.param(condition("F1123", "Opioid dependence with withdrawal"), True, id="F1123-without-dot"),
    pytest.param(condition("F11.13", "Opioid abuse with withdrawal"), True, id="F11.13"),
    pytest.param(condition("F11.93", "Opioid use, unspecified with withdrawal"), True, id="F11.93"),
    pytest.param(condition("87132004", "Opioid withdrawal", system=SNOMED), True, id="snomed-87132004"),
    pytest.param(condition("703846009", "Buprenorphine withdrawal", system=SNOMED), True, id="snomed-703846009"),
    pytest.param(condition("F11.23", "withdrawal", clinical="relapse"), True, id="relapse"),
    pytest.param(condition("F11.23", "withdrawal", verification="provisional"), True, id="provisional"),
    pytest.param(condition("F11.23", "withdrawal", abatement=5), True, id="abatement-in-the-future"),
    # near-misses
    pytest.param(condition("F11.23", "withdrawal", clinical="resolved"), False, id="resolved"),
    pytest.param(condition("F11.23", "withdrawal", clinical="inactive"), False, id="inactive"),
    pytest.param(condition("F11.23", "withdrawal", verification="refuted"), False, id="refuted"),
    pytest.param(condition("F11.23", "withdrawal", verification="entered-in-error"), False, id="entered-in-error"),
    pytest.param(condition("F11.23", "withdrawal", abatement=-3), False, id="abated-3-days-ago"),
    pytest.param(condition("F11.20", "Opioid dependence, uncomplicated"), False, id="dependence-is-not-withdrawal"),
    pytest.param(condition("W1", "opioid withdrawal", system="urn:local:problems"), False,
                 id="local-code-text-only-is-not-evidence"),
]  # fmt: skip


@pytest.mark.parametrize(("cond", "fires"), WITHDRAWAL_CASES)
def test_opioid_withdrawal(client: TestClient, cond: dict[str, Any], fires: bool) -> None:
    assert ("opioid-withdrawal" in topics(post(client, conditions=[cond]))) is fires


def test_opioid_withdrawal_card(client: TestClient) -> None:
    c = card(post(client, conditions=[condition("F11.23", "Opioid dependence with withdrawal", id="wd")]),
             "opioid-withdrawal")  # fmt: skip
    assert c["indicator"] == "critical"
    assert "Condition/wd" in c["detail"] and "patients in acute opioid withdrawal" in c["detail"]
    assert [s["actions"][0]["type"] for s in c["suggestions"]] == ["delete"]


DEPENDENCE_CASES = [
    pytest.param(condition("F11.20", "Opioid dependence, uncomplicated"), True, id="F11.20"),
    pytest.param(condition("F11.10", "Opioid abuse, uncomplicated"), True, id="F11.10"),
    pytest.param(condition("F11.90", "Opioid use, unspecified"), True, id="F11.90"),
    pytest.param(condition("75544000", "Opioid dependence", system=SNOMED), True, id="snomed-75544000"),
    pytest.param(condition("1081000119105", "Opioid dependence, on agonist therapy", system=SNOMED), True,
                 id="snomed-on-agonist-therapy"),
    pytest.param(condition("F11.20", "Opioid dependence", clinical="recurrence"), True, id="recurrence"),
    # near-misses
    pytest.param(condition("F11.21", "Opioid dependence, in remission"), False, id="F11.21-in-remission"),
    pytest.param(condition("F11.11", "Opioid abuse, in remission"), False, id="F11.11-in-remission"),
    pytest.param(condition("191821007", "Opioid dependence in remission", system=SNOMED), False,
                 id="snomed-191821007-in-remission"),
    pytest.param(condition("F11.20", "Opioid dependence", clinical="remission"), False, id="clinical-remission"),
    pytest.param(condition("F11.20", "Opioid dependence", clinical="inactive"), False, id="inactive"),
    pytest.param(condition("F11.20", "Opioid dependence", clinical="resolved"), False, id="resolved"),
    pytest.param(condition("F11.20", "Opioid dependence", verification="refuted"), False, id="refuted"),
    pytest.param(condition("F11.20", "Opioid dependence", verification="entered-in-error"), False,
                 id="entered-in-error"),
]  # fmt: skip


@pytest.mark.parametrize(("cond", "fires"), DEPENDENCE_CASES)
def test_opioid_dependence_documented(client: TestClient, cond: dict[str, Any], fires: bool) -> None:
    out = post(client, conditions=[cond], urineScreens=[negative_urine_yesterday()])
    assert ("opioid-dependence-documented" in topics(out)) is fires


def test_remission_coding_wins_over_a_plain_coding_on_the_same_condition(client: TestClient) -> None:
    cond = condition("F11.20", "Opioid dependence")
    cond["code"]["coding"].append({"system": SNOMED, "code": "191821007", "display": "in remission"})
    assert "opioid-dependence-documented" not in topics(post(client, conditions=[cond]))


OUD = condition("F11.20", "Opioid dependence, uncomplicated", id="oud")


@pytest.mark.parametrize(
    ("prefetch", "other"),
    [
        pytest.param({"medicationRequests": [mr()]}, "opioid-active", id="with-active-opioid"),
        pytest.param({"medicationRequests": [mr(status="completed", authored=-36, validity_end=-6)]},
                     "opioid-recent", id="with-recent-opioid"),
        pytest.param({"urineScreens": [urine("POS", days_ago=2)]}, "opioid-urine-positive", id="with-positive-urine"),
        pytest.param({"conditions": [OUD, condition("F11.23", "withdrawal")]}, "opioid-withdrawal",
                     id="with-withdrawal"),
    ],
)  # fmt: skip
def test_opioid_dependence_documented_is_dropped_when_an_opioid_stop_fires(
    client: TestClient, prefetch: dict[str, Any], other: str
) -> None:
    out = post(client, **{"conditions": [OUD], **prefetch})
    assert other in topics(out)
    assert "opioid-dependence-documented" not in topics(out)


def test_opioid_dependence_documented_card_asks_to_confirm_detox(client: TestClient) -> None:
    out = post(client, conditions=[OUD])  # no urine screen: urine-missing is a warning, not a stop
    assert "opioid-urine-missing" in topics(out)
    c = card(out, "opioid-dependence-documented")
    assert c["indicator"] == "warning"
    assert "confirm detox" in c["summary"] and "Condition/oud" in c["detail"]
    assert "relapse prevention after detoxification" in c["detail"]
    assert [s["actions"][0]["resource"]["resourceType"] for s in c["suggestions"]] == ["ServiceRequest"]


# -- every card: a clinician can act on it -------------------------------------------------------------------------
REALISTIC = {
    "opioid-active": {"medicationRequests": [mr(SYNTHEA_OXY), mr(("197696", "72 HR Fentanyl 0.025 MG/HR Patch"))]},
    "opioid-recent": {"medicationRequests": [mr(SYNTHEA_OXY, status="stopped", authored=-40, validity_end=-3),
                                             mr(BUP_NALOXONE, status="completed", authored=-40, validity_end=-9),
                                             mr(METHADONE, status="completed", authored=-40, validity_end=-9)]},
    "opioid-urine-positive": {"urineScreens": [urine("POS", loinc=("19295-5", "Opiates [Presence] in Urine by "
                                                                   "Screen method")), urine("POS", loinc=FENTANYL),
                                               urine("POS", loinc=MORPHINE)]},
    "opioid-urine-missing": {"urineScreens": [urine("NEG", days_ago=40)]},
    "opioid-withdrawal": {"conditions": [condition("F11.23", "Opioid dependence with withdrawal"),
                                         condition("87132004", "Opioid withdrawal (disorder)", system=SNOMED)]},
    "opioid-dependence-documented": {"conditions": [
        condition("1081000119105", "Opioid dependence, on agonist therapy (disorder)", system=SNOMED)]},
}  # fmt: skip


@pytest.mark.parametrize("rule_id", sorted(REALISTIC))
def test_card_is_complete_with_realistic_evidence(client: TestClient, rule_id: str) -> None:
    c = card(post(client, **REALISTIC[rule_id]), rule_id)
    assert len(c["summary"]) < 140 and not c["summary"].endswith("…"), c["summary"]
    assert "(not recorded)" not in c["summary"] + c["detail"]  # every placeholder was filled
    assert "Label" in c["detail"] or "Seeds" in c["detail"]
    assert c["source"]["url"].startswith("https://dailymed.nlm.nih.gov/")
    assert c["overrideReasons"] and all(r["display"] for r in c["overrideReasons"])
    assert c["suggestions"] and c["selectionBehavior"] in ("at-most-one", "any")


def test_undated_variant_summary_fits(client: TestClient) -> None:
    c = card(post(client, medicationRequests=[mr(SYNTHEA_OXY, status="stopped", authored=None)]), "opioid-recent")
    assert len(c["summary"]) < 140 and not c["summary"].endswith("…"), c["summary"]


# -- unit tests over snapshots: edge logic ------------------------------------------------------------------------
ORDER = NaltrexoneOrder(ref="MedicationRequest/draft-ntx", product=Product.ORAL, medication=Concept(text="naltrexone"))


def use(
    *,
    source: str = "request",
    status: str = "completed",
    kind: OpioidKind | None = OpioidKind.SHORT_ACTING,
    end: int | None = None,
    start: int | None = None,
    authored: int | None = None,
    status_changed: int | None = None,
    groups: frozenset[str] = frozenset({"opioid"}),
) -> MedicationUse:
    def d(offset: int | None) -> date | None:
        return TODAY + timedelta(days=offset) if offset is not None else None

    return MedicationUse(
        ref="MedicationRequest/u1", source=source, medication=Concept(text="oxycodone 5 mg"), status=status,
        groups=groups, opioid_kind=kind, authored=d(authored), start=d(start), end=d(end),
        end_basis="validity period end" if end is not None else None, status_changed=d(status_changed),
    )  # fmt: skip


def snap(*meds: MedicationUse, labs: tuple[LabResult, ...] = (), **kw: Any) -> PatientSnapshot:
    return PatientSnapshot(patient=PatientInfo("pat-1"), medications=meds, labs=labs, **kw)


@pytest.mark.parametrize(
    ("med", "expected_day", "how"),
    [
        pytest.param(use(end=-3), -3, "ended", id="end-in-the-past"),
        pytest.param(use(end=10, status_changed=-2), -2, "before its planned end", id="stopped-early-with-date"),
        pytest.param(use(end=10), 0, "may have been taken until today", id="stopped-early-without-date"),
        pytest.param(use(start=-4, authored=-4), -4, "ordered", id="no-end-ordered"),
        pytest.param(use(source="statement", start=-4), -4, "started", id="no-end-statement-started"),
        pytest.param(use(source="statement", authored=-4), -4, "recorded", id="no-end-statement-asserted"),
        pytest.param(use(source="dispense", start=-4, authored=-4), -4, "no usable days' supply", id="dispense"),
        pytest.param(use(), None, "unknown", id="no-date-at-all"),
    ],
)
def test_last_use(med: MedicationUse, expected_day: int | None, how: str) -> None:
    found = opioid_recent.last_use(med, TODAY)
    assert found.day == (TODAY + timedelta(days=expected_day) if expected_day is not None else None)
    assert how in found.how


def test_opioid_of_unknown_kind_gets_the_long_window() -> None:
    assert opioid_recent.evaluate(snap(use(end=-10, kind=None)), ORDER, Policy(), NOW) is not None
    assert opioid_recent.evaluate(snap(use(end=-10)), ORDER, Policy(), NOW) is None


def test_undated_card_never_goes_above_warning_and_follows_a_lowered_site_indicator() -> None:
    found = opioid_recent.evaluate(snap(use()), ORDER, Policy(), NOW)
    assert found is not None and found.indicator is Indicator.WARNING and found.variant == "undated"
    lowered = opioid_recent.evaluate(snap(use()), ORDER, Policy(indicators={"opioid-recent": "info"}), NOW)
    assert lowered is not None and lowered.indicator is Indicator.INFO


def test_current_records_belong_to_opioid_active_only() -> None:
    for med in (use(status="active", end=-2), use(source="draft", status="draft"),
                use(source="dispense", status="completed", start=-5, end=3)):  # fmt: skip
        assert opioid_active.is_current(med, NOW)
        assert opioid_recent.evaluate(snap(med), ORDER, Policy(), NOW) is None


def test_request_draft_in_the_record_is_neither_current_nor_recent() -> None:
    med = use(source="request", status="draft", authored=-1, start=-1)
    assert not opioid_active.is_current(med, NOW)
    assert opioid_recent.evaluate(snap(med), ORDER, Policy(), NOW) is None


def lab(
    *,
    days: float = 1,
    status: str = "final",
    interp: str | None = None,
    code: str = "19295-5",
    value: str | None = None,
    comparator: str | None = None,
    unit: str | None = None,
    high: str | None = None,
    ref_unit: str | None = None,
    text: str | None = None,
    answer: tuple[str, str] | None = None,
) -> LabResult:
    return LabResult(
        ref=f"Observation/{code}-{days}-{interp}", code=Concept((Coding(LOINC, code),)), status=status,
        groups=frozenset({"urine-opioid"}), effective=NOW - timedelta(days=days),
        value=Decimal(value) if value else None, unit=unit, comparator=comparator,
        value_concept=Concept((Coding(*answer),) if answer else (), text) if answer or text else None,
        interpretation=(Coding(V3_INTERPRETATION, interp),) if interp else (),
        ref_high=Decimal(high) if high else None, ref_unit=ref_unit,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        pytest.param(lab(interp="POS"), POSITIVE, id="POS"),
        pytest.param(lab(interp="AA"), POSITIVE, id="AA-critical-abnormal"),
        pytest.param(lab(interp="NEG"), NEGATIVE, id="NEG"),
        pytest.param(lab(interp="ND"), NEGATIVE, id="ND"),
        pytest.param(lab(interp="N"), NEGATIVE, id="N"),
        pytest.param(lab(answer=(SNOMED, "260385009")), NEGATIVE, id="snomed-negative"),
        pytest.param(lab(answer=(LOINC, "LA6577-6")), NEGATIVE, id="loinc-negative"),
        pytest.param(lab(answer=(LOINC, "LA11883-8")), NEGATIVE, id="loinc-not-detected"),
        pytest.param(lab(text="Not detected"), NEGATIVE, id="text-not-detected"),
        pytest.param(lab(interp="NEG", value="500", unit="ng/mL", high="300"), POSITIVE,
                     id="conflict-positive-wins"),
        pytest.param(lab(value="500", unit="ng/mL", high="300", ref_unit="NG/ML"), POSITIVE, id="unit-case"),
        pytest.param(lab(value="500", high="300"), POSITIVE, id="no-units-at-all"),
        pytest.param(lab(value="500", unit="ng/mL", high="300", ref_unit="ug/L"), INCONCLUSIVE, id="unit-differs"),
        pytest.param(lab(), INCONCLUSIVE, id="no-value"),
        pytest.param(lab(value="300", comparator="<", unit="ng/mL", high="300"), NEGATIVE, id="below-cutoff-<300"),
        pytest.param(lab(value="300", comparator="<=", unit="ng/mL", high="300"), INCONCLUSIVE, id="<=300-unsettled"),
        pytest.param(lab(value="500", comparator="<", unit="ng/mL", high="300"), INCONCLUSIVE, id="<500-unsettled"),
        pytest.param(lab(value="300", comparator=">", unit="ng/mL", high="300"), POSITIVE, id="above->300"),
        pytest.param(lab(value="100", comparator=">", unit="ng/mL", high="300"), INCONCLUSIVE, id=">100-unsettled"),
        pytest.param(lab(interp="L"), INCONCLUSIVE, id="interpretation-low-says-nothing"),
    ],
)  # fmt: skip
def test_urine_screen_result(result: LabResult, expected: str) -> None:
    assert urine_screen_result(result) == expected


def test_same_instant_positive_and_negative_for_one_analyte_reads_positive() -> None:
    labs = (lab(interp="NEG", days=2), lab(interp="POS", days=2))
    assert opioid_urine_positive.evaluate(snap(labs=labs), ORDER, Policy(), NOW) is not None
    assert opioid_urine_positive.evaluate(snap(labs=labs[::-1]), ORDER, Policy(), NOW) is not None


def test_undated_urine_result_is_not_used() -> None:
    undated = LabResult(ref="Observation/x", code=Concept((Coding(LOINC, "19295-5"),)), status="final",
                        groups=frozenset({"urine-opioid"}), effective=None,
                        interpretation=(Coding(V3_INTERPRETATION, "POS"),))  # fmt: skip
    assert opioid_urine_positive.evaluate(snap(labs=(undated,)), ORDER, Policy(), NOW) is None
    assert opioid_urine_missing.evaluate(snap(labs=(undated,)), ORDER, Policy(), NOW) is not None


def test_urine_missing_fires_when_medications_are_unreadable_but_not_when_urine_is_partial() -> None:
    meds_down = snap(unavailable=(Unavailable(Category.MEDICATIONS, "HTTP 500"),))
    assert opioid_urine_missing.evaluate(meds_down, ORDER, Policy(), NOW) is not None
    urine_partial = snap(unavailable=(Unavailable(Category.URINE_SCREENS, "more than 10 pages", partial=True),))
    assert opioid_urine_missing.evaluate(urine_partial, ORDER, Policy(), NOW) is None


def test_registry_drops_dependence_only_when_an_opioid_stop_fires() -> None:
    oud = ConditionRecord(ref="Condition/oud", code=Concept(text="Opioid dependence"),
                          groups=frozenset({"opioid-use-disorder"}), clinical_status="active",
                          verification_status="confirmed")  # fmt: skip
    negative = lab(interp="NEG", days=1)
    alone = evaluate_all(snap(labs=(negative,), conditions=(oud,)), ORDER, Policy(), NOW)
    assert "opioid-dependence-documented" in {f.rule_id for f in alone}
    with_stop = evaluate_all(snap(use(status="active"), labs=(negative,), conditions=(oud,)), ORDER, Policy(), NOW)
    ids = [f.rule_id for f in with_stop]
    assert "opioid-active" in ids and "opioid-dependence-documented" not in ids
    assert ids.index("opioid-active") == 0  # most urgent first


def test_a_later_negative_within_the_window_clears_an_earlier_positive_even_at_the_window_edge() -> None:
    labs = (lab(interp="POS", days=29.5), lab(interp="NEG", days=0.5))
    assert opioid_urine_positive.evaluate(snap(labs=labs), ORDER, Policy(), NOW) is None


def test_fhir_bundle_helper_is_used_by_prefetch() -> None:
    # guard: the prefetch helpers wrap lists in searchset Bundles (what the door reads)
    assert bundle(urine("POS"))["type"] == "searchset"


_ = (ICD10, RXNORM)
