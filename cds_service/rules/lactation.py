"""lactation: the patient is breastfeeding now (clinical spec, section 2).

Spec: "Observation LOINC 63895-7 answered breastfeeding, or an active Condition Z39.1 / SNOMED 866041003,
69840006, 169745008, 225604004." Warning.

Decisions where the spec is silent:

- Answer codes of 63895-7 (Breastfeeding status): LA29252-6 "Currently breastfeeding" means yes, LA29253-4 "Not
  currently breastfeeding" means no, LA4489-6 "Unknown" is no answer. These are the answers used by published
  profiles of 63895-7 (ISiK Stillstatus, Jembi/WHO SMART value sets); the full LOINC answer list could not be
  checked offline, so any other code is read by its text/display: a negation ("Not breastfeeding") means no,
  a word of doubt means unknown, otherwise any "breastfeed"/"breast feed"/"lactat" wording means yes (so
  "Exclusively breastfeeding" and "Partially breastfeeding" are yes). ``valueString`` "yes"/"no" is read too.
- The most recent definite answer (final/amended/corrected, dated) decides: a later "not breastfeeding"
  supersedes. The spec gives no lookback, so none is applied; the card shows the date.
- An active lactation Condition fires on its own, as the spec's "or" says.
"""

from __future__ import annotations

from datetime import datetime

from cds_service.domain import Evidence, Finding, Indicator, LabResult, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import (
    condition_finding,
    fmt_date,
    lab_counts,
    lab_evidence,
    status_answer,
)

RULE_ID = "lactation"

BREASTFEEDING_CODES = frozenset({"LA29252-6"})
NOT_BREASTFEEDING_CODES = frozenset({"LA29253-4"})
UNKNOWN_CODES = frozenset({"LA4489-6"})
BREASTFEEDING_STEMS = ("breastfeed", "lactat")


def breastfeeding_answer(lab: LabResult) -> bool | None:
    return status_answer(
        lab,
        yes_codes=BREASTFEEDING_CODES,
        no_codes=NOT_BREASTFEEDING_CODES,
        unknown_codes=UNKNOWN_CODES,
        stems=BREASTFEEDING_STEMS,
    )


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    evidence: list[Evidence] = []
    basis: list[str] = []
    answers = sorted(
        (
            (lab.effective, lab, answer)
            for lab in snapshot.labs
            if "lactation-status" in lab.groups
            and lab_counts(lab)
            and lab.effective is not None
            and (answer := breastfeeding_answer(lab)) is not None
        ),
        key=lambda item: item[0],
        reverse=True,
    )
    if answers and answers[0][2]:
        when, lab, _ = answers[0]
        evidence.append(lab_evidence(lab, "most recent breastfeeding status: breastfeeding"))
        basis.append(f"status recorded {fmt_date(when)}")
    return condition_finding(
        RULE_ID,
        "lactation",
        Indicator.WARNING,
        snapshot,
        policy,
        now.date(),
        evidence=evidence,
        basis=basis,
        basis_key="basis",
    )
