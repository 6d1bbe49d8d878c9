"""opioid-recent: the last opioid ended inside the opioid-free window (clinical spec, section 2).

Spec: "The last opioid ended inside the opioid-free window: (policy) 7 days for short-acting opioids (tramadol
included), 14 days for methadone, buprenorphine and extended-release/long-acting opioids. End =
dispenseRequest.validityPeriod.end, or the dispense date + days' supply, or the status change date; say which was
used."

How a record's last possible day of use is read (``last_use``):
- The door works out ``MedicationUse.end`` and says how in ``end_basis``; the evidence line repeats both.
- A stopped/completed record whose planned end is still ahead was ended early: its status change date when the
  record has one, else today (it may have been taken until the order was stopped; the safe reading).
- A record that shows the opioid was used but has no end date (bad data, common for historical orders) is
  bounded below by its order/start/dispense date: the opioid was in use on that day, so if that day is inside the
  window the window has not passed either. Evidence: "end date not recorded; ordered <date>". When that date is
  older than the window we cannot tell when it ended, and stay silent: firing on every undated historical order
  would bury the real stops, and opioid-urine-missing still asks for the screen that settles the question.
- A record with no date at all (no end, order, start or dispense date) cannot be placed in time. It does not
  raise the stop card, but something must tell the clinician: the rule fires the "undated" variant of its card at
  warning (never above the site's indicator), asking when the opioid was last taken. This keeps the warning on the
  rule whose question could not be answered, rather than in data-unavailable (which is about data that could not
  be read at all). When dated records fire too, the undated ones are listed in the same card.
- Window: ``policy.opioid_free_days_long_acting`` when ``opioid_kind`` is LONG_ACTING or unknown (the safe
  default), else ``opioid_free_days_short_acting``. Fires while fewer whole days than the window have passed
  since the last use: short-acting ended 6 days ago fires, 7 or 8 days ago does not.

Scope: current opioids are opioid-active's (``common.medication_is_current``), so a record is never reported by
both cards. Records that say the opioid was never taken (cancelled, not-taken, entered-in-error, earlier-session
drafts, dispenses never handed over) are ignored (``common.medication_was_taken``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from cds_service.domain import Finding, Indicator, MedicationUse, NaltrexoneOrder, OpioidKind, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import (
    days_ago,
    fmt_date,
    medication_evidence,
    medication_is_current,
    medication_was_taken,
    names,
    short_label,
)

RULE_ID = "opioid-recent"
UNDATED = "undated"


@dataclass(frozen=True, slots=True)
class LastUse:
    """The last day an opioid record may have been taken, and how that day was found."""

    day: date | None  # None: the record has no date at all
    how: str


def last_use(med: MedicationUse, today: date) -> LastUse:
    status = med.status or "not recorded"
    if med.end is not None:
        if med.end <= today:
            return LastUse(med.end, f"ended {fmt_date(med.end)} ({med.end_basis or 'end date'})")
        planned = f"planned end {fmt_date(med.end)} ({med.end_basis or 'end date'})"
        if med.status_changed is not None and med.status_changed <= today:
            changed = fmt_date(med.status_changed)
            return LastUse(med.status_changed, f"status {status} on {changed}, before its {planned}")
        return LastUse(today, f"status {status} before its {planned}: may have been taken until today")
    if med.source == "dispense" and med.start is not None:
        return LastUse(med.start, f"no usable days' supply; dispensed {fmt_date(med.start)}")
    if med.start is not None:
        verb = "ordered" if med.source == "request" and med.start == med.authored else "started"
        return LastUse(med.start, f"end date not recorded; {verb} {fmt_date(med.start)}")
    if med.authored is not None:
        verb = "ordered" if med.source == "request" else "recorded"
        return LastUse(med.authored, f"end date not recorded; {verb} {fmt_date(med.authored)}")
    return LastUse(None, "no end, order, start or dispense date recorded: when it was last taken is unknown")


def window_days(med: MedicationUse, policy: Policy) -> int:
    if med.opioid_kind is OpioidKind.SHORT_ACTING:
        return policy.opioid_free_days_short_acting
    return policy.opioid_free_days_long_acting


def _kind(med: MedicationUse) -> str:
    return med.opioid_kind.value if med.opioid_kind is not None else "kind unknown, long-acting window applied"


def _reading(med: MedicationUse, use: LastUse, since: int, window: int) -> str:
    """The rule's reading of one record for the evidence line (the plain end date is already on the line)."""
    how = "" if use.day == med.end else f"{use.how}; "
    return f"{how}last possible use {days_ago(since)}; {_kind(med)}, {window}-day window"


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    today = now.date()
    dated: list[tuple[MedicationUse, LastUse, int, date]] = []  # record, last use, days since, window ends
    undated: list[tuple[MedicationUse, LastUse]] = []
    for med in snapshot.medications:
        if not med.is_opioid or medication_is_current(med, today) or not medication_was_taken(med):
            continue
        use = last_use(med, today)
        if use.day is None:
            undated.append((med, use))
            continue
        window = window_days(med, policy)
        since = (today - use.day).days
        if since < window:
            dated.append((med, use, since, use.day + timedelta(days=window)))
    if not dated and not undated:
        return None
    indicator = policy.indicator(RULE_ID, Indicator.CRITICAL)
    if indicator is None:
        return None
    evidence = [
        medication_evidence(med, _reading(med, use, since, window_days(med, policy)))
        for med, use, since, _ in sorted(dated, key=lambda d: d[2])
    ]
    evidence += [medication_evidence(med, use.how) for med, use in undated]
    facts = {
        "short_days": str(policy.opioid_free_days_short_acting),
        "long_days": str(policy.opioid_free_days_long_acting),
    }
    if dated:
        facts |= {
            "drugs": names((short_label(med.medication) for med, *_ in dated), limit=1),
            "until": fmt_date(max(until for *_, until in dated)),
        }
        return Finding(RULE_ID, indicator, tuple(evidence), facts)
    facts["drugs"] = names((short_label(med.medication) for med, _ in undated), limit=1)
    lowered = indicator if indicator.rank <= Indicator.WARNING.rank else Indicator.WARNING
    return Finding(RULE_ID, lowered, tuple(evidence), facts, variant=UNDATED)
