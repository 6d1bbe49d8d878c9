"""Small pure helpers shared by the rules: which records count, and how evidence is worded.

Evidence lines always carry a date (or say that none was recorded) because a clinician judges recency first.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

from cds_service.domain import (
    AllergyRecord,
    ConditionRecord,
    Evidence,
    LabResult,
    MedicationUse,
)

# Observation statuses that carry a usable result (clinical spec, section 3).
RESULT_STATUSES = frozenset({"final", "amended", "corrected"})
URINE_RESULT_STATUSES = RESULT_STATUSES | {"preliminary"}
ACTIVE_CONDITION = frozenset({"active", "recurrence", "relapse"})
EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})


def fmt_date(d: date | datetime | None) -> str:
    if d is None:
        return "no date recorded"
    if isinstance(d, datetime):
        d = d.date()
    return d.isoformat()


def fmt_number(value: Decimal) -> str:
    """A lab value as written on a report: no exponent, no trailing zeros."""
    text = f"{value.normalize():f}"
    return text


def lab_counts(lab: LabResult, *, urine: bool = False) -> bool:
    allowed = URINE_RESULT_STATUSES if urine else RESULT_STATUSES
    return (lab.status or "").lower() in allowed


def condition_is_active(cond: ConditionRecord, today: date) -> bool:
    """Active per the clinical spec: active/recurrence/relapse, not refuted, not abated in the past."""
    if (cond.clinical_status or "") not in ACTIVE_CONDITION:
        return False
    if (cond.verification_status or "") in EXCLUDED_VERIFICATION:
        return False
    if cond.abated:
        return False
    return not (cond.abatement is not None and cond.abatement <= today)


def allergy_is_current(allergy: AllergyRecord) -> bool:
    if (allergy.clinical_status or "") in ("inactive", "resolved"):
        return False
    return (allergy.verification_status or "") not in EXCLUDED_VERIFICATION


def medication_evidence(med: MedicationUse) -> Evidence:
    kind = {
        "request": "prescription",
        "statement": "medication statement",
        "dispense": "dispense",
        "draft": "draft order in this session",
    }.get(med.source, med.source)
    parts = [f"{med.medication.label} — {kind}, status {med.status or 'not recorded'}"]
    if med.source == "dispense":
        parts.append(f"dispensed {fmt_date(med.start)}")
        if med.days_supply is not None:
            parts.append(f"{fmt_number(med.days_supply)} days' supply")
    elif med.authored or med.start:
        parts.append(f"from {fmt_date(med.start or med.authored)}")
    if med.end is not None:
        parts.append(f"ends {fmt_date(med.end)} ({med.end_basis})")
    return Evidence("; ".join(parts), med.ref)


def lab_evidence(lab: LabResult, extra: str | None = None) -> Evidence:
    if lab.value is not None:
        value = f"{fmt_number(lab.value)} {lab.unit or '(no unit)'}"
    elif lab.value_concept is not None:
        value = lab.value_concept.label
    elif lab.value_string is not None:
        value = lab.value_string
    else:
        value = "no value"
    parts = [f"{lab.code.label}: {value}"]
    if lab.ref_high is not None or lab.ref_low is not None:
        low = fmt_number(lab.ref_low) if lab.ref_low is not None else ""
        high = fmt_number(lab.ref_high) if lab.ref_high is not None else ""
        parts.append(f"reference range {low}–{high} {lab.ref_unit or ''}".rstrip())
    elif lab.ref_text:
        parts.append(f"reference range {lab.ref_text}")
    if lab.interpretation:
        parts.append("interpretation " + ", ".join(c.code or c.display or "?" for c in lab.interpretation))
    if extra:
        parts.append(extra)
    parts.append(fmt_date(lab.effective))
    if lab.status and lab.status not in RESULT_STATUSES:
        parts.append(f"status {lab.status}")
    return Evidence("; ".join(parts), lab.ref)


def condition_evidence(cond: ConditionRecord) -> Evidence:
    parts = [f"{cond.code.label} — {cond.clinical_status or 'status not recorded'}"]
    parts.append(f"onset {fmt_date(cond.onset)}" if cond.onset else "onset not recorded")
    if cond.recorded:
        parts.append(f"recorded {fmt_date(cond.recorded)}")
    return Evidence("; ".join(parts), cond.ref)


def allergy_evidence(allergy: AllergyRecord) -> Evidence:
    parts = [f"Allergy to {allergy.substance.label} — {allergy.clinical_status or 'status not recorded'}"]
    if allergy.verification_status:
        parts.append(allergy.verification_status)
    if allergy.criticality:
        parts.append(f"criticality {allergy.criticality}")
    if allergy.reactions:
        parts.append("reaction: " + ", ".join(allergy.reactions))
    parts.append(f"recorded {fmt_date(allergy.recorded)}")
    return Evidence("; ".join(parts), allergy.ref)


def names(items: Iterable[str], limit: int = 2) -> str:
    """'a', 'a and b', 'a, b and 2 more' — short enough for a card summary."""
    unique = list(dict.fromkeys(items))
    if len(unique) <= limit:
        return " and ".join(unique)
    return ", ".join(unique[:limit]) + f" and {len(unique) - limit} more"
