"""renal-impairment: reduced kidney function (clinical spec, section 2).

Spec: "The most recent eGFR within (policy) 180 days is below (policy) 50 mL/min/1.73m2 (LOINC 98979-8, 62238-1,
77147-7, 48642-3, 48643-1, 33914-3, 50044-7, 88293-6, 88294-4), or an active CKD stage 3b-5 / ESRD / acute kidney
failure Condition." Warning.

Decisions where the spec is silent:

- Only final/amended/corrected, dated results count. The unit must be mL/min/1.73 m2 in one of its spellings
  (UCUM ``mL/min/{1.73_m2}``, ``mL/min/1.73m2``, ``mL/min/1.73 m²``, "per 1.73 m2", any case); a result with no
  unit or another unit (plain mL/min is a creatinine clearance, not normalised to body surface) is never compared.
- As for the liver enzymes, the newest readable eGFR in the window decides; newer unreadable results are listed
  as "not interpreted: unit X" when the card fires. An eGFR that cannot be read does not fire a card by itself
  (there is no "eGFR missing" rule in the spec).
- An active renal-impairment Condition fires on its own, as the spec's "or" says.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from cds_service.domain import Evidence, Finding, Indicator, LabResult, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import (
    condition_finding,
    fmt_date,
    fmt_number,
    lab_evidence,
    recent_results,
)

RULE_ID = "renal-impairment"

_EGFR_UNITS = frozenset({"ml/min/1.73m2", "ml/min/1.73sqm", "ml/min/1.73msq"})


def is_egfr_unit(unit: str | None) -> bool:
    if unit is None:
        return False
    u = unit.lower().replace(" ", "").replace("{", "").replace("}", "").replace("_", "").replace("^", "")
    u = u.replace("\N{SUPERSCRIPT TWO}", "2").replace("per", "/").replace("//", "/")
    return u in _EGFR_UNITS


def _problem(lab: LabResult) -> str | None:
    if lab.value is None:
        return "no numeric value"
    if lab.unit is None:
        return "unit not recorded"
    if not is_egfr_unit(lab.unit):
        return f"unit {lab.unit}"
    return None


def _undetermined(lab: LabResult, threshold: Decimal) -> bool:
    """A censored value (eGFR ">60") that cannot say on which side of the cut-off the patient is."""
    if lab.value is None or lab.comparator is None:
        return False
    if lab.comparator in (">", ">="):
        return lab.value < threshold
    return lab.comparator in ("<", "<=") and lab.value > threshold


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    evidence: list[Evidence] = []
    basis: list[str] = []
    unreadable: list[Evidence] = []
    for lab in recent_results(snapshot.labs, "egfr", now, policy.egfr_lookback_days):
        problem = _problem(lab)
        if problem is not None:
            unreadable.append(lab_evidence(lab, f"not interpreted: {problem}"))
            continue
        if _undetermined(lab, policy.egfr_caution_below):
            cut = fmt_number(policy.egfr_caution_below)
            unreadable.append(lab_evidence(lab, f"not interpreted: reported as {lab.comparator}; cut-off {cut}"))
            continue
        if lab.value is not None and lab.value < policy.egfr_caution_below:
            evidence += unreadable
            threshold = fmt_number(policy.egfr_caution_below)
            evidence.append(lab_evidence(lab, f"below {threshold} mL/min/1.73 m\N{SUPERSCRIPT TWO}"))
            basis.append(f"eGFR {fmt_number(lab.value)} on {fmt_date(lab.effective)}")
        break
    return condition_finding(
        RULE_ID,
        "renal-impairment",
        Indicator.WARNING,
        snapshot,
        policy,
        now.date(),
        evidence=evidence,
        basis=basis,
        basis_key="basis",
        facts={"threshold": fmt_number(policy.egfr_caution_below)},
    )
