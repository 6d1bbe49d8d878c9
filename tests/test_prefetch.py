"""Prefetch semantics, exactly as CDS Hooks 2.0 defines them, with the fallback fetch on an httpx MockTransport."""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi.testclient import TestClient

from cds_service.config import Settings
from tests.builders import (
    PATIENT_ID,
    bundle,
    empty_prefetch,
    hook_request,
    medication_request,
    prefetch_with,
    topics,
)

SIGN = "/cds-services/naltrexone-order-sign"
FHIR = "http://127.0.0.1:9999/fhir"


class FakeFhir:
    """A FHIR server in a function: answers searches from a dict of resource type -> resources, records calls."""

    def __init__(self, by_type: dict[str, list[dict[str, Any]]] | None = None, page_size: int = 0) -> None:
        self.by_type = by_type or {}
        self.page_size = page_size
        self.requests: list[httpx.Request] = []
        self.fail: dict[str, int] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        rtype = request.url.path.rsplit("/fhir/", 1)[1].split("/")[0]
        if rtype in self.fail:
            return httpx.Response(self.fail[rtype], json={"resourceType": "OperationOutcome", "issue": []})
        if rtype == "Patient":
            return httpx.Response(200, json={"resourceType": "Patient", "id": PATIENT_ID})
        items = self.by_type.get(rtype, [])
        page = int(request.url.params.get("page", "0"))
        if self.page_size:
            chunk = items[page * self.page_size : (page + 1) * self.page_size]
            more = (page + 1) * self.page_size < len(items)
            nxt = f"{FHIR}/{rtype}?patient={PATIENT_ID}&page={page + 1}" if more else None
            return httpx.Response(200, json=bundle(*chunk, next_url=nxt))
        return httpx.Response(200, json=bundle(*items))

    def paths(self) -> list[str]:
        return [r.url.path.rsplit("/", 1)[-1] for r in self.requests]


def _post(c: TestClient, body: dict[str, Any]) -> Any:
    r = c.post(SIGN, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_prefetched_oxycodone_gives_the_critical_opioid_active_card(client: TestClient) -> None:
    body = hook_request(prefetch=prefetch_with(medicationRequests=[medication_request()]))
    out = _post(client, body)
    card = out["cards"][0]
    assert card["indicator"] == "critical"
    assert card["source"]["topic"] == {
        "system": "urn:naltrexone-cds:rule",
        "code": "opioid-active",
        "display": "Opioid currently in use",
    }
    assert "oxycodone" in card["summary"].lower() and len(card["summary"]) < 140
    delete = card["suggestions"][0]["actions"][0]
    assert delete == {
        "type": "delete",
        "description": delete["description"],
        "resourceId": "MedicationRequest/draft-ntx",
    }
    assert card["selectionBehavior"] == "at-most-one"


def test_absent_key_is_fetched_with_the_bearer_token(make_client: Any) -> None:
    fhir = FakeFhir({"MedicationRequest": [medication_request()]})
    c = make_client(transport=httpx.MockTransport(fhir))
    prefetch = empty_prefetch()
    del prefetch["medicationRequests"]
    out = _post(c, hook_request(prefetch=prefetch, fhir_server=FHIR, access_token="secret-token-1"))
    assert "opioid-active" in topics(out)
    assert fhir.paths() == ["MedicationRequest"]
    req = fhir.requests[0]
    assert req.headers["Authorization"] == "Bearer secret-token-1"
    assert req.headers["Accept"] == "application/fhir+json"
    assert req.url.params["patient"] == PATIENT_ID


def test_no_token_means_no_authorization_header(make_client: Any) -> None:
    fhir = FakeFhir({"MedicationRequest": [medication_request()]})
    c = make_client(transport=httpx.MockTransport(fhir))
    prefetch = empty_prefetch()
    del prefetch["medicationRequests"]
    _post(c, hook_request(prefetch=prefetch, fhir_server=FHIR))
    assert "Authorization" not in fhir.requests[0].headers


def test_null_key_means_no_data_and_no_refetch(make_client: Any) -> None:
    fhir = FakeFhir({"MedicationRequest": [medication_request()]})
    c = make_client(transport=httpx.MockTransport(fhir))
    out = _post(c, hook_request(prefetch={**empty_prefetch(), "medicationRequests": None}, fhir_server=FHIR))
    assert fhir.requests == []
    assert "opioid-active" not in topics(out) and "data-unavailable" not in topics(out)


def test_operation_outcome_key_is_refetched(make_client: Any) -> None:
    fhir = FakeFhir({"MedicationRequest": [medication_request()]})
    c = make_client(transport=httpx.MockTransport(fhir))
    failed = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    out = _post(c, hook_request(prefetch={**empty_prefetch(), "medicationRequests": failed}, fhir_server=FHIR))
    assert fhir.paths() == ["MedicationRequest"]
    assert "opioid-active" in topics(out)


def test_operation_outcome_and_failed_refetch_marks_the_category_unavailable(make_client: Any) -> None:
    fhir = FakeFhir()
    fhir.fail["MedicationRequest"] = 500
    c = make_client(transport=httpx.MockTransport(fhir))
    failed = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    out = _post(c, hook_request(prefetch={**empty_prefetch(), "medicationRequests": failed}, fhir_server=FHIR))
    assert "data-unavailable" in topics(out)
    card = next(c for c in out["cards"] if c["source"]["topic"]["code"] == "data-unavailable")
    assert "HTTP 500" in card["detail"]


def test_operation_outcome_without_fhir_server_is_unavailable_not_412(client: TestClient) -> None:
    failed = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    out = _post(client, hook_request(prefetch={**empty_prefetch(), "conditions": failed}))
    assert "data-unavailable" in topics(out)


def test_next_links_are_followed(make_client: Any) -> None:
    meds = [medication_request(status="completed", authored=-400) for _ in range(5)] + [medication_request()]
    fhir = FakeFhir({"MedicationRequest": meds}, page_size=2)
    c = make_client(transport=httpx.MockTransport(fhir))
    first = fhir(httpx.Request("GET", f"{FHIR}/MedicationRequest?patient={PATIENT_ID}"))
    fhir.requests.clear()
    out = _post(
        c,
        hook_request(prefetch={**empty_prefetch(), "medicationRequests": json.loads(first.content)}, fhir_server=FHIR),
    )
    assert len(fhir.requests) == 2  # pages 2 and 3
    assert "opioid-active" in topics(out)  # the active one is on the last page


def test_page_limit_marks_the_category_incomplete(make_client: Any) -> None:
    meds = [medication_request(status="completed", authored=-400) for _ in range(10)]
    fhir = FakeFhir({"MedicationRequest": meds}, page_size=1)
    c = make_client(Settings.development(fhir={"max_pages": 3}), transport=httpx.MockTransport(fhir))
    prefetch = empty_prefetch()
    del prefetch["medicationRequests"]
    out = _post(c, hook_request(prefetch=prefetch, fhir_server=FHIR))
    assert len(fhir.requests) == 3
    card = next(c for c in out["cards"] if c["source"]["topic"]["code"] == "data-unavailable")
    assert "more than 3 pages" in card["detail"]


def test_fallback_queries_run_concurrently(make_client: Any) -> None:
    """With no prefetch at all, every category is fetched; all requests are in flight together."""
    import asyncio

    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)  # yield so the other requests can start
        await asyncio.sleep(0)
        in_flight -= 1
        if "/Patient/" in request.url.path:
            return httpx.Response(200, json={"resourceType": "Patient", "id": PATIENT_ID})
        return httpx.Response(200, json=bundle())

    c = make_client(transport=httpx.MockTransport(handler))
    out = _post(c, hook_request(prefetch=None, fhir_server=FHIR))
    assert "data-unavailable" not in topics(out)
    assert peak >= 5


def test_unallowlisted_fhir_server_is_never_contacted(make_client: Any) -> None:
    fhir = FakeFhir()
    c = make_client(transport=httpx.MockTransport(fhir))
    out = _post(c, hook_request(prefetch=None, fhir_server="https://evil.example.com/fhir"))
    assert fhir.requests == []
    card = next(c for c in out["cards"] if c["source"]["topic"]["code"] == "data-unavailable")
    assert card["indicator"] == "warning" and "allowlist" in card["detail"]


def test_unknown_context_fields_and_extensions_are_tolerated(client: TestClient) -> None:
    body = hook_request(prefetch=prefetch_with(medicationRequests=[medication_request()]))
    body["context"]["somethingNew"] = {"a": 1}
    body["extension"] = {"com.example.ehr": {"tier": 2}}
    body["unknownTopLevel"] = True
    assert "opioid-active" in topics(_post(client, body))
