"""overdose-risk: every naltrexone order carries an opioid overdose risk (clinical spec, section 2).

Spec: "Every naltrexone order (can be turned off by policy). Suggest a naloxone rescue prescription."

Decisions: the card is education (info) and always suggests naloxone nasal spray. When the patient already has a
current naloxone record (a naloxone-only product, not buprenorphine/naloxone) it is listed in the evidence so the
clinician can skip the suggestion; the card still fires, because the counselling it asks for is per order.
"""

from __future__ import annotations

from datetime import datetime

from cds_service.domain import Evidence, Finding, Indicator, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import medication_evidence, medication_is_current

RULE_ID = "overdose-risk"


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    indicator = policy.indicator(RULE_ID, Indicator.INFO)
    if indicator is None:
        return None
    naloxone = [
        m
        for m in snapshot.medications
        if "naloxone" in m.groups and not m.is_opioid and medication_is_current(m, now.date())
    ]
    evidence = [Evidence(f"{order.medication.label} — draft order being signed", order.ref)]
    evidence += [medication_evidence(m, "naloxone already on record") for m in naloxone]
    return Finding(rule_id=RULE_ID, indicator=indicator, evidence=tuple(evidence))
