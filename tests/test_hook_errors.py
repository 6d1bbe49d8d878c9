"""Malformed requests get a clear 4xx with an OperationOutcome, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.builders import hook_request, naltrexone_draft

SIGN = "/cds-services/naltrexone-order-sign"


def _outcome(r: Any, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["severity"] == "error" and issue["diagnostics"]
    return str(issue["diagnostics"])


def _without(key: str) -> dict[str, Any]:
    body = hook_request()
    del body[key]
    return body


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "JSON object"),
        (_without("hook"), "hook"),
        (_without("hookInstance"), "hookInstance"),
        (_without("context"), "context"),
        ({**hook_request(), "context": "patient 1"}, "context"),
        ({**hook_request(), "hookInstance": 42}, "hookInstance"),
        ({**hook_request(), "hook": "order-select"}, "does not match"),
        ({**hook_request(), "fhirServer": "ftp://x"}, "fhirServer"),
        ({**hook_request(), "fhirAuthorization": {"token_type": "Bearer"}}, "access_token"),
        ({**hook_request(), "prefetch": {"conditions": "none"}}, "prefetch.conditions"),
    ],
    ids=[
        "malformed-json",
        "empty-body",
        "array-body",
        "no-hook",
        "no-hookInstance",
        "no-context",
        "context-wrong-type",
        "hookInstance-wrong-type",
        "hook-mismatch",
        "fhirServer-not-url",
        "fhirAuthorization-no-token",
        "prefetch-value-not-resource",
    ],
)
def test_bad_requests_are_400_with_an_outcome(client: TestClient, body: Any, says: str) -> None:
    if isinstance(body, bytes):
        r = client.post(SIGN, content=body, headers={"Content-Type": "application/json"})
    else:
        r = client.post(SIGN, json=body)
    assert says in _outcome(r, 400)


def test_order_select_without_selections_is_400(client: TestClient) -> None:
    body = hook_request("order-select")
    del body["context"]["selections"]
    assert "selections" in _outcome(client.post("/cds-services/naltrexone-order-select", json=body), 400)


def test_unknown_service_is_404(client: TestClient) -> None:
    assert "no CDS service" in _outcome(client.post("/cds-services/nope", json=hook_request()), 404)
    assert "no CDS service" in _outcome(client.post("/cds-services/nope/feedback", json={"feedback": []}), 404)


def test_missing_prefetch_without_fhir_server_is_412(client: TestClient) -> None:
    message = _outcome(client.post(SIGN, json=hook_request(prefetch=None)), 412)
    assert "medicationRequests" in message and "fhirServer" in message


def test_body_over_the_limit_is_413(make_client: Any) -> None:
    from cds_service.config import Settings

    c = make_client(Settings.development(limits={"max_body_bytes": 2048}))
    body = hook_request(draft_orders=[naltrexone_draft(note=[{"text": "x" * 5000}])])
    _outcome(c.post(SIGN, json=body), 413)


def test_wrong_method_is_an_outcome_not_html(client: TestClient) -> None:
    _outcome(client.get(SIGN), 405)


@pytest.mark.parametrize(
    "body",
    [
        {"feedback": [{"card": "abc", "outcome": "maybe", "outcomeTimestamp": "2026-11-21T10:00:00Z"}]},
        {"feedback": [{"outcome": "accepted", "outcomeTimestamp": "2026-11-21T10:00:00Z"}]},
        {"feedback": []},
        {"nothing": 1},
    ],
    ids=["bad-outcome", "no-card", "empty-list", "no-feedback"],
)
def test_bad_feedback_is_400(client: TestClient, body: Any) -> None:
    _outcome(client.post(f"{SIGN}/feedback", json=body), 400)


def test_valid_feedback_is_200(client: TestClient) -> None:
    body = {
        "feedback": [
            {
                "card": "c1",
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": "s1"}],
                "outcomeTimestamp": "2026-11-21T10:00:00Z",
            },
            {
                "card": "c2",
                "outcome": "overridden",
                "overrideReason": {"reason": {"code": "x", "system": "urn:x", "display": "X"}, "userComment": "ok"},
                "outcomeTimestamp": "2026-11-21T10:00:00Z",
            },
        ]
    }
    r = client.post(f"{SIGN}/feedback", json=body)
    assert r.status_code == 200
