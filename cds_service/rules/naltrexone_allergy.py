"""naltrexone-allergy: a current allergy to naltrexone, or to naloxone/nalmefene (clinical spec, section 2).

Spec: "An AllergyIntolerance that is not inactive/resolved and not refuted/entered-in-error, whose substance is
naltrexone (by code or text), or naloxone/nalmefene (cross-sensitivity unknown)." Critical for naltrexone; warning
for naloxone or nalmefene.

Decisions:
- Current = ``common.allergy_is_current`` (no clinicalStatus counts as current: an allergy list entry is believed
  until it is marked otherwise).
- Which substances count is the terminology's group on the record (naltrexone includes bupropion/naltrexone;
  buprenorphine/naloxone is not a naloxone allergy).
- Both kinds present: one critical card whose evidence lists every current allergy, naloxone/nalmefene included.
  Only naloxone/nalmefene: the "cross-sensitivity" wording at warning.
- Site policy sets one indicator for the rule; when it does, both wordings get it.
"""

from __future__ import annotations

from datetime import datetime

from cds_service.domain import Finding, Indicator, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import allergy_evidence, allergy_is_current, names, short_label

RULE_ID = "naltrexone-allergy"
CROSS_SENSITIVITY = "cross-sensitivity"
_CROSS = frozenset({"naloxone", "nalmefene"})


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    current = [a for a in snapshot.allergies if a.groups & ({"naltrexone"} | _CROSS) and allergy_is_current(a)]
    if not current:
        return None
    direct = any("naltrexone" in a.groups for a in current)
    indicator = policy.indicator(RULE_ID, Indicator.CRITICAL if direct else Indicator.WARNING)
    if indicator is None:
        return None
    current.sort(key=lambda a: "naltrexone" not in a.groups)  # the naltrexone allergy first
    return Finding(
        rule_id=RULE_ID,
        indicator=indicator,
        evidence=tuple(allergy_evidence(a) for a in current),
        facts={"substances": names((short_label(a.substance) for a in current), limit=1)},
        variant=None if direct else CROSS_SENSITIVITY,
    )
