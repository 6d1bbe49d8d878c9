"""liver-panel-missing: no ALT and no AST result within the liver lookback (clinical spec, section 2).

Spec: "No ALT and no AST result within (policy) 90 days. Suggest a hepatic function panel (LOINC 24325-3)."
Info by default; a site may turn it off.

Decisions where the spec is silent:

- Only final/amended/corrected, dated ALT/AST results count (as for ``liver-enzymes-elevated``). A hepatic panel
  Observation (24325-3) or a bilirubin alone does not count: the rule is about the enzymes.
- A result that cannot be interpreted (no unit, a unit other than U/L, no numeric value) is not a usable liver
  test: when every ALT/AST in the window is unreadable the card fires in its "unreadable" variant, listing those
  results as "not interpreted: unit X". A safety check that cannot read the value must say so.
- When the liver-test category was not read completely (server error, page limit, invalid resource), the absence
  of a result proves nothing: this rule stays silent and ``data-unavailable`` speaks.
- The evidence shows the latest ALT and AST older than the window, when there is one, so the clinician sees how
  stale the last check is.
"""

from __future__ import annotations

from datetime import datetime

from cds_service.domain import Category, Evidence, Finding, Indicator, LabResult, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import lab_counts, lab_evidence
from cds_service.rules.liver_enzymes_elevated import ENZYMES, enzyme_readings

RULE_ID = "liver-panel-missing"


def _latest_older(labs: tuple[LabResult, ...], group: str) -> LabResult | None:
    dated = [(lab.effective, lab) for lab in labs if group in lab.groups and lab_counts(lab) and lab.effective]
    return max(dated, key=lambda pair: pair[0])[1] if dated else None


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    if not snapshot.is_complete(Category.LIVER_TESTS):
        return None
    readings = enzyme_readings(snapshot, policy, now)
    if any(chosen is not None for chosen, _ in readings.values()):
        return None
    indicator = policy.indicator(RULE_ID, Indicator.INFO)
    if indicator is None:
        return None
    unreadable = [u for _, group_unreadable in readings.values() for u in group_unreadable]
    evidence: list[Evidence] = [lab_evidence(u.lab, u.shown()) for u in unreadable]
    if not unreadable:
        for group, _name in ENZYMES:
            older = _latest_older(snapshot.labs, group)
            if older is not None:
                evidence.append(lab_evidence(older, f"older than {policy.liver_lookback_days} days"))
    return Finding(
        rule_id=RULE_ID,
        indicator=indicator,
        evidence=tuple(evidence),
        facts={"days": str(policy.liver_lookback_days)},
        variant="unreadable" if unreadable else None,
    )
