"""liver-enzymes-elevated: the latest ALT or AST is a multiple of its upper limit of normal (clinical spec, section 2).

Spec: "The most recent ALT or AST within (policy) 90 days, divided by its upper limit of normal: referenceRange.high
of that Observation when units agree, else a configured default ULN (ALT 40 U/L, AST 40 U/L (policy))."
Warning at >= ``policy.liver_caution_uln_multiple`` (3x), critical at >= ``policy.liver_stop_uln_multiple`` (5x).

Decisions where the spec is silent:

- Which results: ALT and AST are read separately; only final/amended/corrected results dated inside the lookback
  count (undated results cannot be placed in the window). The worse of the two decides the indicator.
- Units: the result must be in U/L or an equivalent spelling (IU/L, [IU]/L, any case). A result with no unit or
  another unit (ukat/L, mg/dL) is never divided: nothing is guessed about its scale. Such a result is listed as
  "not interpreted: unit X" and the rule falls back to the newest readable result of the same enzyme inside the
  window (so an unreadable result cannot hide a readable high one). When no ALT or AST in the window is readable
  at all this rule stays silent and ``liver-panel-missing`` speaks (its "unreadable" variant). When one enzyme is
  unreadable and the other is readable and below the caution multiple, no card mentions the unreadable one.
- A site that overrides this rule's indicator gets that indicator at both levels (``Policy.indicator``); the
  wording still follows the multiple.
- ULN: ``referenceRange.high`` when positive and its unit agrees with the result's; a range written without a
  unit is read in the result's unit (as the urine-screen reader does). A range in another unit, or no range,
  means the site default ULN, and the evidence says which ULN was used.
- Card: one card; the "stop" variant (>= stop multiple) says do not start. Both suggestions (remove the order,
  order a hepatic function panel) are on the card whatever the level, because suggestions belong to the card
  file, not to a variant; at the caution level the detail says the removal is optional.
- Multiples are shown truncated to one decimal ("4.9x", never rounded up past a cut-off).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from cds_service.domain import Evidence, Finding, Indicator, LabResult, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import fmt_number, lab_evidence, recent_results

RULE_ID = "liver-enzymes-elevated"

ENZYMES: tuple[tuple[str, str], ...] = (("alt", "ALT"), ("ast", "AST"))
TIMES = "\N{MULTIPLICATION SIGN}"
UL_UNITS = frozenset({"u/l", "iu/l", "[iu]/l", "unit/l", "units/l", "iu/liter", "u/liter"})


def is_ul(unit: str | None) -> bool:
    """True for U/L and its spellings: U/L and IU/L are the same scale (clinical spec, section 3)."""
    return unit is not None and unit.strip().lower().replace(" ", "") in UL_UNITS


@dataclass(frozen=True, slots=True)
class EnzymeReading:
    """One ALT or AST result read against its ULN; ``multiple`` is None when the result cannot be interpreted."""

    lab: LabResult
    name: str  # "ALT" | "AST"
    multiple: Decimal | None
    uln: Decimal | None = None
    uln_basis: str = ""
    problem: str | None = None

    def shown(self) -> str:
        """'4.2x ULN (ULN 40 U/L, ...)' (with a multiplication sign) or 'not interpreted: unit ukat/L'."""
        if self.multiple is None or self.uln is None:
            return f"not interpreted: {self.problem}"
        return f"{fmt_multiple(self.multiple)}{TIMES} ULN (ULN {fmt_number(self.uln)} U/L, {self.uln_basis})"


def fmt_multiple(multiple: Decimal) -> str:
    return f"{multiple.quantize(Decimal('0.1'), rounding=ROUND_DOWN)}"


def read_enzyme(lab: LabResult, name: str, default_uln: Decimal) -> EnzymeReading:
    """Divide an ALT/AST value by its ULN, or say why it cannot be divided."""
    if lab.value is None:
        return EnzymeReading(lab, name, None, problem="no numeric value")
    if lab.unit is None:
        return EnzymeReading(lab, name, None, problem="unit not recorded")
    if not is_ul(lab.unit):
        return EnzymeReading(lab, name, None, problem=f"unit {lab.unit}")
    if lab.ref_high is not None and lab.ref_high > 0 and (lab.ref_unit is None or is_ul(lab.ref_unit)):
        uln, basis = lab.ref_high, "from the result's reference range"
    else:
        why = "no reference range" if lab.ref_high is None else f"reference range in {lab.ref_unit or 'no unit'}"
        if lab.ref_high is not None and lab.ref_high <= 0:
            why = "reference range upper limit not positive"
        uln, basis = default_uln, f"site default ULN; {why}"
    return EnzymeReading(lab, name, lab.value / uln, uln, basis)


def enzyme_readings(
    snapshot: PatientSnapshot, policy: Policy, now: datetime
) -> dict[str, tuple[EnzymeReading | None, list[EnzymeReading]]]:
    """Per enzyme: the newest readable result in the lookback window (or None), and the unreadable results
    that are newer than it (all of them when none is readable)."""
    defaults = {"alt": policy.alt_default_uln, "ast": policy.ast_default_uln}
    out: dict[str, tuple[EnzymeReading | None, list[EnzymeReading]]] = {}
    for group, name in ENZYMES:
        unreadable: list[EnzymeReading] = []
        chosen: EnzymeReading | None = None
        for lab in recent_results(snapshot.labs, group, now, policy.liver_lookback_days):
            reading = read_enzyme(lab, name, defaults[group])
            if reading.multiple is None:
                unreadable.append(reading)
                continue
            chosen = reading
            break
        out[group] = (chosen, unreadable)
    return out


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    readings = enzyme_readings(snapshot, policy, now)
    chosen = [r for r, _ in readings.values() if r is not None and r.multiple is not None]
    high = [r for r in chosen if r.multiple is not None and r.multiple >= policy.liver_caution_uln_multiple]
    if not high:
        return None
    worst = max(r.multiple for r in high if r.multiple is not None)
    stop = worst >= policy.liver_stop_uln_multiple
    indicator = policy.indicator(RULE_ID, Indicator.CRITICAL if stop else Indicator.WARNING)
    if indicator is None:
        return None
    evidence: list[Evidence] = []
    for reading, unreadable in readings.values():
        evidence += [lab_evidence(u.lab, u.shown()) for u in unreadable]
        if reading is not None:
            evidence.append(lab_evidence(reading.lab, reading.shown()))
    levels = " and ".join(f"{r.name} {fmt_multiple(r.multiple)}{TIMES}" for r in high if r.multiple is not None)
    return Finding(
        rule_id=RULE_ID,
        indicator=indicator,
        evidence=tuple(evidence),
        facts={
            "levels": f"{levels} ULN",
            "caution": fmt_number(policy.liver_caution_uln_multiple),
            "stop": fmt_number(policy.liver_stop_uln_multiple),
            "days": str(policy.liver_lookback_days),
        },
        variant="stop" if stop else None,
    )
