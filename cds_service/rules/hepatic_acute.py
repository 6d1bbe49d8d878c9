"""hepatic-acute: an active Condition of acute hepatitis or liver failure (clinical spec, section 2).

Spec: "An active Condition of acute hepatitis or liver failure" (ICD-10-CM B15-B17, K70.1x, K70.4x, K71.1x, K71.2,
K71.6, K72.0x/1x/9x; the SNOMED CT codes listed), terminology group ``hepatic-acute``. Critical: the Seeds say it
should not be used with acute liver failure or hepatitis.

Active means what ``common.condition_is_active`` says: clinical status active/recurrence/relapse, not refuted or
entered-in-error, no abatement in the past. Free-text problems are not evidence (the terminology reads codes only).
"""

from __future__ import annotations

from datetime import datetime

from cds_service.domain import Finding, Indicator, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import condition_finding

RULE_ID = "hepatic-acute"


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    return condition_finding(RULE_ID, "hepatic-acute", Indicator.CRITICAL, snapshot, policy, now.date())
