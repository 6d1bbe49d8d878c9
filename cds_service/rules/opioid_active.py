"""opioid-active: an opioid agonist or partial agonist is current (clinical spec, section 2).

Spec: "An opioid agonist or partial agonist is current: MedicationRequest active/on-hold (not completed, stopped,
cancelled, entered-in-error, draft from an earlier session), MedicationStatement active/intended, a
MedicationDispense whose days' supply covers today, or an opioid in the same draftOrders."

Decisions:
- "Current" is ``common.medication_is_current``, shared with opioid-recent so that a record is reported by exactly
  one of the two rules. An active/on-hold request is current whatever its end date says: the spec reads the status.
- A MedicationRequest with status "draft" in the patient's record is an unsigned order from an earlier session:
  not current (and never taken, so opioid-recent ignores it too). Only drafts in this hook's ``draftOrders``
  (source "draft") count, unless the EHR marked them cancelled/entered-in-error.
- A dispense counts when it was handed over (any status but preparation/on-hold/cancelled/declined/
  entered-in-error) and dispensed date + days' supply reaches today; with no days' supply it cannot be shown to
  cover today and is left to opioid-recent.
- Which drugs are opioids (buprenorphine with naloxone, tramadol, cough products, diphenoxylate, local codes with
  a drug name in the text) is the terminology's decision, stored in ``MedicationUse.groups``.
"""

from __future__ import annotations

from datetime import datetime

from cds_service.domain import Finding, Indicator, MedicationUse, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import medication_evidence, medication_is_current, names, short_label

RULE_ID = "opioid-active"


def is_current(med: MedicationUse, now: datetime) -> bool:
    """An opioid that is current at ``now`` (see the module docstring)."""
    return med.is_opioid and medication_is_current(med, now.date())


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
        facts={"drugs": names((short_label(m.medication) for m in current), limit=1)},
    )
