"""Real CDS Hooks request bodies from the CDC Opioid Prescribing IG (../shared/data/opioid-cds-requests).

They are what real clients send, written by others: every one must be answered without a 5xx. None orders
naltrexone, so the answer is "no card"; with a naltrexone draft swapped in, the service must still answer.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.builders import SERVICE_FOR_HOOK, naltrexone_draft
from tests.conftest import SHARED_DATA

FOLDER = SHARED_DATA / "opioid-cds-requests"
FILES = sorted(FOLDER.rglob("*.json")) if FOLDER.exists() else []


def _load(path: Path) -> dict[str, Any]:
    # Most upstream files are not strict JSON (a trailing brace): take the first complete object.
    body, _ = json.JSONDecoder().raw_decode(path.read_text(encoding="utf-8").lstrip())
    assert isinstance(body, dict)
    return body


def _skip_if_absent() -> None:
    if not FILES:
        pytest.skip(f"{FOLDER} is absent: the shared CDC request bodies are not beside this checkout")


@pytest.mark.parametrize("path", FILES or [None], ids=[str(p.relative_to(FOLDER)) for p in FILES] or ["absent"])
def test_every_shared_request_is_answered(client: TestClient, path: Path | None) -> None:
    _skip_if_absent()
    assert path is not None
    body = _load(path)
    service = SERVICE_FOR_HOOK.get(body.get("hook", ""))
    if service is None:
        # patient-view and other hooks are not ours: sent to order-sign they must be a clear 400, not a 500
        r = client.post("/cds-services/naltrexone-order-sign", json=body)
        assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
        return
    r = client.post(f"/cds-services/{service}", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"cards": []}  # no naltrexone order: nothing to say


@pytest.mark.parametrize("path", FILES or [None], ids=[str(p.relative_to(FOLDER)) for p in FILES] or ["absent"])
def test_with_a_naltrexone_draft_swapped_in(client: TestClient, path: Path | None) -> None:
    _skip_if_absent()
    assert path is not None
    body = _load(path)
    service = SERVICE_FOR_HOOK.get(body.get("hook", ""))
    if service is None or "draftOrders" not in body.get("context", {}):
        pytest.skip("not an order hook with draftOrders")
    body = copy.deepcopy(body)
    body["context"]["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": naltrexone_draft()}]}
    if body["hook"] == "order-select":
        body["context"]["selections"] = ["MedicationRequest/draft-ntx"]
    r = client.post(f"/cds-services/{service}", json=body)
    # Their prefetch keys (item1...) are not ours; with a fhirServer the service tries to fetch (the public server
    # is not allowlisted, so nothing is requested) and says what it could not read; without one: 412.
    if "fhirServer" in body:
        assert r.status_code == 200, r.text
        codes = [c["source"]["topic"]["code"] for c in r.json()["cards"]]
        assert "data-unavailable" in codes
    else:
        assert r.status_code == 412
        assert r.json()["resourceType"] == "OperationOutcome"
