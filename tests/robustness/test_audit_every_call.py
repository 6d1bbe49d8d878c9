"""Every hook call leaves exactly one audit record, whatever became of it (issue item 6).

A recording observer is passed to ``create_app(..., observers=[...])``; each call below must produce one
``CallRecord`` with the status the client saw and the OperationOutcome issue code as ``error``. The records stay
PHI-free: no patient id and no token in any field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import astuple
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from cds_service.app import create_app
from cds_service.hooks.models import FeedbackItem
from cds_service.observe import CallRecord
from tests.builders import NOW, PATIENT_ID, empty_prefetch, hook_request, medication_request, naltrexone_draft
from tests.robustness import SIGN, FaultServer, check_response, robust_settings

HOOK_INSTANCE = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"  # tests.builders.hook_request's


class Recorder:
    """A CallObserver that keeps what it is told."""

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []
        self.feedback: list[tuple[str, list[FeedbackItem]]] = []

    async def on_call(self, record: CallRecord) -> None:
        self.calls.append(record)

    async def on_feedback(self, service_id: str, items: list[FeedbackItem]) -> None:
        self.feedback.append((service_id, items))


@pytest.fixture(scope="module")
def fhir() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def _client(recorder: Recorder, transport: httpx.AsyncBaseTransport | None = None, **settings: Any) -> TestClient:
    http = httpx.AsyncClient(transport=transport) if transport is not None else None
    app = create_app(robust_settings(**settings), clock=lambda: NOW, http=http, observers=[recorder])
    return TestClient(app, raise_server_exceptions=False)


def _deep(levels: int) -> bytes:
    body = orjson.dumps(hook_request(prefetch=empty_prefetch()))
    return body[:-1] + b',"extension":{"x":' + b"[" * levels + b"]" * levels + b"}}"


def _without_medication_requests(fhir_server: str) -> dict[str, Any]:
    prefetch = empty_prefetch()
    del prefetch["medicationRequests"]
    return hook_request(prefetch=prefetch, fhir_server=fhir_server, access_token="audit-token")


FAILING: dict[str, tuple[Any, int, str | None]] = {
    # case: (body, status, error)
    "malformed-json": (b"{not json", 400, "invalid"),
    "empty-body": (b"", 400, "invalid"),
    "array-body": (b"[]", 400, "invalid"),
    "missing-context": ({"hook": "order-sign", "hookInstance": HOOK_INSTANCE}, 400, "invalid"),
    "wrong-hook": ({**hook_request(), "hook": "order-select"}, 400, "invalid"),
    "too-deep": (_deep(100), 400, "invalid"),
    "too-deep-for-orjson": (_deep(1100), 400, "invalid"),
    "missing-prefetch-no-server": (hook_request(prefetch=None), 412, "required"),
    "body-over-size-limit": (
        hook_request(draft_orders=[naltrexone_draft(note=[{"text": "x" * 5000}])], prefetch=empty_prefetch()),
        413,
        "too-costly",
    ),
    "too-many-entries": (
        hook_request(draft_orders=[naltrexone_draft(id=f"d{i}") for i in range(12)], prefetch=empty_prefetch()),
        413,
        "too-costly",
    ),
}


@pytest.mark.parametrize("case", list(FAILING))
def test_a_failing_call_leaves_exactly_one_record(case: str) -> None:
    body, status, error = FAILING[case]
    recorder = Recorder()
    with _client(recorder, limits={"max_body_bytes": 4096, "max_bundle_entries": 10}) as c:
        if isinstance(body, bytes):
            r = c.post(SIGN, content=body, headers={"Content-Type": "application/json"})
        else:
            r = c.post(SIGN, content=orjson.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    check_response(r)
    [record] = recorder.calls
    assert (record.status_code, record.error, record.service_id) == (status, error, "naltrexone-order-sign")
    assert record.cards == ()
    if case in ("wrong-hook", "missing-prefetch-no-server", "missing-context"):
        assert record.hook_instance == HOOK_INSTANCE  # readable calls are attributable
    assert record.latency_ms >= 0 and record.started_at == NOW


def test_an_unexpected_exception_is_a_500_with_one_record() -> None:
    """The 500 path: a bug under the fetch (here: the transport raises) still leaves its record."""

    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug, not a network error")

    recorder = Recorder()
    with _client(recorder, httpx.MockTransport(broken)) as c:
        r = c.post(SIGN, json=_without_medication_requests("http://127.0.0.1:9/fhir"))
    assert r.status_code == 500
    assert r.json()["resourceType"] == "OperationOutcome" and "incident" in r.json()["issue"][0]["diagnostics"]
    [record] = recorder.calls
    assert (record.status_code, record.error, record.hook_instance) == (500, "exception", HOOK_INSTANCE)


@pytest.mark.parametrize("mode", ["500", "hang", "html"])
def test_a_fault_injected_fetch_is_recorded_as_200_with_the_unavailable_category(fhir: FaultServer, mode: str) -> None:
    recorder = Recorder()
    with _client(recorder, fhir={"timeout_s": 0.5}) as c:
        r = c.post(SIGN, json=_without_medication_requests(fhir.base(mode, "MedicationRequest")))
    assert r.status_code == 200
    [record] = recorder.calls
    assert record.status_code == 200 and record.error is None
    assert record.fetch_errors == 1
    assert record.unavailable == ("medications",)
    assert ("medications", "mixed") in record.provenance  # statements/dispenses prefetched, requests fetched
    assert "data-unavailable" in {c.rule_id for c in record.cards}
    flat = str(astuple(record))
    assert PATIENT_ID not in flat and "audit-token" not in flat


def test_a_successful_call_and_one_record_per_call() -> None:
    recorder = Recorder()
    prefetch = {**empty_prefetch(), "medicationRequests": {"resourceType": "Bundle", "entry": [
        {"resource": medication_request()}
    ]}}  # fmt: skip
    with _client(recorder) as c:
        for _ in range(3):
            assert c.post(SIGN, json=hook_request(prefetch=prefetch)).status_code == 200
        assert c.post(SIGN, content=b"{", headers={"Content-Type": "application/json"}).status_code == 400
    assert [r.status_code for r in recorder.calls] == [200, 200, 200, 400]
    assert all("opioid-active" in {c.rule_id for c in r.cards} for r in recorder.calls[:3])


def test_feedback_is_not_a_hook_call() -> None:
    recorder = Recorder()
    with _client(recorder) as c:
        r = c.post(f"{SIGN}/feedback", json={"feedback": []})
    assert r.status_code == 400
    assert recorder.calls == [] and recorder.feedback == []
