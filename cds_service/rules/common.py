"""Small pure helpers shared by the rules: which records count, and how evidence is worded.

Evidence lines always carry a date (or say that none was recorded) because a clinician judges recency first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

from cds_service.domain import (
    AllergyRecord,
    Concept,
    ConditionRecord,
    Evidence,
    Finding,
    Indicator,
    LabResult,
    MedicationUse,
    PatientSnapshot,
)
from cds_service.policy import Policy

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


def medication_evidence(med: MedicationUse, extra: str | None = None) -> Evidence:
    """One medication record with its status and dates; ``extra`` appends the rule's own reading of it."""
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
    if extra:
        parts.append(extra)
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
        unit = f" {lab.ref_unit}" if lab.ref_unit else ""
        if lab.ref_low is not None and lab.ref_high is not None:
            parts.append(f"reference range {low}–{high}{unit}")
        elif lab.ref_high is not None:
            parts.append(f"upper reference limit {high}{unit}")
        else:
            parts.append(f"lower reference limit {low}{unit}")
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


_SALTS = frozenset(
    {"hydrochloride", "hcl", "bitartrate", "sulfate", "citrate", "phosphate", "tartrate", "acetate", "besylate",
     "mesylate", "sodium", "potassium", "hydrobromide", "napsylate", "polistirex", "maleate", "bromide"}
)  # fmt: skip
_LEADING_QUANTITY = re.compile(r"^\d+(\.\d+)?\s+(HR|H|HOUR|DAY|ML|ACTUAT)\s+", re.IGNORECASE)  # "72 HR", "1 ML"


def short_label(medication: Concept) -> str:
    """A drug name short enough for a card summary: the ingredient or brand words, no strength, salt or form.

    "Acetaminophen 325 MG / oxyCODONE Hydrochloride 5 MG Oral Tablet" -> "Acetaminophen/oxyCODONE";
    "72 HR Fentanyl 0.025 MG/HR Transdermal System" -> "Fentanyl". Ingredients are separated by " / " (RxNorm
    style); each keeps its words up to the first number. Falls back to the full label when nothing is left.
    """
    label = medication.label
    components = []
    for part in label.split(" / "):
        words: list[str] = []
        for word in _LEADING_QUANTITY.sub("", part.strip()).split():
            if word[0].isdigit() or word.startswith("["):
                break
            words.append(word)
        kept = [w for w in words if w.lower() not in _SALTS] or words
        if kept:
            components.append(" ".join(kept))
    return "/".join(components) or label


# -- medications: current, ended, never taken ----------------------------------------------------------------
# Clinical spec, section 2 (opioid-active): what makes a medication record "current".
REQUEST_CURRENT = frozenset({"active", "on-hold"})
STATEMENT_CURRENT = frozenset({"active", "intended"})
DRAFT_WITHDRAWN = frozenset({"entered-in-error", "cancelled", "revoked"})
# A dispense in these states never reached the patient (FHIR R4 MedicationDispense.status).
DISPENSE_NOT_HANDED_OVER = frozenset({"preparation", "on-hold", "cancelled", "declined", "entered-in-error"})
# Records that say the drug was never taken at all: not current, and no "last use" either. A "draft" request
# in the patient's record is an unsigned order from an earlier session; "cancelled" means withdrawn before any
# administration (FHIR R4 MedicationRequest.status); "revoked" is the pre-R4 spelling.
NEVER_TAKEN: dict[str, frozenset[str]] = {
    "request": frozenset({"draft", "cancelled", "revoked", "entered-in-error"}),
    "statement": frozenset({"not-taken", "entered-in-error"}),
    "dispense": DISPENSE_NOT_HANDED_OVER,
}


def medication_is_current(med: MedicationUse, today: date) -> bool:
    """Current per the clinical spec (opioid-active): request active/on-hold, statement active/intended, a
    handed-over dispense whose days' supply covers today, or a draft of this same session (unless withdrawn).
    """
    status = (med.status or "").lower()
    if med.source == "draft":
        return status not in DRAFT_WITHDRAWN
    if med.source == "dispense":
        return status not in DISPENSE_NOT_HANDED_OVER and med.end is not None and med.end >= today
    if med.source == "request":
        return status in REQUEST_CURRENT
    if med.source == "statement":
        return status in STATEMENT_CURRENT
    return False


def medication_was_taken(med: MedicationUse) -> bool:
    """False for records that say the drug never reached the patient (cancelled, not-taken, in error...).

    Drafts are never "taken": this session's drafts are current (opioid-active), and drafts from earlier
    sessions arrive as requests with status "draft".
    """
    if med.source == "draft":
        return False
    return (med.status or "").lower() not in NEVER_TAKEN.get(med.source, frozenset())


# -- opioid urine screens (clinical spec, section 3) ---------------------------------------------------------
V3_INTERPRETATION_SYSTEMS = frozenset(
    {
        "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
        "http://hl7.org/fhir/v3/ObservationInterpretation",  # the STU3 spelling of the same code system
        "urn:oid:2.16.840.1.113883.5.83",
    }
)
# POS, DET, A, H per the spec; AA and HH are the "critically" forms of A and H, so at least as positive.
POSITIVE_INTERPRETATION = frozenset({"POS", "DET", "A", "AA", "H", "HH"})
NEGATIVE_INTERPRETATION = frozenset({"NEG", "ND", "N"})
SNOMED_SYSTEM = "http://snomed.info/sct"
LOINC_SYSTEM = "http://loinc.org"
POSITIVE_ANSWERS = frozenset({(SNOMED_SYSTEM, "10828004"), (SNOMED_SYSTEM, "260373001"),
                              (LOINC_SYSTEM, "LA6576-8"), (LOINC_SYSTEM, "LA11882-0")})  # fmt: skip
NEGATIVE_ANSWERS = frozenset({(SNOMED_SYSTEM, "260385009"), (SNOMED_SYSTEM, "260415000"),
                              (LOINC_SYSTEM, "LA6577-6"), (LOINC_SYSTEM, "LA11883-8")})  # fmt: skip

POSITIVE, NEGATIVE, INCONCLUSIVE = "positive", "negative", "inconclusive"


def _answer_text(text: str | None) -> str | None:
    if not text:
        return None
    t = text.strip().lower()
    if t.startswith(("pos", "detected")):
        return POSITIVE
    if t.startswith(("neg", "not detected")):
        return NEGATIVE
    return None


def _units_agree(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a.strip().lower() == b.strip().lower()


def _against_cutoff(value: Decimal, comparator: str | None, cutoff: Decimal) -> str | None:
    """A quantity against the screen's cut-off; a comparator ("<300") decides only when the bound settles it."""
    if comparator in (None, ""):
        return POSITIVE if value >= cutoff else NEGATIVE
    if comparator == "<":
        return NEGATIVE if value <= cutoff else None
    if comparator == "<=":
        return NEGATIVE if value < cutoff else None
    if comparator in (">", ">="):
        return POSITIVE if value >= cutoff else None
    return None


def urine_screen_result(lab: LabResult) -> str:
    """Reads a urine screen as section 3 of the clinical spec does: "positive", "negative" or "inconclusive".

    Positive when any signal says so (interpretation, coded answer, text answer, a quantity at or above the
    cut-off ``referenceRange.high`` in the same unit); negative when no signal is positive and one is;
    anything else (no value, a number without a cut-off, a number whose unit differs from the cut-off's) is
    inconclusive; a comparator ("<300") counts only when the bound settles it. A positive signal wins over a
    negative one on the same Observation: the safe reading. A coded answer with no recognised code is read by
    its text/display like a ``valueString`` (local codes).
    """
    signals: set[str] = set()
    for c in lab.interpretation:
        if c.system in V3_INTERPRETATION_SYSTEMS and c.code:
            code = c.code.strip().upper()
            if code in POSITIVE_INTERPRETATION:
                signals.add(POSITIVE)
            elif code in NEGATIVE_INTERPRETATION:
                signals.add(NEGATIVE)
    if lab.value_concept is not None:
        keys = {(c.system, (c.code or "").strip()) for c in lab.value_concept.codings}
        if keys & POSITIVE_ANSWERS:
            signals.add(POSITIVE)
        elif keys & NEGATIVE_ANSWERS:
            signals.add(NEGATIVE)
        else:
            texts = [lab.value_concept.text, *(c.display for c in lab.value_concept.codings)]
            signals |= {r for t in texts if (r := _answer_text(t))}
    if (answer := _answer_text(lab.value_string)) is not None:
        signals.add(answer)
    quantity = (
        _against_cutoff(lab.value, lab.comparator, lab.ref_high)
        if lab.value is not None and lab.ref_high is not None and _units_agree(lab.unit, lab.ref_unit)
        else None
    )
    if quantity is not None:
        signals.add(quantity)
    if POSITIVE in signals:
        return POSITIVE
    if NEGATIVE in signals:
        return NEGATIVE
    return INCONCLUSIVE


def days_ago(n: int) -> str:
    """'today', 'yesterday', '6 days ago' — for card summaries."""
    if n <= 0:
        return "today"
    if n == 1:
        return "yesterday"
    return f"{n} days ago"


# -- lab results, status answers and problem-list entries (liver, pregnancy, lactation, kidney, mood rules) ------
def recent_results(labs: Iterable[LabResult], group: str, now: datetime, days: int) -> list[LabResult]:
    """Results of one lab group that count (final/amended/corrected) and are dated within ``days`` before ``now``,
    newest first.

    An undated result cannot be placed in a lookback window, so it is never recent. A result dated after ``now``
    (clock skew, a time-zone slip) counts, as the newest.
    """
    dated = [
        (lab.effective, lab)
        for lab in labs
        if group in lab.groups
        and lab_counts(lab)
        and lab.effective is not None
        and (now - lab.effective).total_seconds() <= days * 86400
    ]
    dated.sort(key=lambda pair: pair[0], reverse=True)
    return [lab for _, lab in dated]


def active_conditions(conditions: Iterable[ConditionRecord], group: str, today: date) -> list[ConditionRecord]:
    """The problem-list entries of one condition group that are active per the clinical spec, in record order."""
    return [c for c in conditions if group in c.groups and condition_is_active(c, today)]


def condition_finding(
    rule_id: str,
    group: str,
    default: Indicator,
    snapshot: PatientSnapshot,
    policy: Policy,
    today: date,
    *,
    evidence: Iterable[Evidence] = (),
    basis: Iterable[str] = (),
    basis_key: str = "conditions",
    facts: dict[str, str] | None = None,
) -> Finding | None:
    """Finish a rule whose evidence is what it found so far plus every active diagnosis of ``group``.

    One card lists all of it; ``basis`` (short names for the summary) gains each diagnosis and fills
    ``{basis_key}``. Returns None when there is no evidence at all or the site turned the rule off.
    """
    found = active_conditions(snapshot.conditions, group, today)
    lines = [*evidence, *(condition_evidence(c) for c in found)]
    if not lines:
        return None
    indicator = policy.indicator(rule_id, default)
    if indicator is None:
        return None
    named = [*basis, *(clip(c.code.label) for c in found)]
    return Finding(
        rule_id=rule_id,
        indicator=indicator,
        evidence=tuple(lines),
        facts={basis_key: names(named, limit=1), **(facts or {})},
    )


_YES_WORDS = frozenset({"yes", "y", "true"})
_NO_WORDS = frozenset({"no", "n", "false", "not", "non", "never", "stopped", "ceased", "weaned", "denies"})
_UNSURE_WORDS = frozenset({"unknown", "unsure", "uncertain", "possible", "possibly", "maybe", "declined", "unable"})


def _read_answer_text(text: str | None, stems: tuple[str, ...]) -> bool | None:
    if not text:
        return None
    words = "".join(ch if ch.isalnum() else " " for ch in text.lower()).split()
    if not words:
        return None
    if _UNSURE_WORDS.intersection(words) or "not known" in " ".join(words):
        return None
    if _NO_WORDS.intersection(words):
        return False
    if len(words) == 1 and words[0] in _YES_WORDS:
        return True
    joined = "".join(words)
    return True if any(stem in joined for stem in stems) else None


def status_answer(
    lab: LabResult,
    *,
    yes_codes: frozenset[str],
    no_codes: frozenset[str],
    unknown_codes: frozenset[str],
    stems: tuple[str, ...],
) -> bool | None:
    """The answer of a status Observation (pregnancy status, breastfeeding status): True, False, or None when it
    is unknown or cannot be read.

    Answer codes decide first (compared without their system: LOINC LA codes and SNOMED CT ids cannot collide);
    otherwise the text, each display and ``valueString`` are read in turn, the first definite reading wins:
    a word of doubt ("unknown", "possible") means unknown, a negation ("not", "no", "non-") means no, a bare
    "yes"/"true" or a word containing one of ``stems`` ("pregnan", "breastfeed") means yes.
    """
    concept = lab.value_concept
    codings = concept.codings if concept is not None else ()
    codes = {(c.code or "").strip() for c in codings}
    if codes & yes_codes:
        return True
    if codes & no_codes:
        return False
    if codes & unknown_codes:
        return None
    texts = [concept.text if concept is not None else None, *(c.display for c in codings), lab.value_string]
    for text in texts:
        if (answer := _read_answer_text(text, stems)) is not None:
            return answer
    return None


def clip(text: str, limit: int = 32) -> str:
    """A name cut at a word boundary to fit a card summary ("Alcoholic cirrhosis of liver…"); the detail keeps
    the full name."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:-")
    return (cut or text[: limit - 1]) + "\N{HORIZONTAL ELLIPSIS}"
