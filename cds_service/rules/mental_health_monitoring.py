"""mental-health-monitoring: active suicidality or depression needs mood monitoring (clinical spec, section 2).

Spec: "Active suicidal ideation (R45.851) or suicide attempt (T14.91), or active depression (F32.x, F33.x, F34.1,
F53.0; SNOMED 370143000, 36923009, 66344007)." Warning for suicidal ideation or attempt; info for depression.

Decisions: one card. When both are present the card is a warning (the "suicidal" variant) and its evidence lists
every entry, suicidality first. Active means what ``common.condition_is_active`` says.
"""

from __future__ import annotations

from datetime import datetime

from cds_service.domain import Finding, Indicator, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import active_conditions, clip, condition_evidence, names

RULE_ID = "mental-health-monitoring"


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    today = now.date()
    suicidal = active_conditions(snapshot.conditions, "suicidal", today)
    depression = [c for c in active_conditions(snapshot.conditions, "depression", today) if c not in suicidal]
    found = suicidal + depression
    if not found:
        return None
    indicator = policy.indicator(RULE_ID, Indicator.WARNING if suicidal else Indicator.INFO)
    if indicator is None:
        return None
    return Finding(
        rule_id=RULE_ID,
        indicator=indicator,
        evidence=tuple(condition_evidence(c) for c in found),
        facts={"conditions": names((clip(c.code.label) for c in found), limit=1)},
        variant="suicidal" if suicidal else None,
    )
