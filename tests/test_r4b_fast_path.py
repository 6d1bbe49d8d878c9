"""The FHIR validation fast path never says "valid" where fhir.resources would refuse (differential check).

``cds_service.fhir.r4b`` validates only the elements rules read and answers simple cases itself; anything it is
unsure of goes to fhir.resources. ``bench/validator_check.py`` mutates realistic resources (wrong types, empty and
whitespace strings, impossible dates, leap seconds, nulls, lists for objects...) and compares both verdicts.
"""

from __future__ import annotations

import sys

import pytest

from bench import validator_check


@pytest.mark.parametrize("seed", [1, 2])
def test_fast_path_agrees_with_fhir_resources(
    seed: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["validator_check", "-n", "1500", "--seed", str(seed)])
    assert validator_check.main() == 0, capsys.readouterr().err[-2000:]
    assert "wrongly 0" in capsys.readouterr().out
