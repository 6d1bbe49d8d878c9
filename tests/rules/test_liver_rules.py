"""Liver rules: hepatic-acute, liver-enzymes-elevated, liver-disease-chronic, liver-panel-missing.

Each table row is a clinical case through the HTTP endpoint (prefetch -> FHIR door -> rule -> card), dated in days
before ``tests.builders.NOW``; the edge logic (units, ULN choice, truncation) also has pure unit tests.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.config import Settings
from cds_service.domain import Concept, LabResult, PatientInfo, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules import liver_enzymes_elevated as lee
from tests.builders import (
    NOW,
    SNOMED,
    condition,
    day,
    hook_request,
    medication_request,
    observation,
    prefetch_with,
    topics,
)
from tests.conftest import ClientFactory

SIGN = "/cds-services/naltrexone-order-sign"
ALT = ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma")
AST = ("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma")
BILIRUBIN = ("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma")


def alt(value: float | None, unit: str | None = "U/L", **kw: Any) -> dict[str, Any]:
    return observation(*ALT, value=value, unit=unit, **kw)


def ast(value: float | None, unit: str | None = "U/L", **kw: Any) -> dict[str, Any]:
    return observation(*AST, value=value, unit=unit, **kw)


def ranged(obs: dict[str, Any], high: float, unit: str | None) -> dict[str, Any]:
    """The Observation with a reference range whose unit differs from (or is missing beside) the result's."""
    obs["referenceRange"] = [{"high": {"value": high, **({"unit": unit} if unit else {})}}]
    return obs


def local_code(obs: dict[str, Any], text: str) -> dict[str, Any]:
    obs["code"] = {"coding": [{"system": "http://hospital.example.org/labs", "code": text.upper()}], "text": text}
    return obs


def post(c: TestClient, **prefetch: Any) -> dict[str, Any]:
    r = c.post(SIGN, json=hook_request(prefetch=prefetch_with(**prefetch)))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def card(out: dict[str, Any], rule: str) -> dict[str, Any]:
    found = [c for c in out["cards"] if c["source"]["topic"]["code"] == rule]
    assert len(found) == 1, f"expected one {rule} card, got {topics(out)}"
    only: dict[str, Any] = found[0]
    return only


def policy_client(make_client: ClientFactory, **policy: Any) -> TestClient:
    return make_client(Settings.development(policy=policy))


# -- liver-enzymes-elevated ----------------------------------------------------------------------------------------
FIRES: list[tuple[str, list[dict[str, Any]], str, list[str]]] = [
    # (id, liver results, indicator, strings the detail must show)
    (
        "alt-4.2x-range",
        [alt(168, high=40, days_ago=5)],
        "warning",
        ["168 U/L", "4.2× ULN", day(-5), "upper reference limit 40 U/L"],
    ),
    ("alt-exactly-3x", [alt(120, high=40)], "warning", ["3.0× ULN"]),
    ("ast-5x-is-critical", [ast(200, high=40, days_ago=2)], "critical", ["AST", "5.0× ULN", day(-2)]),
    ("ast-12x", [ast(480, high=40)], "critical", ["12.0× ULN"]),
    ("iu-per-l", [alt(130, "IU/L", high=40)], "warning", ["130 IU/L", "3.2× ULN"]),
    ("ucum-iu", [alt(130, "[IU]/L", high=40)], "warning", ["3.2× ULN"]),
    ("lower-case-unit", [alt(130, "u/l", high=40)], "warning", ["3.2× ULN"]),
    ("range-iu-result-u", [ranged(alt(130), 40, "IU/L")], "warning", ["3.2× ULN", "reference range"]),
    ("no-range-default-uln", [alt(130)], "warning", ["3.2× ULN", "site default ULN; no reference range"]),
    (
        "range-in-other-unit-default-uln",
        [ranged(alt(130), 0.67, "ukat/L")],
        "warning",
        ["3.2× ULN", "reference range in ukat/L"],
    ),
    ("range-without-unit-read-as-result-unit", [ranged(alt(170), 56, None)], "warning", ["3.0× ULN"]),
    ("exactly-90-days-old", [alt(400, high=40, days_ago=90)], "critical", [day(-90)]),
    ("amended", [alt(168, high=40, status="amended")], "warning", ["4.2× ULN"]),
    ("corrected", [alt(168, high=40, status="corrected")], "warning", ["4.2× ULN"]),
    ("worst-of-alt-and-ast-decides", [alt(140, high=40), ast(240, high=40)], "critical", ["3.5× ULN", "6.0× ULN"]),
    (
        "newer-unreadable-does-not-hide-older-high",
        [alt(3, "ukat/L", days_ago=1), alt(168, high=40, days_ago=10)],
        "warning",
        ["not interpreted: unit ukat/L", "4.2× ULN", day(-10)],
    ),
    ("normal-ast-listed-beside-high-alt", [alt(168, high=40), ast(30, high=40)], "warning", ["0.7× ULN"]),
]


@pytest.mark.parametrize(("case", "labs", "indicator", "shown"), FIRES, ids=[f[0] for f in FIRES])
def test_liver_enzymes_elevated_fires(
    client: TestClient, case: str, labs: list[dict[str, Any]], indicator: str, shown: list[str]
) -> None:
    c = card(post(client, liverTests=labs), "liver-enzymes-elevated")
    assert c["indicator"] == indicator
    for text in shown:
        assert text in c["detail"], f"{text!r} missing from the detail"
    assert "guideline practice" in c["detail"] and "five-fold or less" in c["detail"]
    # the stop level recommends removing the order; the caution level only a recheck of the liver panel
    expected = {"Order a hepatic function panel"} | (
        {"Remove the naltrexone order"} if indicator == "critical" else set()
    )
    assert {s["label"] for s in c["suggestions"]} == expected
    assert c["overrideReasons"]
    if indicator == "critical":
        assert "Do not start naltrexone" in c["summary"]
    else:
        assert "use caution" in c["summary"]


SILENT: list[tuple[str, list[dict[str, Any]]]] = [
    ("alt-2.9x", [alt(116, high=40)]),
    ("default-uln-2.9x", [alt(116)]),
    ("91-days-old", [alt(400, high=40, days_ago=91)]),
    ("entered-in-error", [alt(400, high=40, status="entered-in-error")]),
    ("preliminary", [alt(400, high=40, status="preliminary")]),
    ("cancelled", [alt(400, high=40, status="cancelled")]),
    ("no-date", [alt(400, high=40, days_ago=None)]),
    ("unit-ukat", [alt(4, "ukat/L")]),
    ("unit-missing", [alt(400, None)]),
    ("unit-mg-dl", [alt(400, "mg/dL")]),
    ("no-numeric-value", [observation(*ALT, value_string="high")]),
    ("local-code-text-only", [local_code(alt(400, high=40), "ALT")]),
    ("newer-normal-supersedes-older-high", [alt(30, high=40, days_ago=1), alt(400, high=40, days_ago=30)]),
    ("range-without-unit-2.7x", [ranged(alt(150), 56, None)]),
    ("bilirubin-is-not-an-enzyme", [observation(*BILIRUBIN, value=9, unit="mg/dL", high=1.2)]),
]


@pytest.mark.parametrize(("case", "labs"), SILENT, ids=[s[0] for s in SILENT])
def test_liver_enzymes_elevated_stays_silent(client: TestClient, case: str, labs: list[dict[str, Any]]) -> None:
    assert "liver-enzymes-elevated" not in topics(post(client, liverTests=labs))


POLICY: list[tuple[str, dict[str, Any], list[dict[str, Any]], str | None]] = [
    ("caution-2x-makes-2.9x-fire", {"liver_caution_uln_multiple": 2}, [alt(116, high=40)], "warning"),
    (
        "stop-4x-makes-4.2x-critical",
        {"liver_caution_uln_multiple": 2, "liver_stop_uln_multiple": 4},
        [alt(168, high=40)],
        "critical",
    ),
    ("caution-4x-silences-3.5x", {"liver_caution_uln_multiple": 4}, [alt(140, high=40)], None),
    ("default-alt-uln-30", {"alt_default_uln": 30}, [alt(100)], "warning"),
    ("default-ast-uln-30-not-used-for-alt", {"ast_default_uln": 30}, [alt(100)], None),
    ("lookback-120-days", {"liver_lookback_days": 120}, [alt(400, high=40, days_ago=100)], "critical"),
    ("lookback-30-days", {"liver_lookback_days": 30}, [alt(400, high=40, days_ago=40)], None),
    ("raised-to-critical", {"indicators": {"liver-enzymes-elevated": "critical"}}, [alt(130, high=40)], "critical"),
    ("lowered-to-info", {"indicators": {"liver-enzymes-elevated": "info"}}, [alt(400, high=40)], "info"),
]


@pytest.mark.parametrize(("case", "policy", "labs", "indicator"), POLICY, ids=[p[0] for p in POLICY])
def test_liver_enzymes_site_policy(
    make_client: ClientFactory, case: str, policy: dict[str, Any], labs: list[dict[str, Any]], indicator: str | None
) -> None:
    out = post(policy_client(make_client, **policy), liverTests=labs)
    if indicator is None:
        assert "liver-enzymes-elevated" not in topics(out)
    else:
        assert card(out, "liver-enzymes-elevated")["indicator"] == indicator


@pytest.mark.parametrize(
    ("unit", "readable"),
    [
        ("U/L", True),
        ("IU/L", True),
        ("[IU]/L", True),
        ("u/l", True),
        ("iu/L", True),
        (" U/L ", True),
        ("ukat/L", False),
        ("U/mL", False),
        ("mg/dL", False),
        ("", False),
        (None, False),
    ],
)
def test_only_u_per_l_results_are_divided(unit: str | None, readable: bool) -> None:
    lab = _lab("alt", Decimal(120), unit or None)
    reading = lee.read_enzyme(lab, "ALT", Decimal(40))
    assert (reading.multiple is not None) is readable
    if not readable:
        assert reading.shown().startswith("not interpreted: ")


@pytest.mark.parametrize(
    ("ref_high", "ref_unit", "uln"),
    [
        (Decimal(56), "U/L", Decimal(56)),
        (Decimal(56), "IU/L", Decimal(56)),
        (Decimal(56), None, Decimal(56)),
        (Decimal("0.93"), "ukat/L", Decimal(40)),
        (None, None, Decimal(40)),
        (Decimal(0), "U/L", Decimal(40)),
    ],
    ids=["range-u", "range-iu", "range-no-unit", "range-ukat", "no-range", "range-zero"],
)
def test_uln_is_the_range_when_units_agree_else_the_default(
    ref_high: Decimal | None, ref_unit: str | None, uln: Decimal
) -> None:
    lab = _lab("alt", Decimal(112), "U/L", ref_high=ref_high, ref_unit=ref_unit)
    assert lee.read_enzyme(lab, "ALT", Decimal(40)).uln == uln


@pytest.mark.parametrize(("value", "shown"), [("4.99", "4.9"), ("3", "3.0"), ("2.999", "2.9"), ("12.05", "12.0")])
def test_multiples_are_truncated_never_rounded_past_a_cut_off(value: str, shown: str) -> None:
    assert lee.fmt_multiple(Decimal(value)) == shown


def test_a_result_dated_after_now_counts_as_the_newest() -> None:
    snapshot = PatientSnapshot(
        patient=PatientInfo("p"),
        labs=(_lab("alt", Decimal(400), "U/L", days_ago=10), _lab("alt", Decimal(20), "U/L", days_ago=-1)),
    )
    readings = lee.enzyme_readings(snapshot, Policy(), NOW)
    chosen, _ = readings["alt"]
    assert chosen is not None and chosen.lab.value == 20


# -- hepatic-acute -------------------------------------------------------------------------------------------------
HEPATIC_ACUTE = ("B17.10", "Acute hepatitis C without hepatic coma")


@pytest.mark.parametrize(
    "cond",
    [
        condition(*HEPATIC_ACUTE, onset=-20),
        condition("K7200", "Acute and subacute hepatic failure without coma"),  # no dot
        condition("K70.41", "Alcoholic hepatic failure with coma", clinical="recurrence"),
        condition("B15.9", "Hepatitis A without hepatic coma", verification=None),
        condition("197270009", "Acute hepatitis (disorder)", system=SNOMED, clinical="relapse"),
        condition(*HEPATIC_ACUTE, verification="provisional", abatement=30),  # abatement in the future
    ],
    ids=["icd-b17", "icd-no-dot", "recurrence", "no-verification", "snomed-relapse", "future-abatement"],
)
def test_hepatic_acute_fires_critical_with_both_suggestions(client: TestClient, cond: dict[str, Any]) -> None:
    c = card(post(client, conditions=[cond]), "hepatic-acute")
    assert c["indicator"] == "critical"
    assert "Do not start naltrexone" in c["summary"] and len(c["summary"]) < 140
    assert cond["code"]["coding"][0]["display"] in c["detail"] and f"Condition/{cond['id']}" in c["detail"]
    assert '"acute liver failure or hepatitis"' in c["detail"]
    kinds = {a["type"]: a for s in c["suggestions"] for a in s["actions"]}
    assert kinds["delete"]["resourceId"] == "MedicationRequest/draft-ntx"
    assert kinds["create"]["resource"]["code"]["coding"][0]["code"] == "24325-3"
    assert c["selectionBehavior"] == "any"


@pytest.mark.parametrize(
    "cond",
    [
        condition(*HEPATIC_ACUTE, clinical="resolved", abatement=-10),
        condition(*HEPATIC_ACUTE, clinical="inactive"),
        condition(*HEPATIC_ACUTE, abatement=-1),
        condition(*HEPATIC_ACUTE, verification="refuted"),
        condition(*HEPATIC_ACUTE, verification="entered-in-error"),
        condition("B18.2", "Chronic viral hepatitis C"),
        condition("K76.0", "Fatty (change of) liver, not elsewhere classified"),
        {**condition(*HEPATIC_ACUTE), "code": {"text": "acute hepatitis"}},
    ],
    ids=[
        "resolved",
        "inactive",
        "abated-yesterday",
        "refuted",
        "entered-in-error",
        "chronic-not-acute",
        "fatty-liver",
        "free-text-only",
    ],
)
def test_hepatic_acute_stays_silent(client: TestClient, cond: dict[str, Any]) -> None:
    assert "hepatic-acute" not in topics(post(client, conditions=[cond]))


def test_hepatic_acute_can_be_lowered_by_site_policy(make_client: ClientFactory) -> None:
    c = policy_client(make_client, indicators={"hepatic-acute": "warning"})
    assert card(post(c, conditions=[condition(*HEPATIC_ACUTE)]), "hepatic-acute")["indicator"] == "warning"


# -- liver-disease-chronic -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cond",
    [
        condition("K74.60", "Unspecified cirrhosis of liver"),
        condition("K70.30", "Alcoholic cirrhosis of liver without ascites"),
        condition("B18.2", "Chronic viral hepatitis C"),
        condition("K754", "Autoimmune hepatitis"),
        condition("19943007", "Cirrhosis of liver (disorder)", system=SNOMED),
    ],
    ids=["k74-cirrhosis", "alcoholic-cirrhosis", "chronic-hep-c", "autoimmune-no-dot", "snomed-cirrhosis"],
)
def test_liver_disease_chronic_fires_with_a_panel_suggestion(client: TestClient, cond: dict[str, Any]) -> None:
    c = card(post(client, conditions=[cond]), "liver-disease-chronic")
    assert c["indicator"] == "warning"
    assert cond["code"]["coding"][0]["display"] in c["detail"] and day(-100) in c["detail"]
    assert "regular monitoring of liver" in c["detail"]
    assert [s["label"] for s in c["suggestions"]] == ["Order a hepatic function panel"]
    assert c["overrideReasons"]


@pytest.mark.parametrize(
    "cond",
    [
        condition("K74.60", "Unspecified cirrhosis of liver", clinical="resolved"),
        condition("K74.60", "Unspecified cirrhosis of liver", verification="entered-in-error"),
        condition("K74.60", "Unspecified cirrhosis of liver", abatement=-5),
        condition("K76.0", "Fatty (change of) liver, not elsewhere classified"),
        {**condition("K74.60", "x"), "code": {"text": "cirrhosis"}},
    ],
    ids=["resolved", "entered-in-error", "abated", "fatty-liver-not-listed", "free-text-only"],
)
def test_liver_disease_chronic_stays_silent(client: TestClient, cond: dict[str, Any]) -> None:
    assert "liver-disease-chronic" not in topics(post(client, conditions=[cond]))


# -- liver-panel-missing -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("labs", "shown"),
    [
        ([], []),
        ([alt(30, high=40, days_ago=100)], [day(-100), "older than 90 days"]),
        ([ast(30, high=40, days_ago=91), alt(25, days_ago=200)], [day(-91), day(-200)]),
        ([observation(*BILIRUBIN, value=0.8, unit="mg/dL")], []),
        ([alt(30, high=40, status="entered-in-error")], []),
        ([alt(30, high=40, status="preliminary")], []),
        ([alt(30, high=40, days_ago=None)], []),
        ([local_code(alt(30), "ALT")], []),
    ],
    ids=[
        "nothing",
        "alt-100-days-old",
        "both-old",
        "bilirubin-only",
        "entered-in-error",
        "preliminary",
        "undated",
        "local-code-only",
    ],
)
def test_liver_panel_missing_fires_as_info(client: TestClient, labs: list[dict[str, Any]], shown: list[str]) -> None:
    c = card(post(client, liverTests=labs), "liver-panel-missing")
    assert c["indicator"] == "info"
    assert "No ALT or AST result in the last 90 days" in c["summary"]
    assert [s["label"] for s in c["suggestions"]] == ["Order a hepatic function panel"]
    assert c["suggestions"][0]["actions"][0]["resource"]["subject"] == {"reference": "Patient/pat-1"}
    for text in shown:
        assert text in c["detail"]


@pytest.mark.parametrize(
    "labs",
    [[alt(4, "ukat/L", days_ago=3)], [alt(400, None), ast(3, "ukat/L")]],
    ids=["ukat", "no-unit-and-ukat"],
)
def test_liver_panel_missing_says_when_recent_results_cannot_be_interpreted(
    client: TestClient, labs: list[dict[str, Any]]
) -> None:
    out = post(client, liverTests=labs)
    assert "liver-enzymes-elevated" not in topics(out)
    c = card(out, "liver-panel-missing")
    assert "could not be interpreted" in c["summary"]
    assert "not interpreted: unit" in c["detail"]


@pytest.mark.parametrize(
    "labs",
    [[alt(30, high=40, days_ago=89)], [ast(25)], [alt(500, high=40)], [alt(3, "ukat/L"), ast(30)]],
    ids=["alt-89-days", "ast-only", "high-alt", "unreadable-alt-readable-ast"],
)
def test_liver_panel_missing_stays_silent_with_a_recent_result(client: TestClient, labs: list[dict[str, Any]]) -> None:
    assert "liver-panel-missing" not in topics(post(client, liverTests=labs))


def test_liver_panel_missing_is_silent_when_liver_tests_could_not_be_read(client: TestClient) -> None:
    failed = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    out = post(client, liverTests=failed)
    assert "liver-panel-missing" not in topics(out)
    assert "data-unavailable" in topics(out)


def test_liver_panel_missing_is_silent_when_liver_tests_were_read_only_in_part(client: TestClient) -> None:
    invalid = alt(30, days_ago=2)
    invalid["valueQuantity"]["value"] = "thirty"  # not valid FHIR: the category is reported as partly unreadable
    out = post(client, liverTests=[invalid])
    assert "liver-panel-missing" not in topics(out)
    assert "partly unreadable" in card(out, "data-unavailable")["detail"]


@pytest.mark.parametrize(
    ("policy", "labs", "fires"),
    [
        ({"indicators": {"liver-panel-missing": "off"}}, [], False),
        ({"liver_lookback_days": 120}, [alt(30, days_ago=100)], False),
        ({"liver_lookback_days": 30}, [alt(30, days_ago=40)], True),
        ({"indicators": {"liver-panel-missing": "warning"}}, [], True),
    ],
    ids=["turned-off", "lookback-120", "lookback-30", "raised-to-warning"],
)
def test_liver_panel_missing_site_policy(
    make_client: ClientFactory, policy: dict[str, Any], labs: list[dict[str, Any]], fires: bool
) -> None:
    out = post(policy_client(make_client, **policy), liverTests=labs)
    assert ("liver-panel-missing" in topics(out)) is fires
    if policy.get("indicators", {}).get("liver-panel-missing") == "warning":
        assert card(out, "liver-panel-missing")["overrideReasons"]


# -- combinations --------------------------------------------------------------------------------------------------
def test_alcohol_use_with_alt_4x_and_depression_gives_liver_warning_and_mood_info(client: TestClient) -> None:
    out = post(
        client,
        liverTests=[alt(160, high=40, days_ago=3), ast(90, high=40, days_ago=3)],
        conditions=[
            condition("F10.20", "Alcohol dependence, uncomplicated"),
            condition("F32.1", "Major depressive disorder, single episode, moderate"),
        ],
        medicationRequests=[medication_request()],  # an active opioid: a critical card to order against
    )
    assert card(out, "liver-enzymes-elevated")["indicator"] == "warning"
    assert card(out, "mental-health-monitoring")["indicator"] == "info"
    assert "liver-panel-missing" not in topics(out) and "liver-disease-chronic" not in topics(out)
    ranks = [{"critical": 0, "warning": 1, "info": 2}[c["indicator"]] for c in out["cards"]]
    assert ranks == sorted(ranks) and ranks[0] == 0, "critical cards first, then warning, then info"


def test_acute_and_chronic_liver_disease_with_high_enzymes_each_get_their_card(client: TestClient) -> None:
    out = post(
        client,
        liverTests=[alt(600, high=40)],
        conditions=[condition(*HEPATIC_ACUTE), condition("K74.60", "Unspecified cirrhosis of liver")],
    )
    assert card(out, "hepatic-acute")["indicator"] == "critical"
    assert card(out, "liver-enzymes-elevated")["indicator"] == "critical"
    assert card(out, "liver-disease-chronic")["indicator"] == "warning"


def _lab(
    group: str,
    value: Decimal | None,
    unit: str | None,
    *,
    days_ago: int = 1,
    ref_high: Decimal | None = None,
    ref_unit: str | None = None,
) -> LabResult:
    return LabResult(
        ref=f"Observation/{group}-{days_ago}",
        code=Concept(text=group.upper()),
        status="final",
        groups=frozenset({group}),
        effective=NOW - timedelta(days=days_ago),
        value=value,
        unit=unit,
        ref_high=ref_high,
        ref_unit=ref_unit,
    )
