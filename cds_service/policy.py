"""Site policy: every threshold and indicator of the clinical spec (section 4) that a site may tune.

Loaded from the ``[policy]`` table of the config file and validated at start-up: unknown keys and impossible values
are errors, never silently ignored. Rules receive a ``Policy`` as an argument; they never read settings.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cds_service.domain import Indicator

RULE_IDS: tuple[str, ...] = (
    "opioid-active",
    "opioid-recent",
    "opioid-urine-positive",
    "opioid-urine-missing",
    "opioid-withdrawal",
    "opioid-dependence-documented",
    "hepatic-acute",
    "liver-enzymes-elevated",
    "liver-disease-chronic",
    "liver-panel-missing",
    "naltrexone-allergy",
    "pregnancy",
    "lactation",
    "renal-impairment",
    "mental-health-monitoring",
    "dose-regimen",
    "duration-short",
    "overdose-risk",
    "data-unavailable",
)

# Rules a site may switch off entirely (clinical spec, section 4). Safety checks cannot be switched off.
SWITCHABLE_RULES: frozenset[str] = frozenset({"overdose-risk", "duration-short", "liver-panel-missing"})

IndicatorSetting = Literal["info", "warning", "critical", "off"]
PositiveDays = Annotated[int, Field(gt=0, le=3650)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Policy(_Strict):
    """Thresholds (defaults from the clinical spec) and per-rule indicator overrides."""

    opioid_free_days_short_acting: PositiveDays = 7
    opioid_free_days_long_acting: PositiveDays = 14
    urine_positive_lookback_days: PositiveDays = 30
    urine_required_within_days: PositiveDays = 7
    liver_lookback_days: PositiveDays = 90
    liver_caution_uln_multiple: Annotated[Decimal, Field(gt=1, le=100)] = Decimal(3)
    liver_stop_uln_multiple: Annotated[Decimal, Field(gt=1, le=100)] = Decimal(5)
    alt_default_uln: Annotated[Decimal, Field(gt=0, le=1000)] = Decimal(40)  # U/L
    ast_default_uln: Annotated[Decimal, Field(gt=0, le=1000)] = Decimal(40)  # U/L
    egfr_caution_below: Annotated[Decimal, Field(gt=0, le=200)] = Decimal(50)  # mL/min/1.73m2
    egfr_lookback_days: PositiveDays = 180
    hcg_lookback_days: PositiveDays = 280
    minimum_course_months: Annotated[int, Field(gt=0, le=60)] = 6
    # rule id -> indicator (or "off" for the switchable rules); absent rules keep the spec's default
    indicators: dict[str, IndicatorSetting] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Policy:
        if self.liver_stop_uln_multiple < self.liver_caution_uln_multiple:
            raise ValueError(
                "liver_stop_uln_multiple must be at least liver_caution_uln_multiple "
                f"({self.liver_stop_uln_multiple} < {self.liver_caution_uln_multiple})"
            )
        if self.opioid_free_days_long_acting < self.opioid_free_days_short_acting:
            raise ValueError("opioid_free_days_long_acting must be at least opioid_free_days_short_acting")
        for rule_id, setting in self.indicators.items():
            if rule_id not in RULE_IDS:
                raise ValueError(f"[policy.indicators] names an unknown rule {rule_id!r}; known: {', '.join(RULE_IDS)}")
            if setting == "off" and rule_id not in SWITCHABLE_RULES:
                allowed = ", ".join(sorted(SWITCHABLE_RULES))
                raise ValueError(f"[policy.indicators] {rule_id} cannot be turned off; only {allowed} can")
        return self

    def indicator(self, rule_id: str, default: Indicator) -> Indicator | None:
        """The indicator a rule's card gets at this site, or None when the site turned the rule off."""
        setting = self.indicators.get(rule_id)
        if setting is None:
            return default
        if setting == "off":
            return None
        return Indicator(setting)
