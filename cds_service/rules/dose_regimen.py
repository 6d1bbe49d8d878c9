"""dose-regimen: the ordered dose is not a documented regimen (clinical spec, section 2).

Spec: "Oral: 50 mg once daily; 25 mg (induction day); 100 mg every other day; 150 mg every third day; 50 mg
weekdays with 100 mg Saturday. Injectable: 380 mg IM every 4 weeks (or monthly). Say what was ordered and what is
documented. No card when the draft has no dose yet." Warning.

Decisions where the spec is silent:

- Schedules are compared as "one dose every N days": timing ``period`` x unit / ``frequency`` (frequency 1 when
  absent). So "25 mg, frequency 2 per 1 d" (50 mg a day, split) is a dose every half day: not documented.
- Oral regimens accepted: 50 mg every day; 25 mg every day (the induction dose: the order cannot say it is for
  one day only, so 25 mg once daily is accepted as the induction); 100 mg every 2 days; 150 mg every 3 days;
  exactly two instructions 50 mg on Mon-Fri + 100 mg on Sat (``dayOfWeek``; each once on its days); exactly two
  instructions 25 mg daily then 50 mg daily (induction followed by maintenance). A single instruction listing all
  seven days is the same as "every day". Anything else, including any other combination of instructions, fires.
- Injectable: 380 mg (or one kit/vial/syringe/injection/dose of the 380 mg product, which is how the kit is often
  ordered; N kits are N x 380 mg) every 28 to 31 days (4 weeks, 28 d, 1 mo, 30 d); a stated route must be intramuscular.
- Bupropion/naltrexone (Contrave): the spec lists no regimen for it, so this rule never fires for it.
- A dose that cannot be checked (an amount not in mg, e.g. "2 puffs", no amount, or no schedule) fires the
  "unchecked" variant: the card says what was ordered and that it could not be compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from cds_service.domain import Dose, Evidence, Finding, Indicator, NaltrexoneOrder, PatientSnapshot, Product
from cds_service.policy import Policy
from cds_service.rules.common import fmt_number

RULE_ID = "dose-regimen"

UNIT_DAYS: dict[str, Decimal] = {
    "s": Decimal(1) / 86400,
    "min": Decimal(1) / 1440,
    "h": Decimal(1) / 24,
    "d": Decimal(1),
    "wk": Decimal(7),
    "mo": Decimal("30.4375"),
    "a": Decimal("365.25"),
}
UNIT_WORDS = {"s": "second", "min": "minute", "h": "hour", "d": "day", "wk": "week", "mo": "month", "a": "year"}
WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAYS = frozenset(WEEK[:5])

INJECTION_MG = Decimal(380)
INJECTION_UNITS = frozenset({"kit", "kits", "vial", "vials", "syringe", "injection", "injections", "dose", "doses",
                             "each", "ea", "{kit}", "{vial}", "{syringe}", "{injection}", "{dose}", "1"})  # fmt: skip
INJECTION_MIN_DAYS, INJECTION_MAX_DAYS = Decimal(28), Decimal(31)
INTRAMUSCULAR_CODES = frozenset({"78421000", "C28161", "IM"})

DOCUMENTED = {
    Product.ORAL: (
        "50 mg once a day; 25 mg once a day (induction); 100 mg every 2 days; 150 mg every 3 days; "
        "or 50 mg Monday to Friday with 100 mg on Saturday"
    ),
    Product.INJECTION: "380 mg intramuscularly every 4 weeks (or once a month)",
}
ORAL_SINGLE: frozenset[tuple[Decimal, Decimal]] = frozenset(
    {(Decimal(50), Decimal(1)), (Decimal(25), Decimal(1)), (Decimal(100), Decimal(2)), (Decimal(150), Decimal(3))}
)


@dataclass(frozen=True, slots=True)
class Reading:
    """One dosage instruction reduced to mg, "one dose every N days" and the days of the week it is limited to."""

    mg: Decimal | None
    every_days: Decimal | None
    days: frozenset[str]

    @property
    def checkable(self) -> bool:
        return self.mg is not None and (self.every_days is not None or bool(self.days))


def interval_days(dose: Dose) -> Decimal | None:
    if dose.period is None or dose.period <= 0 or (dose.period_unit or "") not in UNIT_DAYS:
        return None
    frequency = dose.frequency if dose.frequency is not None else 1
    if frequency <= 0:
        return None
    return dose.period * UNIT_DAYS[dose.period_unit or ""] / frequency


def _injection_count(text: str | None) -> Decimal | None:
    """How many 380 mg kits an amount like "1 kit" or "2 vial" is, or None for any other amount."""
    parts = (text or "").lower().split()
    if len(parts) != 2 or parts[1] not in INJECTION_UNITS:
        return None
    try:
        count = Decimal(parts[0])
    except ArithmeticError:
        return None
    return count if count.is_finite() and count > 0 else None


def read(dose: Dose, product: Product) -> Reading:
    mg = dose.amount_mg
    if mg is None and product is Product.INJECTION and (count := _injection_count(dose.amount_text)) is not None:
        mg = count * INJECTION_MG
    days = frozenset(d.strip().lower()[:3] for d in dose.days_of_week)
    return Reading(mg, interval_days(dose), days)


def _daily(r: Reading) -> bool:
    if r.days:
        return r.days >= frozenset(WEEK) and r.every_days in (None, Decimal(1))
    return r.every_days == 1


def _on_days(r: Reading, mg: int, days: frozenset[str]) -> bool:
    """``mg`` once on each of ``days`` (the schedule may say once a day, once a week per day, or nothing)."""
    return r.mg == mg and r.days == days and r.every_days in (None, Decimal(1), Decimal(7))


def _route_ok(dose: Dose) -> bool:
    if dose.route is None:
        return True
    if any((c.code or "").strip().upper() in INTRAMUSCULAR_CODES for c in dose.route.codings):
        return True
    words = [dose.route.text, *(c.display for c in dose.route.codings)]
    return any(w and ("intramuscular" in w.lower() or w.strip().lower() == "im") for w in words)


def documented(order: NaltrexoneOrder) -> bool:
    readings = [read(d, order.product) for d in order.doses]
    if order.product is Product.INJECTION:
        if len(readings) != 1 or not _route_ok(order.doses[0]):
            return False
        r = readings[0]
        return (
            r.mg == INJECTION_MG
            and not r.days
            and r.every_days is not None
            and INJECTION_MIN_DAYS <= r.every_days <= INJECTION_MAX_DAYS
        )
    if len(readings) == 1:
        r = readings[0]
        if r.mg is None:
            return False
        if _daily(r):
            return (r.mg, Decimal(1)) in ORAL_SINGLE
        return not r.days and r.every_days is not None and (r.mg, r.every_days) in ORAL_SINGLE
    if len(readings) == 2:
        a, b = readings
        weekday_saturday = any(
            _on_days(x, 50, WEEKDAYS) and _on_days(y, 100, frozenset({"sat"})) for x, y in ((a, b), (b, a))
        )
        induction_then_maintenance = a.mg == 25 and _daily(a) and b.mg == 50 and _daily(b)
        return weekday_saturday or induction_then_maintenance
    return False


def _how_often(dose: Dose) -> str:
    frequency = dose.frequency if dose.frequency is not None else 1
    parts: list[str] = []
    if dose.days_of_week:
        parts.append("on " + ", ".join(d.strip().capitalize()[:3] for d in dose.days_of_week))
    if dose.period is not None and dose.period_unit:
        word = UNIT_WORDS.get(dose.period_unit, dose.period_unit)
        times = {1: "once", 2: "twice"}.get(frequency, f"{frequency} times")
        if dose.period == 1:
            parts.append(f"{times} a {word}")
        else:
            prefix = "" if frequency == 1 else f"{times} "
            parts.append(f"{prefix}every {fmt_number(dose.period)} {word}s")
    elif dose.frequency is not None:
        parts.append(f"{frequency} times (no period)")
    return " ".join(parts) or "no schedule"


def describe(dose: Dose, *, with_text: bool = True) -> str:
    """'25 mg twice a day', '2 puff once a day', '380 mg IM every 4 weeks' (plus the sig text when asked)."""
    if dose.amount_mg is not None:
        amount = f"{fmt_number(dose.amount_mg)} mg"
        if dose.amount_text and "mg" not in dose.amount_text.lower():
            amount += f" ({dose.amount_text})"
    else:
        amount = dose.amount_text or "no amount"
    route = f" {dose.route.label}" if dose.route is not None else ""
    out = f"{amount}{route} {_how_often(dose)}"
    if with_text and dose.text:
        out += f' ("{dose.text}")'
    return out


def _short(order: NaltrexoneOrder) -> str:
    """The ordered dose for a card summary: the instructions without sig text, or just how many there are."""
    text = "; ".join(describe(d, with_text=False) for d in order.doses)
    return text if len(text) <= 48 else f"{len(order.doses)} dosage instructions"


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    if not order.doses or order.product is Product.COMBO:
        return None
    checkable = all(read(d, order.product).checkable for d in order.doses)
    if checkable and documented(order):
        return None
    indicator = policy.indicator(RULE_ID, Indicator.WARNING)
    if indicator is None:
        return None
    ordered = "; ".join(describe(d) for d in order.doses)
    return Finding(
        rule_id=RULE_ID,
        indicator=indicator,
        evidence=(Evidence(f"Draft order {order.medication.label}: {ordered}", order.ref),),
        facts={
            "ordered": ordered,
            "ordered_short": _short(order),
            "documented": DOCUMENTED[order.product],
        },
        variant=None if checkable else "unchecked",
    )
