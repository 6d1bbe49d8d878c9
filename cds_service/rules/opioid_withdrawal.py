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
from cds_service.rules.common import condition_finding

RULE_ID = "opioid-withdrawal"


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    return condition_finding(RULE_ID, "opioid-withdrawal", Indicator.CRITICAL, snapshot, policy, now.date())
