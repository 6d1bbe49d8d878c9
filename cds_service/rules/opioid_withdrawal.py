"""opioid-withdrawal: an active Condition of opioid withdrawal (clinical spec, section 2).

Spec: "An active Condition of opioid withdrawal (ICD-10-CM F11.13, F11.23, F11.93; SNOMED 87132004 opioid
withdrawal syndrome, 703846009 buprenorphine withdrawal syndrome)."

Decisions: the codes are the terminology's group "opioid-withdrawal" (codes only: a free-text problem such as
"no opioid withdrawal" is not evidence for a stop card). Active = ``common.condition_is_active``: clinicalStatus
active/recurrence/relapse, not refuted or entered-in-error, no abatement in the past. A withdrawal diagnosis with
no clinicalStatus is not active (R4 requires the status on any Condition that is not entered-in-error).
"""

from __future__ import annotations

from datetime import datetime

from cds_service.domain import Finding, Indicator, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import condition_evidence, condition_is_active

RULE_ID = "opioid-withdrawal"


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    active = [c for c in snapshot.conditions if "opioid-withdrawal" in c.groups and condition_is_active(c, now.date())]
    if not active:
        return None
    indicator = policy.indicator(RULE_ID, Indicator.CRITICAL)
    if indicator is None:
        return None
    return Finding(
        rule_id=RULE_ID,
        indicator=indicator,
        evidence=tuple(condition_evidence(c) for c in active),
    )
