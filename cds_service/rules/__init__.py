"""The clinical rules: one module per rule id, each a pure function of (snapshot, order, policy, now).

Where does a new rule go? ``cds_service/rules/<rule_id_with_underscores>.py`` defining ``RULE_ID`` and
``evaluate(snapshot, order, policy, now) -> Finding | None``, plus its card in ``cards/<rule-id>.toml``. The
registry below finds it by module name; ``tests/test_rule_registry.py`` checks that every rule id of the clinical
spec has exactly one module and one card.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from datetime import datetime
from types import ModuleType

from cds_service.domain import Finding, NaltrexoneOrder, PatientSnapshot
from cds_service.policy import Policy

RuleFn = Callable[[PatientSnapshot, NaltrexoneOrder, Policy, datetime], Finding | None]

# Opioid rules that make the "dependence documented" reminder redundant when any of them fires.
_OPIOID_STOPS = frozenset({"opioid-active", "opioid-recent", "opioid-urine-positive", "opioid-withdrawal"})


def _load() -> dict[str, RuleFn]:
    rules: dict[str, RuleFn] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "common":
            continue
        module: ModuleType = importlib.import_module(f"{__name__}.{info.name}")
        rule_id = getattr(module, "RULE_ID", None)
        fn = getattr(module, "evaluate", None)
        if not isinstance(rule_id, str) or not callable(fn):
            raise ImportError(f"rule module {module.__name__} must define RULE_ID and evaluate()")
        if rule_id in rules:
            raise ImportError(f"two rule modules claim {rule_id!r}")
        rules[rule_id] = fn
    return rules


RULES: dict[str, RuleFn] = _load()


def evaluate(snapshot: PatientSnapshot, order: NaltrexoneOrder, policy: Policy, now: datetime) -> list[Finding]:
    """Run every rule for one order; most urgent first, then in a stable order."""
    findings = [f for fn in RULES.values() if (f := fn(snapshot, order, policy, now)) is not None]
    fired = {f.rule_id for f in findings}
    if fired & _OPIOID_STOPS:
        findings = [f for f in findings if f.rule_id != "opioid-dependence-documented"]
    findings.sort(key=lambda f: -f.indicator.rank)
    return findings
