"""data-unavailable: a category of data a rule needs could not be read, so some checks did not run.

A safety check that silently skips is worse than one that says it could not look (clinical spec, section 2).
"""

from __future__ import annotations

from datetime import datetime

from cds_service.domain import Category, Evidence, Finding, Indicator, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy
from cds_service.rules.common import names

RULE_ID = "data-unavailable"

CHECKS: dict[Category, str] = {
    Category.MEDICATIONS: "current and recent opioids, naltrexone renewal",
    Category.URINE_SCREENS: "opioid urine screen",
    Category.LIVER_TESTS: "liver enzymes (ALT/AST)",
    Category.PREGNANCY: "pregnancy tests and status",
    Category.LACTATION: "breastfeeding status",
    Category.RENAL: "kidney function (eGFR)",
    Category.CONDITIONS: "opioid withdrawal and dependence, liver, pregnancy, kidney and mood diagnoses",
    Category.ALLERGIES: "naltrexone allergy",
}


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> Finding | None:
    problems = [u for u in snapshot.unavailable if u.category in CHECKS]
    if not problems:
        return None
    indicator = policy.indicator(RULE_ID, Indicator.WARNING)
    if indicator is None:
        return None
    evidence = tuple(
        Evidence(
            f"{u.category.label}: {u.reason} — "
            + ("checked on what could be read: " if u.partial else "not checked: ")
            + CHECKS[u.category]
        )
        for u in problems
    )
    return Finding(
        rule_id=RULE_ID,
        indicator=indicator,
        evidence=evidence,
        facts={"categories": names((u.category.label for u in problems), limit=2)},
    )
