"""liver-disease-chronic: an active chronic liver disease (clinical spec, section 2).

Spec: "An active chronic liver disease (cirrhosis K70.3x, K74.x; chronic hepatitis B18.x, K73.x; K75.4; SNOMED
19943007, 420054005, 328383001, 128302006, 61977001). Suggest baseline and periodic liver tests." Warning.

Active as ``common.condition_is_active`` defines it. The card fires whatever the recent liver tests show: the
Seeds ask for regular monitoring, not a single normal result (``liver-enzymes-elevated`` judges the values).
"""

from __future__ import annotations

from datetime import datetime

from cds_service.domain import Finding, Indicator, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import condition_finding

RULE_ID = "liver-disease-chronic"


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    return condition_finding(RULE_ID, "liver-chronic", Indicator.WARNING, snapshot, policy, now.date())
