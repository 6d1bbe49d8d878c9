"""opioid-urine-missing: no opioid urine screen result in the days before the order (clinical spec, section 2).

Spec: "No opioid urine screen result within (policy) 7 days before the order, and the patient is not already on
naltrexone (a renewal). Suggest ordering one."

Decisions:
- A result counts when its status counts for urine screens (final, amended, corrected, preliminary) and it reads
  positive or negative (``common.urine_screen_result``); an inconclusive result is listed but does not count.
  A positive result counts as "a screen was done": the positive card (opioid-urine-positive) is the one to act on.
- "Within 7 days" is measured from the evaluation time: effective at or after ``now - 7 days``.
- Renewal (already on naltrexone): a naltrexone MedicationRequest active/on-hold, a MedicationStatement active,
  or a handed-over dispense whose supply reached into the same window (dispensed date + days' supply on or after
  ``today - urine_required_within_days``; without a days' supply, dispensed within that window). The window is
  the one this rule already uses: a patient covered by naltrexone in the last 7 days has been opioid-blocked,
  and one whose naltrexone ran out longer ago may have relapsed and needs a screen again. Drafts in this session
  are not a renewal (they are the new order or a sibling of it).
- Fires on the absence of data, so it stays silent when the urine screens could not be read completely
  (``snapshot.is_complete``): data-unavailable already says so. Unreadable medications do not silence it: not
  knowing about a renewal leaves the screen worth asking for.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from cds_service.domain import Category, Evidence, Finding, Indicator, MedicationUse, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import (
    DISPENSE_NOT_HANDED_OVER,
    INCONCLUSIVE,
    REQUEST_CURRENT,
    lab_counts,
    lab_evidence,
    urine_screen_result,
)

RULE_ID = "opioid-urine-missing"


def on_naltrexone(med: MedicationUse, since: date) -> bool:
    """A naltrexone record that makes this order a renewal (see the module docstring)."""
    if not med.is_naltrexone:
        return False
    status = (med.status or "").lower()
    if med.source == "request":
        return status in REQUEST_CURRENT
    if med.source == "statement":
        return status == "active"
    if med.source == "dispense" and status not in DISPENSE_NOT_HANDED_OVER:
        covered_until = med.end or med.start
        return covered_until is not None and covered_until >= since
    return False


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    if not snapshot.is_complete(Category.URINE_SCREENS):
        return None
    window = policy.urine_required_within_days
    since = now - timedelta(days=window)
    if any(on_naltrexone(m, since.date()) for m in snapshot.medications):
        return None
    screens = sorted(
        (lab for lab in snapshot.labs if "urine-opioid" in lab.groups and lab_counts(lab, urine=True)),
        key=lambda lab: (lab.effective is not None, lab.effective or now),
        reverse=True,
    )
    recent = [lab for lab in screens if lab.effective is not None and lab.effective >= since]
    if any(urine_screen_result(lab) != INCONCLUSIVE for lab in recent):
        return None
    indicator = policy.indicator(RULE_ID, Indicator.WARNING)
    if indicator is None:
        return None
    evidence = [lab_evidence(lab, "inconclusive: does not count as a screen") for lab in recent]
    older = next(
        (
            lab
            for lab in screens
            if lab.effective is not None and lab.effective < since and urine_screen_result(lab) != INCONCLUSIVE
        ),
        None,
    )
    if older is not None:
        evidence.append(lab_evidence(older, f"{urine_screen_result(older)}; older than {window} days"))
    elif not recent:
        evidence.append(Evidence("No opioid urine screen result on record"))
    return Finding(rule_id=RULE_ID, indicator=indicator, evidence=tuple(evidence), facts={"days": str(window)})
