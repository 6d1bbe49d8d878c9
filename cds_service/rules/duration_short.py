"""duration-short: the ordered course is shorter than the minimum course (clinical spec, section 2).

Spec: "The ordered course (expected supply duration x (1 + refills), or validity period) is shorter than (policy)
6 months." Info; a site may turn it off.

Decisions where the spec is silent:

- Course length: ``expectedSupplyDuration`` x (1 + ``numberOfRepeatsAllowed``) when a supply duration is given
  (no repeats recorded = none allowed); otherwise the validity period, from its start (else the order's
  authoredOn, else today) to its end. Injectable: one injection covers 28 days and each repeat is one more
  injection, so 28 x (1 + repeats) unless a supply duration is given; an injection order with none of supply,
  repeats or validity is unknown. Unknown course: no card.
- A month of treatment is 28 days here (``DAYS_PER_MONTH``): four weeks, one injection of the 380 mg product,
  and the shortest monthly fill pharmacies use. So six monthly fills (6 x 28 or 6 x 30 days) or six injections
  complete a 6-month minimum and do not fire; 5 x 30 days (150) does. A stricter calendar month (30.4 days) would
  fire on the label's own "every 4 weeks" schedule taken for six months.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from cds_service.domain import Evidence, Finding, Indicator, NaltrexoneOrder, PatientSnapshot, Product
from cds_service.policy import Policy
from cds_service.rules.common import fmt_date, fmt_number

RULE_ID = "duration-short"

DAYS_PER_MONTH = 28
INJECTION_COVERS_DAYS = Decimal(28)


def course(order: NaltrexoneOrder, now: datetime) -> tuple[Decimal, str] | None:
    """The ordered course in days and how it was worked out, or None when the order does not say."""
    refills = order.refills or 0
    fills = 1 + refills
    repeats = f"1 + {refills} refill{'s' if refills > 1 else ''}" if refills else "no refills"
    supply = order.expected_supply_days
    if supply is None and order.product is Product.INJECTION and order.refills is not None:
        days = INJECTION_COVERS_DAYS * fills
        return days, f"{fills} injection{'s' if fills > 1 else ''} ({repeats}), each covering 28 days"
    if supply is not None and supply > 0:
        return supply * fills, f"{fmt_number(supply)} days' supply, {fills} fill{'s' if fills > 1 else ''} ({repeats})"
    if order.validity_end is not None:
        start = order.validity_start or order.authored or now.date()
        if order.validity_end < start:
            return None  # an end before the start says nothing about the course
        days = Decimal((order.validity_end - start).days)
        return days, f"validity period {fmt_date(start)} to {fmt_date(order.validity_end)}"
    return None


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    found = course(order, now)
    if found is None:
        return None
    days, basis = found
    minimum = policy.minimum_course_months * DAYS_PER_MONTH
    if days >= minimum:
        return None
    indicator = policy.indicator(RULE_ID, Indicator.INFO)
    if indicator is None:
        return None
    shown = fmt_number(days.quantize(Decimal(1)))
    return Finding(
        rule_id=RULE_ID,
        indicator=indicator,
        evidence=(Evidence(f"Draft order {order.medication.label}: about {shown} days ({basis})", order.ref),),
        facts={
            "days": shown,
            "course": f"about {shown} days; minimum {policy.minimum_course_months} months",
            "months": str(policy.minimum_course_months),
            "minimum_days": str(minimum),
        },
    )
