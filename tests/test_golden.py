"""Golden hook fixtures: every ``fixtures/hooks/<service>/<case>/`` folder is a test.

``request.json`` is posted to ``/cds-services/<service>`` with the clock pinned to ``tests.builders.NOW``;
the response, with card and suggestion uuids replaced by "<uuid>", must equal ``expected.json``.
After a deliberate change of card wording, regenerate with ``UPDATE_GOLDEN=1 pytest tests/test_golden.py``
and review the diff like any other content change.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "hooks"
CASES = sorted(p.parent for p in ROOT.glob("*/*/request.json"))
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<uuid>" if k == "uuid" and UUID.match(str(v)) else _normalise(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def test_there_are_golden_cases_for_every_service() -> None:
    assert {p.parent.name for p in CASES} == {
        "naltrexone-order-select",
        "naltrexone-order-sign",
        "naltrexone-medication-prescribe",
    }


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_golden(client: TestClient, case: Path) -> None:
    request = json.loads((case / "request.json").read_text())
    r = client.post(f"/cds-services/{case.parent.name}", json=request)
    got = {"status": r.status_code, "body": _normalise(r.json())}
    expected_file = case / "expected.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected_file.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n")
    assert expected_file.exists(), f"{expected_file} is missing: run with UPDATE_GOLDEN=1 and review it"
    assert got == json.loads(expected_file.read_text())
