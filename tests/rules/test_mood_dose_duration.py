"""mental-health-monitoring, dose-regimen and duration-short: fire on their cases, stay silent on the near misses.

Cases go through the HTTP endpoint with the draft order built by ``tests.builders.naltrexone_draft`` (default: oral
50 mg once a day, 30 days' supply, 5 refills: a documented regimen and a 180-day course). The schedule arithmetic
and course length also have pure unit tests.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.config import Settings
from cds_service.domain import Concept, Dose, NaltrexoneOrder, Product
from cds_service.rules import dose_regimen, duration_short
from tests.builders import (
    CONTRAVE,
    NOW,
    SNOMED,
    VIVITROL,
    condition,
    day,
    hook_request,
    naltrexone_draft,
    prefetch_with,
    topics,
)
from tests.conftest import ClientFactory

SIGN = "/cds-services/naltrexone-order-sign"
IM = {"coding": [{"system": SNOMED, "code": "78421000", "display": "Intramuscular route"}]}
IV = {"coding": [{"system": SNOMED, "code": "47625008", "display": "Intravenous route"}]}


def post(c: TestClient, draft: dict[str, Any] | None = None, **prefetch: Any) -> dict[str, Any]:
    body = hook_request(draft_orders=[draft or naltrexone_draft()], prefetch=prefetch_with(**prefetch))
    r = c.post(SIGN, json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def card(out: dict[str, Any], rule: str) -> dict[str, Any]:
    found = [c for c in out["cards"] if c["source"]["topic"]["code"] == rule]
    assert len(found) == 1, f"expected one {rule} card, got {topics(out)}"
    only: dict[str, Any] = found[0]
    return only


def instruction(
    mg: float | None,
    *,
    unit: str = "mg",
    frequency: int | None = 1,
    period: float | None = 1,
    period_unit: str = "d",
    days: list[str] | None = None,
    route: dict[str, Any] | None = None,
    text: str | None = None,
) -> dict[str, Any]:
    """One FHIR dosageInstruction."""
    repeat: dict[str, Any] = {}
    if frequency is not None:
        repeat["frequency"] = frequency
    if period is not None:
        repeat["period"], repeat["periodUnit"] = period, period_unit
    if days:
        repeat["dayOfWeek"] = days
    out: dict[str, Any] = {}
    if repeat:
        out["timing"] = {"repeat": repeat}
    if mg is not None:
        out["doseAndRate"] = [{"doseQuantity": {"value": mg, "unit": unit}}]
    if route:
        out["route"] = route
    if text:
        out["text"] = text
    return out


def oral(*instructions: dict[str, Any]) -> dict[str, Any]:
    return naltrexone_draft(dosageInstruction=list(instructions))


def injection(*instructions: dict[str, Any], refills: int = 5) -> dict[str, Any]:
    return naltrexone_draft(VIVITROL, supply_days=None, refills=refills, dosageInstruction=list(instructions))


WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]

# -- dose-regimen --------------------------------------------------------------------------------------------------
DOCUMENTED: list[tuple[str, dict[str, Any]]] = [
    ("oral-50mg-daily", naltrexone_draft()),
    ("oral-25mg-daily-induction", naltrexone_draft(dose_mg=25)),
    ("oral-100mg-every-other-day", naltrexone_draft(dose_mg=100, period=2)),
    ("oral-150mg-every-third-day", naltrexone_draft(dose_mg=150, period=3)),
    ("oral-2-tablets-every-other-day", naltrexone_draft(dose_mg=2, dose_unit="tablet", period=2)),
    ("oral-1-tablet-daily", naltrexone_draft(dose_mg=1, dose_unit="tablet")),
    ("oral-50mg-every-24-hours", naltrexone_draft(period=24, period_unit="h")),
    ("oral-50mg-on-all-seven-days", oral(instruction(50, days=[*WEEKDAYS, "sat", "sun"]))),
    ("oral-weekdays-50-saturday-100", oral(instruction(50, days=WEEKDAYS), instruction(100, days=["sat"]))),
    ("oral-saturday-first", oral(instruction(100, days=["sat"], period=None), instruction(50, days=WEEKDAYS))),
    ("oral-induction-then-maintenance", oral(instruction(25), instruction(50))),
    ("injection-380mg-every-4-weeks", naltrexone_draft(VIVITROL, dose_mg=380, period=4, period_unit="wk")),
    ("injection-380mg-every-28-days", naltrexone_draft(VIVITROL, dose_mg=380, period=28)),
    ("injection-380mg-monthly", naltrexone_draft(VIVITROL, dose_mg=380, period=1, period_unit="mo")),
    ("injection-380mg-every-30-days", naltrexone_draft(VIVITROL, dose_mg=380, period=30)),
    ("injection-1-kit-every-4-weeks", injection(instruction(1, unit="kit", period=4, period_unit="wk"))),
    ("injection-intramuscular-route", injection(instruction(380, period=4, period_unit="wk", route=IM))),
    ("combo-has-no-regimen-in-the-spec", naltrexone_draft(CONTRAVE, dose_mg=1, dose_unit="tablet", frequency=2)),
    ("no-dose-yet", naltrexone_draft(dose_mg=None)),
]


@pytest.mark.parametrize(("case", "draft"), DOCUMENTED, ids=[d[0] for d in DOCUMENTED])
def test_dose_regimen_is_silent_on_documented_regimens(client: TestClient, case: str, draft: dict[str, Any]) -> None:
    assert "dose-regimen" not in topics(post(client, draft))


NOT_DOCUMENTED: list[tuple[str, dict[str, Any], str]] = [
    ("oral-25mg-twice-a-day", naltrexone_draft(dose_mg=25, frequency=2), "25 mg twice a day"),
    ("oral-100mg-daily", naltrexone_draft(dose_mg=100), "100 mg once a day"),
    ("oral-2-tablets-daily", naltrexone_draft(dose_mg=2, dose_unit="tablet"), "100 mg (2 tablet) once a day"),
    ("oral-50mg-every-other-day", naltrexone_draft(period=2), "50 mg every 2 days"),
    ("oral-75mg-daily", naltrexone_draft(dose_mg=75), "75 mg once a day"),
    ("oral-150mg-every-other-day", naltrexone_draft(dose_mg=150, period=2), "150 mg every 2 days"),
    ("oral-50mg-three-times-a-day", naltrexone_draft(frequency=3), "50 mg 3 times a day"),
    ("oral-weekdays-only", oral(instruction(50, days=WEEKDAYS)), "50 mg on Mon, Tue, Wed, Thu, Fri once a day"),
    ("oral-weekdays-with-50-saturday", oral(instruction(50, days=WEEKDAYS), instruction(50, days=["sat"])),
     "50 mg on Sat"),
    ("oral-three-instructions", oral(instruction(25), instruction(50), instruction(100, period=2)),
     "100 mg every 2 days"),
    ("oral-maintenance-then-25", oral(instruction(50), instruction(25)), "25 mg once a day"),
    ("injection-every-2-weeks", naltrexone_draft(VIVITROL, dose_mg=380, period=2, period_unit="wk"), "every 2 weeks"),
    ("injection-weekly", naltrexone_draft(VIVITROL, dose_mg=380, period=1, period_unit="wk"), "380 mg once a week"),
    ("injection-190mg-monthly", naltrexone_draft(VIVITROL, dose_mg=190, period=1, period_unit="mo"), "190 mg"),
    ("injection-intravenous", injection(instruction(380, period=4, period_unit="wk", route=IV)), "Intravenous route"),
    ("injection-2-kits", injection(instruction(2, unit="kit", period=4, period_unit="wk")), "2 kit every 4 weeks"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "draft", "ordered"), NOT_DOCUMENTED, ids=[n[0] for n in NOT_DOCUMENTED])
def test_dose_regimen_fires_and_says_what_was_ordered_and_what_is_documented(
    client: TestClient, case: str, draft: dict[str, Any], ordered: str
) -> None:
    c = card(post(client, draft), "dose-regimen")
    assert c["indicator"] == "warning" and c["overrideReasons"]
    assert "Not a documented naltrexone regimen" in c["summary"] and len(c["summary"]) < 140
    assert ordered in c["detail"]
    documented = "380 mg intramuscularly every 4 weeks" if case.startswith("injection") else "150 mg every 3 days"
    assert documented in c["detail"]
    assert "MedicationRequest/draft-ntx" in c["detail"]
    assert "2 tab. every other day" in c["detail"]


UNCHECKED: list[tuple[str, dict[str, Any], str]] = [
    ("amount-in-puffs", naltrexone_draft(dose_mg=2, dose_unit="puff"), "2 puff once a day"),
    ("sig-text-only", oral({"text": "one tablet by mouth daily"}), '"one tablet by mouth daily"'),
    ("no-schedule", oral(instruction(50, frequency=None, period=None)), "50 mg no schedule"),
    ("tablets-of-unknown-strength",
     naltrexone_draft(("999999", "naltrexone tablets"), dose_mg=1, dose_unit="tablet"), "1 tablet once a day"),
    ("frequency-without-period", oral(instruction(50, period=None, frequency=2)), "2 times (no period)"),
    ("injection-in-ml", naltrexone_draft(VIVITROL, dose_mg=4, dose_unit="mL", period=4, period_unit="wk"),
     "4 mL every 4 weeks"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "draft", "ordered"), UNCHECKED, ids=[u[0] for u in UNCHECKED])
def test_dose_regimen_says_when_the_dose_could_not_be_checked(
    client: TestClient, case: str, draft: dict[str, Any], ordered: str
) -> None:
    c = card(post(client, draft), "dose-regimen")
    assert c["indicator"] == "warning"
    assert "could not be checked" in c["summary"] and len(c["summary"]) < 140
    assert ordered in c["detail"]
    assert "Documented:" in c["detail"]


def test_dose_regimen_long_orders_are_summarised_by_count(client: TestClient) -> None:
    draft = oral(instruction(50, days=WEEKDAYS, text="with breakfast"), instruction(75, days=["sat"]))
    c = card(post(client, draft), "dose-regimen")
    assert "2 dosage instructions" in c["summary"]
    assert '"with breakfast"' in c["detail"] and "75 mg on Sat" in c["detail"]


def test_dose_regimen_can_be_lowered_by_site_policy(make_client: ClientFactory) -> None:
    c = make_client(Settings.development(policy={"indicators": {"dose-regimen": "info"}}))
    assert card(post(c, naltrexone_draft(dose_mg=100)), "dose-regimen")["indicator"] == "info"


@pytest.mark.parametrize(
    ("dose", "every"),
    [
        (Dose(Decimal(50), "50 mg", 1, Decimal(1), "d"), Decimal(1)),
        (Dose(Decimal(25), "25 mg", 2, Decimal(1), "d"), Decimal("0.5")),
        (Dose(Decimal(50), "50 mg", None, Decimal(2), "d"), Decimal(2)),
        (Dose(Decimal(50), "50 mg", 1, Decimal(24), "h"), Decimal(1)),
        (Dose(Decimal(380), "380 mg", 1, Decimal(4), "wk"), Decimal(28)),
        (Dose(Decimal(380), "380 mg", 1, Decimal(1), "mo"), Decimal("30.4375")),
        (Dose(Decimal(50), "50 mg", 1, None, None), None),
        (Dose(Decimal(50), "50 mg", 0, Decimal(1), "d"), None),
        (Dose(Decimal(50), "50 mg", 1, Decimal(1), "fortnight"), None),
    ],
    ids=["daily", "twice-daily", "no-frequency", "24h", "4wk", "1mo", "no-period", "zero-frequency", "bad-unit"],
)
def test_schedule_is_one_dose_every_n_days(dose: Dose, every: Decimal | None) -> None:
    assert dose_regimen.interval_days(dose) == every


def _order(product: Product, *doses: Dose) -> NaltrexoneOrder:
    return NaltrexoneOrder("MedicationRequest/o", product, Concept(text="naltrexone"), doses=doses)


@pytest.mark.parametrize(
    ("order", "documented"),
    [
        (_order(Product.ORAL, Dose(Decimal(150), "150 mg", 1, Decimal(72), "h")), True),
        (_order(Product.ORAL, Dose(Decimal(50), "50 mg", 1, Decimal(1), "d", ("mon", "tue", "wed", "thu", "fri")),
                Dose(Decimal(100), "100 mg", None, None, None, ("sat",))), True),
        (_order(Product.ORAL, Dose(Decimal(50), "50 mg", 1, Decimal(1), "wk", ("mon", "tue", "wed", "thu", "fri")),
                Dose(Decimal(100), "100 mg", 1, Decimal(1), "wk", ("sat",))), True),
        (_order(Product.ORAL, Dose(Decimal(50), "50 mg", 1, Decimal(1), "d", ("mon", "wed", "fri"))), False),
        (_order(Product.INJECTION, Dose(Decimal(380), "380 mg", 1, Decimal(31), "d")), True),
        (_order(Product.INJECTION, Dose(Decimal(380), "380 mg", 1, Decimal(32), "d")), False),
        (_order(Product.INJECTION, Dose(Decimal(380), "380 mg", 1, Decimal(27), "d")), False),
        (_order(Product.INJECTION, Dose(None, "1 vial", 1, Decimal(4), "wk")), True),
        (_order(Product.INJECTION, Dose(Decimal(380), "380 mg", 1, Decimal(4), "wk", route=Concept(text="IM"))), True),
        (_order(Product.INJECTION, Dose(Decimal(380), "380 mg", 1, Decimal(4), "wk"),
                Dose(Decimal(380), "380 mg", 1, Decimal(4), "wk")), False),
    ],
    ids=["oral-150-every-72h", "weekday-saturday", "weekday-saturday-weekly-per-day", "mon-wed-fri",
         "injection-31-days", "injection-32-days", "injection-27-days", "injection-1-vial", "injection-route-im-text",
         "injection-two-instructions"],
)  # fmt: skip
def test_documented_regimens(order: NaltrexoneOrder, documented: bool) -> None:
    assert dose_regimen.documented(order) is documented


# -- duration-short ------------------------------------------------------------------------------------------------
def validity(start: float, end: float, **kw: Any) -> dict[str, Any]:
    return naltrexone_draft(
        supply_days=None, refills=None, dispenseRequest={"validityPeriod": {"start": day(start), "end": day(end)}}, **kw
    )


def vivitrol(*, supply_days: int | None = None, refills: int | None) -> dict[str, Any]:
    """An injectable order of 380 mg every 4 weeks; the course is in the dispense request."""
    return naltrexone_draft(VIVITROL, dose_mg=380, period=4, period_unit="wk", supply_days=supply_days, refills=refills)


SHORT: list[tuple[str, dict[str, Any], str]] = [
    ("30-days-no-refills", naltrexone_draft(refills=0), "about 30 days (30 days' supply, 1 fill (no refills))"),
    ("30-days-4-refills", naltrexone_draft(refills=4), "about 150 days"),
    ("90-days-no-refills", naltrexone_draft(supply_days=90, refills=0), "about 90 days"),
    ("supply-without-refills-recorded", naltrexone_draft(refills=None), "about 30 days"),
    ("supply-in-weeks", naltrexone_draft(supply_days=None, refills=2,
                                         dispenseRequest={"expectedSupplyDuration": {"value": 4, "code": "wk"},
                                                          "numberOfRepeatsAllowed": 2}), "about 84 days"),
    ("one-injection", vivitrol(refills=0),
     "1 injection (no refills), each covering 28 days"),
    ("five-injections", vivitrol(refills=4),
     "about 140 days"),
    ("validity-90-days", validity(0, 90), f"validity period {day(0)} to {day(90)}"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "draft", "shown"), SHORT, ids=[s[0] for s in SHORT])
def test_duration_short_fires_as_info(client: TestClient, case: str, draft: dict[str, Any], shown: str) -> None:
    c = card(post(client, draft), "duration-short")
    assert c["indicator"] == "info"
    assert "minimum 6 months" in c["summary"] and len(c["summary"]) < 140
    assert shown in c["detail"]
    assert "The minimum period of its use is 6 months." in c["detail"]


LONG_ENOUGH: list[tuple[str, dict[str, Any]]] = [
    ("30-days-5-refills", naltrexone_draft()),
    ("28-days-5-refills", naltrexone_draft(supply_days=28, refills=5)),
    ("90-days-1-refill", naltrexone_draft(supply_days=90, refills=1)),
    ("six-injections", vivitrol(refills=5)),
    ("injection-28-day-supply-5-refills", vivitrol(supply_days=28, refills=5)),
    ("validity-a-year", validity(0, 365)),
    ("validity-six-calendar-months", validity(0, 181)),
    ("nothing-recorded", naltrexone_draft(supply_days=None, refills=None)),
    ("injection-nothing-recorded", vivitrol(refills=None)),
    ("refills-only-oral", naltrexone_draft(supply_days=None, refills=5)),
    ("validity-end-before-start", validity(0, -30)),
]  # fmt: skip


@pytest.mark.parametrize(("case", "draft"), LONG_ENOUGH, ids=[s[0] for s in LONG_ENOUGH])
def test_duration_short_stays_silent(client: TestClient, case: str, draft: dict[str, Any]) -> None:
    assert "duration-short" not in topics(post(client, draft))


@pytest.mark.parametrize(
    ("policy", "draft", "fires"),
    [
        ({"minimum_course_months": 3}, naltrexone_draft(supply_days=90, refills=0), False),
        ({"minimum_course_months": 3}, naltrexone_draft(supply_days=60, refills=0), True),
        ({"minimum_course_months": 12}, naltrexone_draft(), True),
        ({"indicators": {"duration-short": "off"}}, naltrexone_draft(refills=0), False),
    ],
    ids=["3-months-90-days", "3-months-60-days", "12-months-180-days", "turned-off"],
)
def test_duration_short_site_policy(
    make_client: ClientFactory, policy: dict[str, Any], draft: dict[str, Any], fires: bool
) -> None:
    out = post(make_client(Settings.development(policy=policy)), draft)
    assert ("duration-short" in topics(out)) is fires


@pytest.mark.parametrize(
    ("order", "days"),
    [
        (NaltrexoneOrder("r", Product.ORAL, Concept(), expected_supply_days=Decimal(30), refills=2), Decimal(90)),
        (NaltrexoneOrder("r", Product.ORAL, Concept(), expected_supply_days=Decimal(30)), Decimal(30)),
        (NaltrexoneOrder("r", Product.INJECTION, Concept(), refills=0), Decimal(28)),
        (NaltrexoneOrder("r", Product.INJECTION, Concept(), expected_supply_days=Decimal(30), refills=1), Decimal(60)),
        (NaltrexoneOrder("r", Product.ORAL, Concept(), validity_end=date(2027, 1, 20), authored=date(2026, 11, 21)),
         Decimal(60)),
        (NaltrexoneOrder("r", Product.ORAL, Concept(), validity_end=date(2027, 1, 20)), Decimal(60)),  # from today
        (NaltrexoneOrder("r", Product.ORAL, Concept(), refills=3), None),
        (NaltrexoneOrder("r", Product.ORAL, Concept(), expected_supply_days=Decimal(0), refills=3), None),
    ],
    ids=["supply-x-fills", "no-refills-recorded", "one-injection", "injection-supply", "validity-from-authored",
         "validity-from-today", "refills-only", "zero-supply"],
)  # fmt: skip
def test_course_length(order: NaltrexoneOrder, days: Decimal | None) -> None:
    found = duration_short.course(order, NOW)
    assert (found[0] if found else None) == days


# -- mental-health-monitoring --------------------------------------------------------------------------------------
DEPRESSION = ("F32.1", "Major depressive disorder, single episode, moderate")
SUICIDAL = ("R45.851", "Suicidal ideations")

MOOD_FIRES: list[tuple[str, list[dict[str, Any]], str, str]] = [
    ("depression-f32", [condition(*DEPRESSION)], "info", "Depression"),
    ("recurrent-f33", [condition("F33.2", "Major depressive disorder, recurrent severe")], "info", "Depression"),
    ("dysthymia-f34-1", [condition("F34.1", "Dysthymic disorder")], "info", "Depression"),
    ("postpartum-f53-0", [condition("F53.0", "Postpartum depression")], "info", "Depression"),
    ("snomed-depression", [condition("370143000", "Major depressive disorder", system=SNOMED)], "info", "Depression"),
    ("depression-no-dot", [condition("F321", DEPRESSION[1])], "info", "Depression"),
    ("suicidal-ideation", [condition(*SUICIDAL)], "warning", "Suicidal"),
    ("suicide-attempt", [condition("T14.91XA", "Suicide attempt, initial encounter")], "warning", "Suicidal"),
    ("both-is-a-warning", [condition(*DEPRESSION), condition(*SUICIDAL)], "warning", "Suicidal"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "conds", "indicator", "starts"), MOOD_FIRES, ids=[m[0] for m in MOOD_FIRES])
def test_mental_health_monitoring_fires(
    client: TestClient, case: str, conds: list[dict[str, Any]], indicator: str, starts: str
) -> None:
    c = card(post(client, conditions=conds), "mental-health-monitoring")
    assert c["indicator"] == indicator
    assert c["summary"].startswith(starts) and len(c["summary"]) < 140
    for cond in conds:
        assert cond["code"]["coding"][0]["display"] in c["detail"] and f"Condition/{cond['id']}" in c["detail"]
    assert day(-100) in c["detail"]
    assert "monitored especially carefully because naltrexone can affect mood" in c["detail"]
    assert bool(c.get("overrideReasons")) is (indicator == "warning")


def test_suicidality_is_listed_first(client: TestClient) -> None:
    c = card(post(client, conditions=[condition(*DEPRESSION), condition(*SUICIDAL)]), "mental-health-monitoring")
    assert c["detail"].index("Suicidal ideations") < c["detail"].index("Major depressive disorder")


@pytest.mark.parametrize(
    "cond",
    [
        condition(*DEPRESSION, clinical="resolved"),
        condition(*DEPRESSION, clinical="remission"),
        condition(*DEPRESSION, verification="entered-in-error"),
        condition(*DEPRESSION, abatement=-3),
        condition(*SUICIDAL, verification="refuted"),
        condition("F41.1", "Generalized anxiety disorder"),
        {**condition(*DEPRESSION), "code": {"text": "depression"}},
    ],
    ids=["resolved", "remission", "entered-in-error", "abated", "suicidal-refuted", "anxiety", "free-text-only"],
)
def test_mental_health_monitoring_stays_silent(client: TestClient, cond: dict[str, Any]) -> None:
    assert "mental-health-monitoring" not in topics(post(client, conditions=[cond]))


@pytest.mark.parametrize(
    ("setting", "conds", "indicator"),
    [("warning", [condition(*DEPRESSION)], "warning"), ("info", [condition(*SUICIDAL)], "info")],
    ids=["depression-raised-to-warning", "suicidal-lowered-to-info"],
)
def test_mental_health_monitoring_site_policy(
    make_client: ClientFactory, setting: str, conds: list[dict[str, Any]], indicator: str
) -> None:
    c = make_client(Settings.development(policy={"indicators": {"mental-health-monitoring": setting}}))
    assert card(post(c, conditions=conds), "mental-health-monitoring")["indicator"] == indicator
