"""opioid-dependence-documented: an active opioid use disorder not in remission (clinical spec, section 2).

Spec: "An active opioid dependence/use disorder diagnosis that is NOT coded as in remission (F11.10/F11.2x/
F11.9x except withdrawal codes; SNOMED 75544000, 1081000119105 "on agonist therapy" etc.), with no other opioid
rule firing. Ask to confirm detox and the opioid-free interval. A diagnosis alone is NOT a stop: naltrexone is
indicated after detox. In-remission codes (F11.11, F11.21, SNOMED 191821007) never fire."

Decisions:
- A record in the terminology group "opioid-use-disorder-remission" never fires, even if a second coding on it
  is a plain use-disorder code: the more specific statement (in remission) wins.
- clinicalStatus remission/inactive/resolved is not active (``common.condition_is_active`` accepts only
  active/recurrence/relapse, and drops refuted, entered-in-error and abated records).
- Withdrawal codes belong to opioid-withdrawal (a stop card); the "no other opioid rule firing" part is done by the
  registry (``cds_service.rules.evaluate`` drops this card when opioid-active, opioid-recent,
  opioid-urine-positive or opioid-withdrawal fires). The urine-missing warning does not suppress it: the two
  cards ask different questions.
"""

from __future__ import annotations

from datetime import datetime

from cds_service.domain import Finding, Indicator, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import condition_evidence, condition_is_active

RULE_ID = "opioid-dependence-documented"


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    today = now.date()
    active = [
        c
        for c in snapshot.conditions
        if "opioid-use-disorder" in c.groups
        and "opioid-use-disorder-remission" not in c.groups
        and condition_is_active(c, today)
    ]
    if not active:
        return None
    indicator = policy.indicator(RULE_ID, Indicator.WARNING)
    if indicator is None:
        return None
    return Finding(
        rule_id=RULE_ID,
        indicator=indicator,
        evidence=tuple(condition_evidence(c) for c in active),
    )
