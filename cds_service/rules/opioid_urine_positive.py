"""opioid-urine-positive: the most recent opioid urine screen result, per analyte, is positive (spec, section 2).

Spec: "The most recent result of an opioid urine screen (per analyte) within (policy) 30 days is positive."
Positive, negative and inconclusive are read exactly as section 3 says (``common.urine_screen_result``); results
with status final, amended, corrected or preliminary count, all others (entered-in-error, cancelled, unknown,
registered) are skipped.

Decisions:
- Analyte = ``terminology.urine_analyte`` (screen and confirmation of the same substance share a key). A test the
  terminology knows as an opioid urine screen but cannot name an analyte for is keyed by its own code, so it never
  supersedes (nor is superseded by) a result for another substance.
- Per analyte, the latest *conclusive* result decides: a later negative supersedes an earlier positive, but a
  later inconclusive result (no value, unknown units) does not: it says nothing about opioids.
- Two conclusive results at the same instant: positive wins (the safe reading).
- Results without a date cannot be placed in the lookback window and are not used; results dated after "now"
  (clock skew) count as the most recent.
- Naltrexone, 6-beta-naltrexol and naloxone tests never reach this rule: the terminology leaves them out of the
  "urine-opioid" group (a patient on naltrexone tests positive for naltrexone).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cds_service import terminology
from cds_service.domain import Finding, Indicator, LabResult, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import (
    INCONCLUSIVE,
    POSITIVE,
    days_ago,
    lab_counts,
    lab_evidence,
    names,
    urine_screen_result,
)

RULE_ID = "opioid-urine-positive"


def analyte_key(lab: LabResult) -> str:
    analyte = terminology.urine_analyte(lab.code.codings)
    if analyte is not None:
        return analyte
    first = next((c for c in lab.code.codings if c.code), None)
    return f"code:{first.system}|{first.code}" if first else f"text:{lab.code.label.lower()}"


def latest_by_analyte(labs: list[LabResult]) -> dict[str, tuple[LabResult, str]]:
    """For each analyte, the most recent conclusive result and its reading (positive wins a tie)."""
    latest: dict[str, tuple[LabResult, str]] = {}
    for lab in labs:
        result = urine_screen_result(lab)
        if result == INCONCLUSIVE or lab.effective is None:
            continue
        key = analyte_key(lab)
        rank = (lab.effective, result == POSITIVE)
        held = latest.get(key)
        if held is None or rank > (held[0].effective, held[1] == POSITIVE):
            latest[key] = (lab, result)
    return latest


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    since = now - timedelta(days=policy.urine_positive_lookback_days)
    screens = [
        lab
        for lab in snapshot.labs
        if "urine-opioid" in lab.groups
        and lab_counts(lab, urine=True)
        and lab.effective is not None
        and lab.effective >= since
    ]
    positives = [lab for lab, result in latest_by_analyte(screens).values() if result == POSITIVE]
    if not positives:
        return None
    indicator = policy.indicator(RULE_ID, Indicator.CRITICAL)
    if indicator is None:
        return None
    positives.sort(key=lambda lab: lab.effective or now, reverse=True)
    return Finding(
        rule_id=RULE_ID,
        indicator=indicator,
        evidence=tuple(lab_evidence(lab, f"positive, {days_ago(_age(lab, now))}") for lab in positives),
        facts={
            "analytes": names((analyte_key(lab) for lab in positives), limit=1),
            "lookback_days": str(policy.urine_positive_lookback_days),
        },
    )


def _age(lab: LabResult, now: datetime) -> int:
    return (now.date() - (lab.effective or now).date()).days
