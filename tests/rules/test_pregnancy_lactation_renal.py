"""pregnancy, lactation and renal-impairment: fire on their cases, stay silent on the near misses and bad data.

Cases go through the HTTP endpoint (prefetch keys ``pregnancyObservations``, ``lactationObservations``,
``renalObservations``, ``conditions``), dated in days before ``tests.builders.NOW``. Answer reading has pure unit
tests too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.config import Settings
from cds_service.domain import Coding, Concept, LabResult
from cds_service.rules import lactation, pregnancy
from tests.builders import LOINC, NOW, SNOMED, cc, condition, day, hook_request, observation, prefetch_with, topics
from tests.conftest import ClientFactory

SIGN = "/cds-services/naltrexone-order-sign"
PREGNANCY_STATUS = ("82810-3", "Pregnancy status")
BREASTFEEDING_STATUS = ("63895-7", "Breastfeeding status")
HCG_URINE = ("2106-3", "Choriogonadotropin (pregnancy test) [Presence] in Urine")
HCG_QUANT = ("2118-8", "hCG (serum)")
EGFR = ("98979-8", "eGFR (CKD-EPI 2021)")
LOCAL = "http://hospital.example.org/codes"


def answered(
    code: tuple[str, str], answer: str | None, display: str | None = None, system: str = LOINC, **kw: Any
) -> dict[str, Any]:
    """A status Observation answered with a coded value (``answer`` None: text only, a local answer)."""
    obs = observation(*code, **kw)
    obs["valueCodeableConcept"] = cc(answer, system, display) if answer else {"text": display}
    return obs


def preg(answer: str | None, display: str | None = None, system: str = LOINC, **kw: Any) -> dict[str, Any]:
    return answered(PREGNANCY_STATUS, answer, display, system, **kw)


def bf(answer: str | None, display: str | None = None, system: str = LOINC, **kw: Any) -> dict[str, Any]:
    return answered(BREASTFEEDING_STATUS, answer, display, system, **kw)


def hcg(**kw: Any) -> dict[str, Any]:
    return observation(*HCG_URINE, **kw)


def hcg_quant(value: float, **kw: Any) -> dict[str, Any]:
    return observation(*HCG_QUANT, value=value, unit="mIU/mL", **kw)


def egfr(value: float, unit: str | None = "mL/min/{1.73_m2}", **kw: Any) -> dict[str, Any]:
    return observation(*EGFR, value=value, unit=unit, **kw)


def local_code(obs: dict[str, Any]) -> dict[str, Any]:
    obs["code"] = {"coding": [{"system": LOCAL, "code": "X1"}], "text": obs["code"]["coding"][0]["display"]}
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


PREGNANT = ("LA15173-0", "Pregnant")
NOT_PREGNANT = ("LA26683-5", "Not pregnant")
UNKNOWN = ("LA4489-6", "Unknown")
NORMAL_PREGNANCY = ("72892002", "Normal pregnancy")

# -- pregnancy ---------------------------------------------------------------------------------------------------
PREGNANCY_FIRES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("status-loinc-pregnant", {"pregnancyObservations": [preg(*PREGNANT, days_ago=10)]}, ["Pregnant", day(-10)]),
    ("status-snomed-pregnant", {"pregnancyObservations": [preg("77386006", "Pregnant", SNOMED)]}, ["Pregnant"]),
    ("status-local-answer-text", {"pregnancyObservations": [preg(None, "Pregnant")]}, ["Pregnant"]),
    ("status-pregnant-then-unknown",
     {"pregnancyObservations": [preg(*PREGNANT, days_ago=20), preg(*UNKNOWN, days_ago=2)]}, [day(-20)]),
    ("status-pregnant-279-days", {"pregnancyObservations": [preg(*PREGNANT, days_ago=279)]}, [day(-279)]),
    ("hcg-interpretation-pos", {"pregnancyObservations": [hcg(interpretation="POS", days_ago=5)]},
     ["interpretation POS", day(-5), "no later negative test or delivery"]),
    ("hcg-coded-positive", {"pregnancyObservations": [hcg(value_code=("10828004", "Positive"))]}, ["Positive"]),
    ("hcg-string-positive", {"pregnancyObservations": [hcg(value_string="Positive")]}, ["Positive"]),
    ("hcg-quantitative-no-range", {"pregnancyObservations": [hcg_quant(1200)]}, ["1200 mIU/mL"]),
    ("hcg-quantitative-above-range", {"pregnancyObservations": [hcg_quant(50, high=5)]}, ["50 mIU/mL"]),
    ("hcg-positive-after-earlier-negative",
     {"pregnancyObservations": [hcg(interpretation="NEG", days_ago=30), hcg(interpretation="POS", days_ago=5)]},
     [day(-5)]),
    ("hcg-positive-after-not-pregnant-status",
     {"pregnancyObservations": [preg(*NOT_PREGNANT, days_ago=60), hcg(interpretation="POS", days_ago=10)]},
     [day(-10)]),
    ("hcg-positive-279-days", {"pregnancyObservations": [hcg(interpretation="POS", days_ago=279)]}, [day(-279)]),
    ("condition-z34", {"conditions": [condition("Z34.00", "Encounter for supervision of normal first pregnancy")]},
     ["Encounter for supervision of normal first pregnancy"]),
    ("condition-o09-no-dot", {"conditions": [condition("O09511", "Supervision of elderly primigravida")]},
     ["Supervision of elderly primigravida"]),
    ("condition-snomed", {"conditions": [condition(*NORMAL_PREGNANCY, system=SNOMED, onset=-60)]},
     ["Normal pregnancy", day(-60)]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "prefetch", "shown"), PREGNANCY_FIRES, ids=[f[0] for f in PREGNANCY_FIRES])
def test_pregnancy_fires(client: TestClient, case: str, prefetch: dict[str, Any], shown: list[str]) -> None:
    c = card(post(client, **prefetch), "pregnancy")
    assert c["indicator"] == "warning"
    assert len(c["summary"]) < 140 and c["summary"].startswith("Pregnant")
    for text in shown:
        assert text in c["detail"], f"{text!r} missing from the detail"
    assert "insufficient data on its safety" in c["detail"]
    assert c["overrideReasons"] and "suggestions" not in c


PREGNANCY_SILENT: list[tuple[str, dict[str, Any]]] = [
    ("status-not-pregnant", {"pregnancyObservations": [preg(*NOT_PREGNANT)]}),
    ("status-snomed-not-pregnant", {"pregnancyObservations": [preg("60001007", "Not pregnant", SNOMED)]}),
    ("status-local-text-not-pregnant", {"pregnancyObservations": [preg(None, "Not pregnant")]}),
    ("status-unknown-only", {"pregnancyObservations": [preg(*UNKNOWN)]}),
    ("status-text-unknown", {"pregnancyObservations": [preg(None, "Pregnancy status unknown")]}),
    ("later-not-pregnant-supersedes",
     {"pregnancyObservations": [preg(*PREGNANT, days_ago=100), preg(*NOT_PREGNANT, days_ago=5)]}),
    ("later-negative-hcg-supersedes-status",
     {"pregnancyObservations": [preg(*PREGNANT, days_ago=100), hcg(interpretation="NEG", days_ago=5)]}),
    ("status-pregnant-300-days-ago", {"pregnancyObservations": [preg(*PREGNANT, days_ago=300)]}),
    ("status-entered-in-error", {"pregnancyObservations": [preg(*PREGNANT, status="entered-in-error")]}),
    ("status-undated", {"pregnancyObservations": [preg(*PREGNANT, days_ago=None)]}),
    ("hcg-negative", {"pregnancyObservations": [hcg(interpretation="NEG")]}),
    ("hcg-negative-string", {"pregnancyObservations": [hcg(value_string="Negative")]}),
    ("hcg-positive-300-days-ago", {"pregnancyObservations": [hcg(interpretation="POS", days_ago=300)]}),
    ("hcg-positive-then-negative",
     {"pregnancyObservations": [hcg(interpretation="POS", days_ago=40), hcg(interpretation="NEG", days_ago=3)]}),
    ("hcg-positive-then-not-pregnant-status",
     {"pregnancyObservations": [hcg(interpretation="POS", days_ago=40), preg(*NOT_PREGNANT, days_ago=3)]}),
    ("hcg-positive-then-delivery",
     {"pregnancyObservations": [hcg(interpretation="POS", days_ago=250)],
      "conditions": [condition(*NORMAL_PREGNANCY, system=SNOMED, clinical="resolved", onset=-250, abatement=-10)]}),
    ("hcg-entered-in-error", {"pregnancyObservations": [hcg(interpretation="POS", status="entered-in-error")]}),
    ("hcg-preliminary", {"pregnancyObservations": [hcg(interpretation="POS", status="preliminary")]}),
    ("hcg-undated", {"pregnancyObservations": [hcg(interpretation="POS", days_ago=None)]}),
    ("hcg-quantitative-equivocal", {"pregnancyObservations": [hcg_quant(12)]}),
    ("hcg-quantitative-low", {"pregnancyObservations": [hcg_quant(2)]}),
    ("hcg-quantitative-below-range", {"pregnancyObservations": [hcg_quant(3, high=5)]}),
    ("hcg-no-result", {"pregnancyObservations": [hcg()]}),
    ("hcg-local-code", {"pregnancyObservations": [local_code(hcg(interpretation="POS"))]}),
    ("completed-pregnancy-condition",
     {"conditions": [condition(*NORMAL_PREGNANCY, system=SNOMED, clinical="resolved", abatement=-30)]}),
    ("pregnancy-condition-abated-active-status",
     {"conditions": [condition("Z34.00", "Normal first pregnancy", abatement=-30)]}),
    ("pregnancy-condition-refuted",
     {"conditions": [condition("Z34.00", "Normal first pregnancy", verification="refuted")]}),
]  # fmt: skip


@pytest.mark.parametrize(("case", "prefetch"), PREGNANCY_SILENT, ids=[s[0] for s in PREGNANCY_SILENT])
def test_pregnancy_stays_silent(client: TestClient, case: str, prefetch: dict[str, Any]) -> None:
    assert "pregnancy" not in topics(post(client, **prefetch))


@pytest.mark.parametrize(
    ("policy", "prefetch", "indicator"),
    [
        ({"hcg_lookback_days": 365}, {"pregnancyObservations": [hcg(interpretation="POS", days_ago=300)]}, "warning"),
        ({"hcg_lookback_days": 100}, {"pregnancyObservations": [hcg(interpretation="POS", days_ago=150)]}, None),
        ({"hcg_lookback_days": 100}, {"pregnancyObservations": [preg(*PREGNANT, days_ago=150)]}, None),
        ({"indicators": {"pregnancy": "critical"}}, {"pregnancyObservations": [preg(*PREGNANT)]}, "critical"),
    ],
    ids=["hcg-lookback-365", "hcg-lookback-100", "status-lookback-100", "raised-to-critical"],
)
def test_pregnancy_site_policy(
    make_client: ClientFactory, policy: dict[str, Any], prefetch: dict[str, Any], indicator: str | None
) -> None:
    out = post(make_client(Settings.development(policy=policy)), **prefetch)
    if indicator is None:
        assert "pregnancy" not in topics(out)
    else:
        assert card(out, "pregnancy")["indicator"] == indicator


def test_pregnancy_evidence_lists_every_source(client: TestClient) -> None:
    out = post(
        client,
        pregnancyObservations=[preg(*PREGNANT, days_ago=12, id="status-1"), hcg(interpretation="POS", id="hcg-1")],
        conditions=[condition("Z34.00", "Normal first pregnancy", id="cond-1")],
    )
    detail = card(out, "pregnancy")["detail"]
    for ref in ("Observation/status-1", "Observation/hcg-1", "Condition/cond-1"):
        assert ref in detail


# -- lactation ---------------------------------------------------------------------------------------------------
BREASTFEEDING = ("LA29252-6", "Currently breastfeeding")
NOT_BREASTFEEDING = ("LA29253-4", "Not currently breastfeeding")

LACTATION_FIRES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("loinc-currently-breastfeeding", {"lactationObservations": [bf(*BREASTFEEDING, days_ago=4)]},
     ["Currently breastfeeding", day(-4)]),
    ("text-exclusively", {"lactationObservations": [bf(None, "Exclusively breastfeeding")]}, ["Exclusively"]),
    ("text-partially", {"lactationObservations": [bf(None, "Partially breastfeeding")]}, ["Partially"]),
    ("local-code-with-display", {"lactationObservations": [bf("BF1", "Breast feeding", LOCAL)]}, ["Breast feeding"]),
    ("value-string-yes", {"lactationObservations": [observation(*BREASTFEEDING_STATUS, value_string="Yes")]}, ["Yes"]),
    ("no-lookback-in-the-spec", {"lactationObservations": [bf(*BREASTFEEDING, days_ago=700)]}, [day(-700)]),
    ("later-yes-supersedes-no",
     {"lactationObservations": [bf(*NOT_BREASTFEEDING, days_ago=90), bf(*BREASTFEEDING, days_ago=3)]}, [day(-3)]),
    ("condition-z39-1", {"conditions": [condition("Z39.1", "Encounter for care and examination of lactating mother")]},
     ["lactating mother"]),
    ("condition-snomed", {"conditions": [condition("169745008", "Breastfeeding (mother)", system=SNOMED)]},
     ["Breastfeeding (mother)"]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "prefetch", "shown"), LACTATION_FIRES, ids=[f[0] for f in LACTATION_FIRES])
def test_lactation_fires(client: TestClient, case: str, prefetch: dict[str, Any], shown: list[str]) -> None:
    c = card(post(client, **prefetch), "lactation")
    assert c["indicator"] == "warning"
    assert len(c["summary"]) < 140 and c["summary"].startswith("Breastfeeding")
    for text in shown:
        assert text in c["detail"], f"{text!r} missing from the detail"
    assert "pregnancy and lactation should be carefully considered" in c["detail"]
    assert c["overrideReasons"]


LACTATION_SILENT: list[tuple[str, dict[str, Any]]] = [
    ("loinc-not-breastfeeding", {"lactationObservations": [bf(*NOT_BREASTFEEDING)]}),
    ("text-not-breastfeeding", {"lactationObservations": [bf(None, "Not breastfeeding")]}),
    ("value-string-no", {"lactationObservations": [observation(*BREASTFEEDING_STATUS, value_string="No")]}),
    ("later-no-supersedes-yes",
     {"lactationObservations": [bf(*BREASTFEEDING, days_ago=200), bf(*NOT_BREASTFEEDING, days_ago=2)]}),
    ("unknown", {"lactationObservations": [bf(*UNKNOWN)]}),
    ("entered-in-error", {"lactationObservations": [bf(*BREASTFEEDING, status="entered-in-error")]}),
    ("undated", {"lactationObservations": [bf(*BREASTFEEDING, days_ago=None)]}),
    ("local-observation-code", {"lactationObservations": [local_code(bf(*BREASTFEEDING))]}),
    ("condition-resolved",
     {"conditions": [condition("Z39.1", "Care of lactating mother", clinical="resolved", abatement=-40)]}),
    ("condition-entered-in-error",
     {"conditions": [condition("Z39.1", "Care of lactating mother", verification="entered-in-error")]}),
]  # fmt: skip


@pytest.mark.parametrize(("case", "prefetch"), LACTATION_SILENT, ids=[s[0] for s in LACTATION_SILENT])
def test_lactation_stays_silent(client: TestClient, case: str, prefetch: dict[str, Any]) -> None:
    assert "lactation" not in topics(post(client, **prefetch))


# -- renal-impairment --------------------------------------------------------------------------------------------
RENAL_FIRES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("egfr-38-ucum", {"renalObservations": [egfr(38, days_ago=30)]}, ["38 mL/min/{1.73_m2}", day(-30), "below 50"]),
    ("egfr-49.9", {"renalObservations": [egfr(49.9, "mL/min/1.73m2")]}, ["49.9 mL/min/1.73m2"]),
    ("unit-with-space", {"renalObservations": [egfr(30, "mL/min/1.73 m2")]}, ["30 mL/min/1.73 m2"]),
    ("unit-superscript", {"renalObservations": [egfr(30, "ml/min/1.73m²")]}, ["ml/min/1.73m²"]),
    ("unit-per", {"renalObservations": [egfr(30, "mL/min per 1.73 m2")]}, ["mL/min per 1.73 m2"]),
    ("exactly-180-days", {"renalObservations": [egfr(30, days_ago=180)]}, [day(-180)]),
    ("amended", {"renalObservations": [egfr(30, status="amended")]}, ["30 mL/min"]),
    ("newer-unreadable-listed",
     {"renalObservations": [egfr(30, "mL/min", days_ago=2), egfr(40, days_ago=10)]},
     ["not interpreted: unit mL/min", day(-10)]),
    ("condition-ckd-4", {"conditions": [condition("N18.4", "Chronic kidney disease, stage 4 (severe)")]},
     ["Chronic kidney disease, stage 4"]),
    ("condition-ckd-3b", {"conditions": [condition("N18.32", "Chronic kidney disease, stage 3b")]}, ["stage 3b"]),
    ("condition-esrd-no-dot", {"conditions": [condition("N186", "End stage renal disease")]}, ["End stage"]),
    ("condition-aki", {"conditions": [condition("N17.9", "Acute kidney failure, unspecified")]}, ["Acute kidney"]),
    ("condition-snomed", {"conditions": [condition("433146000", "Chronic kidney disease stage 5", system=SNOMED)]},
     ["stage 5"]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "prefetch", "shown"), RENAL_FIRES, ids=[f[0] for f in RENAL_FIRES])
def test_renal_impairment_fires(client: TestClient, case: str, prefetch: dict[str, Any], shown: list[str]) -> None:
    c = card(post(client, **prefetch), "renal-impairment")
    assert c["indicator"] == "warning"
    assert len(c["summary"]) < 140
    for text in shown:
        assert text in c["detail"], f"{text!r} missing from the detail"
    assert "kidney problems" in c["detail"] and "CrCl 50–80" in c["detail"]
    assert c["overrideReasons"]


RENAL_SILENT: list[tuple[str, dict[str, Any]]] = [
    ("egfr-50-is-not-below-50", {"renalObservations": [egfr(50)]}),
    ("egfr-75", {"renalObservations": [egfr(75)]}),
    ("181-days-old", {"renalObservations": [egfr(30, days_ago=181)]}),
    ("unit-ml-min-is-a-clearance", {"renalObservations": [egfr(30, "mL/min")]}),
    ("no-unit", {"renalObservations": [egfr(30, None)]}),
    ("entered-in-error", {"renalObservations": [egfr(30, status="entered-in-error")]}),
    ("undated", {"renalObservations": [egfr(30, days_ago=None)]}),
    ("newer-normal-supersedes-older-low", {"renalObservations": [egfr(70, days_ago=5), egfr(30, days_ago=60)]}),
    ("local-code", {"renalObservations": [local_code(egfr(30))]}),
    ("ckd-3a-not-listed", {"conditions": [condition("N18.31", "Chronic kidney disease, stage 3a")]}),
    ("ckd-2-not-listed", {"conditions": [condition("N18.2", "Chronic kidney disease, stage 2 (mild)")]}),
    ("ckd-4-resolved", {"conditions": [condition("N18.4", "Chronic kidney disease, stage 4", clinical="resolved")]}),
]


@pytest.mark.parametrize(("case", "prefetch"), RENAL_SILENT, ids=[s[0] for s in RENAL_SILENT])
def test_renal_impairment_stays_silent(client: TestClient, case: str, prefetch: dict[str, Any]) -> None:
    assert "renal-impairment" not in topics(post(client, **prefetch))


@pytest.mark.parametrize(
    ("policy", "labs", "fires"),
    [
        ({"egfr_caution_below": 60}, [egfr(55)], True),
        ({"egfr_caution_below": 30}, [egfr(38)], False),
        ({"egfr_lookback_days": 365}, [egfr(30, days_ago=200)], True),
        ({"egfr_lookback_days": 30}, [egfr(30, days_ago=40)], False),
    ],
    ids=["below-60-makes-55-fire", "below-30-silences-38", "lookback-365", "lookback-30"],
)
def test_renal_impairment_site_policy(
    make_client: ClientFactory, policy: dict[str, Any], labs: list[dict[str, Any]], fires: bool
) -> None:
    out = post(make_client(Settings.development(policy=policy)), renalObservations=labs)
    assert ("renal-impairment" in topics(out)) is fires


# -- answer reading (pure) -----------------------------------------------------------------------------------------
def _answer(codes: tuple[str, ...] = (), text: str | None = None, value_string: str | None = None) -> LabResult:
    concept = Concept(tuple(Coding(LOINC, c) for c in codes), text) if codes or text else None
    return LabResult(
        ref="Observation/a",
        code=Concept(text="status"),
        status="final",
        groups=frozenset({"pregnancy-status", "lactation-status"}),
        effective=NOW - timedelta(days=1),
        value_concept=concept,
        value_string=value_string,
    )


@pytest.mark.parametrize(
    ("lab", "expected"),
    [
        (_answer(("LA15173-0",)), True),
        (_answer(("77386006",)), True),
        (_answer(("LA26683-5",)), False),
        (_answer(("60001007",)), False),
        (_answer(("LA4489-6",)), None),
        (_answer(text="Pregnant"), True),
        (_answer(text="pregnant - confirmed by ultrasound"), True),
        (_answer(text="Not pregnant"), False),
        (_answer(text="Non-pregnant"), False),
        (_answer(text="Possible pregnancy"), None),
        (_answer(text="Not known"), None),
        (_answer(value_string="yes"), True),
        (_answer(value_string="No"), False),
        (_answer(), None),
    ],
    ids=["la-pregnant", "snomed-pregnant", "la-not", "snomed-not", "la-unknown", "text", "text-long", "text-not",
         "text-non", "text-possible", "text-not-known", "string-yes", "string-no", "no-answer"],
)  # fmt: skip
def test_pregnancy_status_answers(lab: LabResult, expected: bool | None) -> None:
    assert pregnancy._pregnancy_status(lab) is expected


@pytest.mark.parametrize(
    ("lab", "expected"),
    [
        (_answer(("LA29252-6",)), True),
        (_answer(("LA29253-4",)), False),
        (_answer(("LA4489-6",)), None),
        (_answer(text="Exclusively breastfeeding"), True),
        (_answer(text="Partially breastfeeding"), True),
        (_answer(text="Breast-feeding"), True),
        (_answer(text="Lactating"), True),
        (_answer(text="Not breastfeeding"), False),
        (_answer(text="Weaned"), False),
        (_answer(text="Formula feeding"), None),
    ],
    ids=["la-yes", "la-no", "la-unknown", "exclusively", "partially", "hyphen", "lactating", "not", "weaned",
         "formula-unread"],
)  # fmt: skip
def test_breastfeeding_answers(lab: LabResult, expected: bool | None) -> None:
    assert lactation.breastfeeding_answer(lab) is expected


def test_censored_egfr_is_compared_only_when_it_can_be(make_client: Any) -> None:
    """eGFR ">60" is above a 50 cut-off (no card) but says nothing about a 70 cut-off (no division, no stop)."""
    from cds_service.config import Settings
    from tests.builders import hook_request, observation, prefetch_with, topics

    egfr = observation("98979-8", "eGFR CKD-EPI 2021", days_ago=10, value=60, unit="mL/min/{1.73_m2}")
    egfr["valueQuantity"]["comparator"] = ">"
    body = hook_request(prefetch=prefetch_with(renalObservations=[egfr]))
    default = make_client().post("/cds-services/naltrexone-order-sign", json=body).json()
    assert "renal-impairment" not in topics(default)
    strict = make_client(Settings.development(policy={"egfr_caution_below": 70}))
    assert "renal-impairment" not in topics(strict.post("/cds-services/naltrexone-order-sign", json=body).json())
