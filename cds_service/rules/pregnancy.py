"""pregnancy: the patient is pregnant now (clinical spec, section 2).

Spec: "Observation LOINC 82810-3 (pregnancy status) = pregnant (LA15173-0 / SNOMED 77386006) as the most recent
status; a positive hCG test (2106-3, 2118-8, 2112-1, 2110-5, 80384-1, 80385-8) within (policy) 280 days with no
later negative or delivery; or an active pregnancy Condition (Z33.1, Z34.x, O09.x, SNOMED 77386006, 72892002,
47200007)." Warning.

Decisions where the spec is silent:

- Only final/amended/corrected, dated Observations count. A status answered "unknown" (LA4489-6, SNOMED
  261665006, or words of doubt) is no answer: it neither shows nor rules out a pregnancy. Answers are read by code
  first, then by text/display (local codes), see ``common.status_answer``.
- A "pregnant" status counts only inside ``policy.hcg_lookback_days``: a status older than a pregnancy lasts
  cannot describe today.
- "Delivery or a later negative" (the end of a pregnancy) is any of: a later pregnancy status answered not
  pregnant, a later negative hCG, or a pregnancy Condition whose abatement date is on or after the positive
  evidence and not in the future (a resolved "Normal pregnancy" is how Synthea and most EHRs record a delivery).
  The same end evidence also supersedes a "pregnant" status: the newest evidence of being pregnant or not decides.
  Delivery codes outside the pregnancy group (Z37, O80) are not read by the terminology, so they cannot be used.
- hCG positive/negative: read as the opioid urine screens are (``common.urine_screen_result``: interpretation,
  coded and text answers, a value at or above ``referenceRange.high``). A quantitative hCG in mIU/mL (= IU/L)
  without a usable range: >= 25 is positive (the usual qualitative-test threshold), < 5 negative (the usual
  non-pregnant upper limit), anything between is inconclusive and ignored.
- An active pregnancy Condition fires on its own, whatever the observations say (the problem list is the
  clinician's statement; the card shows its onset so a stale entry is easy to spot).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from cds_service.domain import Evidence, Finding, Indicator, LabResult, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import (
    EXCLUDED_VERIFICATION,
    NEGATIVE,
    POSITIVE,
    condition_finding,
    fmt_date,
    lab_counts,
    lab_evidence,
    status_answer,
    urine_screen_result,
)

RULE_ID = "pregnancy"

PREGNANT_CODES = frozenset({"LA15173-0", "77386006"})
NOT_PREGNANT_CODES = frozenset({"LA26683-5", "60001007"})
UNKNOWN_CODES = frozenset({"LA4489-6", "261665006"})
PREGNANT_STEMS = ("pregnan",)

HCG_UNITS = frozenset({"miu/ml", "m[iu]/ml", "iu/l", "[iu]/l", "mu/ml", "u/l"})
HCG_POSITIVE_AT = Decimal(25)  # mIU/mL: usual detection threshold of qualitative hCG tests
HCG_NEGATIVE_BELOW = Decimal(5)  # mIU/mL: usual upper limit for a non-pregnant adult


def hcg_result(lab: LabResult) -> str | None:
    """The hCG result read as positive or negative, or None when it is inconclusive."""
    result = urine_screen_result(lab)
    if result in (POSITIVE, NEGATIVE):
        return result
    unit = (lab.unit or "").strip().lower().replace(" ", "")
    if lab.value is None or unit not in HCG_UNITS:
        return None
    if lab.value >= HCG_POSITIVE_AT:
        return POSITIVE
    if lab.value < HCG_NEGATIVE_BELOW:
        return NEGATIVE
    return None


def _dated(snapshot: PatientSnapshot, group: str) -> list[tuple[datetime, LabResult]]:
    out = [(lab.effective, lab) for lab in snapshot.labs if group in lab.groups and lab_counts(lab) and lab.effective]
    return sorted(out, key=lambda pair: pair[0], reverse=True)


def _pregnancy_status(lab: LabResult) -> bool | None:
    return status_answer(
        lab, yes_codes=PREGNANT_CODES, no_codes=NOT_PREGNANT_CODES, unknown_codes=UNKNOWN_CODES, stems=PREGNANT_STEMS
    )


def _ended_after(snapshot: PatientSnapshot, since: datetime, today: date) -> bool:
    """Is there evidence, later than ``since``, that a pregnancy ended (or that there is none)?"""
    for when, lab in _dated(snapshot, "pregnancy-status"):
        if when > since and _pregnancy_status(lab) is False:
            return True
    for when, lab in _dated(snapshot, "hcg"):
        if when > since and hcg_result(lab) == NEGATIVE:
            return True
    for cond in snapshot.conditions:
        if "pregnancy" not in cond.groups or (cond.verification_status or "") in EXCLUDED_VERIFICATION:
            continue
        if cond.abatement is not None and since.date() <= cond.abatement <= today:
            return True
    return False


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    today = now.date()
    window = policy.hcg_lookback_days * 86400
    evidence: list[Evidence] = []
    basis: list[str] = []

    statuses = [
        (when, lab, answer)
        for when, lab in _dated(snapshot, "pregnancy-status")
        if (answer := _pregnancy_status(lab)) is not None
    ]
    if statuses:
        when, lab, pregnant = statuses[0]
        if pregnant and (now - when).total_seconds() <= window and not _ended_after(snapshot, when, today):
            evidence.append(lab_evidence(lab, "most recent pregnancy status: pregnant"))
            basis.append(f"status recorded {fmt_date(when)}")

    positives = [
        (when, lab)
        for when, lab in _dated(snapshot, "hcg")
        if (now - when).total_seconds() <= window and hcg_result(lab) == POSITIVE
    ]
    if positives:
        when, lab = positives[0]
        if not _ended_after(snapshot, when, today):
            evidence.append(lab_evidence(lab, "positive; no later negative test or delivery recorded"))
            basis.append(f"positive hCG {fmt_date(when)}")

    return condition_finding(
        RULE_ID,
        "pregnancy",
        Indicator.WARNING,
        snapshot,
        policy,
        today,
        evidence=evidence,
        basis=basis,
        basis_key="basis",
    )
