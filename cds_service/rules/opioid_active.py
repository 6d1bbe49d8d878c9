"""opioid-active: an opioid agonist or partial agonist is current (clinical spec, section 2).

Current means: a MedicationRequest active/on-hold, a MedicationStatement active/intended, a MedicationDispense
whose days' supply covers today, or an opioid drafted in this same ordering session. Earlier-session drafts,
completed, stopped, cancelled and entered-in-error records are not current (opioid-recent looks at those).
"""

from __future__ import annotations

from datetime import datetime

from cds_service.domain import Finding, Indicator, MedicationUse, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import medication_evidence, names

RULE_ID = "opioid-active"

_CURRENT_STATUS = {"request": {"active", "on-hold"}, "statement": {"active", "intended"}}


def is_current(med: MedicationUse, now: datetime) -> bool:
    if not med.is_opioid:
        return False
    status = (med.status or "").lower()
    if med.source == "draft":
        return status not in ("entered-in-error", "cancelled", "revoked")
    if med.source == "dispense":
        return status in ("completed", "in-progress", "") and med.end is not None and med.end >= now.date()
    return status in _CURRENT_STATUS.get(med.source, set())


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    current = [m for m in snapshot.medications if is_current(m, now)]
    if not current:
        return None
    indicator = policy.indicator(RULE_ID, Indicator.CRITICAL)
    if indicator is None:
        return None
    return Finding(
        rule_id=RULE_ID,
        indicator=indicator,
        evidence=tuple(medication_evidence(m) for m in current),
        facts={"drugs": names(m.medication.label for m in current)},
    )
