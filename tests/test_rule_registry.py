"""Where does a new rule go? One module per rule id, found by the registry; this test keeps it that way."""

from __future__ import annotations

import inspect

from cds_service.policy import RULE_IDS
from cds_service.rules import RULES


def test_every_spec_rule_has_a_module() -> None:
    assert sorted(RULES) == sorted(RULE_IDS)


def test_rules_are_pure_functions_of_their_arguments() -> None:
    """No clock, settings or I/O inside rules: the evaluation time and policy are arguments."""
    forbidden = ("datetime.now", "date.today", "time.time", "open(", "httpx", "load_settings", "os.environ")
    for rule_id, fn in RULES.items():
        source = inspect.getsource(inspect.getmodule(fn))  # type: ignore[arg-type]
        for word in forbidden:
            assert word not in source, f"{rule_id} uses {word}"
        assert list(inspect.signature(fn).parameters) == ["snapshot", "order", "policy", "now"], rule_id
