"""The sandbox's FHIR endpoint and page API, and the "let the service fetch" path end to end.

The fetch path runs in-process: the service's HTTP client is routed back into the same sandbox app, so the
service really calls ``GET {fhirServer}/Observation?...`` and follows ``next`` links, without opening a socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cds_service.fhir.r4b import validate
from cds_service.hooks.models import FeedbackItem
from cds_service.hooks.services import PREFETCH
from cds_service.observe import CallRecord
from cds_service.sandbox.app import create_sandbox_app, load_store
from cds_service.sandbox.fhir_server import build_prefetch
from cds_service.sandbox.patients import PatientStore, build_store, load_data

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()
FHIR = "http://127.0.0.1/fhir"  # loopback: the development allowlist lets the service fetch from it
STORE, _WARNINGS = load_store(TODAY)
PATIENT_IDS = sorted(STORE.patients)


class Recorder:
    """Observer that keeps every call record, to see where the service got its data."""

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []
        self.feedback: list[FeedbackItem] = []

    async def on_call(self, record: CallRecord) -> None:
        self.calls.append(record)

    async def on_feedback(self, service_id: str, items: list[FeedbackItem]) -> None:
        self.feedback.extend(items)


def _client(store: PatientStore, recorder: Recorder | None = None, max_count: int = 1000) -> Iterator[TestClient]:
    holder: dict[str, FastAPI] = {}

    async def loop_back(scope: Any, receive: Any, send: Any) -> None:
        await holder["app"](scope, receive, send)

    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=loop_back))
    app = create_sandbox_app(
        store, clock=lambda: NOW, http=http, observers=[recorder] if recorder else [], fhir_max_count=max_count
    )
    holder["app"] = app
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    asyncio.run(http.aclose())


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def client(recorder: Recorder) -> Iterator[TestClient]:
    yield from _client(STORE, recorder)


@pytest.fixture(scope="module")
def paging_client() -> Iterator[TestClient]:
    """Every search answers one resource per page, so the service must follow ``next`` links."""
    yield from _client(STORE, max_count=1)


def _fhir_path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_fixtures_load_without_warnings() -> None:
    assert _WARNINGS == []


# -- reads and searches ------------------------------------------------------------------------------------------
def test_patient_read(client: TestClient) -> None:
    r = client.get("/fhir/Patient/sbx-opioid-active")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    assert r.json()["resourceType"] == "Patient" and r.json()["id"] == "sbx-opioid-active"


def test_unknown_resource_is_a_404_operation_outcome(client: TestClient) -> None:
    r = client.get("/fhir/Patient/nobody")
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"


def test_metadata(client: TestClient) -> None:
    body = client.get("/fhir/metadata").json()
    assert body["resourceType"] == "CapabilityStatement" and body["fhirVersion"] == "4.0.1"


@pytest.mark.parametrize("pk", PREFETCH, ids=[pk.key for pk in PREFETCH])
def test_every_prefetch_template_is_answered(client: TestClient, pk: Any) -> None:
    pid = "sbx-buprenorphine-maintenance"
    r = client.get("/fhir/" + pk.template.replace("{{context.patientId}}", pid))
    assert r.status_code == 200, r.text
    body = r.json()
    validate(body)
    rtype = pk.template.split("?")[0].split("/")[0]
    if body["resourceType"] == "Patient":
        assert body["id"] == pid
        return
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
    for entry in body.get("entry", []):
        res = entry["resource"]
        assert res["resourceType"] == rtype
        assert (res.get("subject") or res.get("patient") or {}).get("reference") == f"Patient/{pid}"
        assert entry["fullUrl"] == f"http://testserver/fhir/{rtype}/{res['id']}"


def test_observation_searches_filter_by_code_and_sort_newest_first(client: TestClient) -> None:
    urine = "http://loinc.org|19295-5,http://loinc.org|93494-3"
    body = client.get(f"/fhir/Observation?patient=sbx-buprenorphine-maintenance&code={urine}&_sort=-date").json()
    codes = [e["resource"]["code"]["coding"][0]["code"] for e in body["entry"]]
    assert sorted(codes) == ["19295-5", "93494-3"]
    liver = client.get("/fhir/Observation?patient=sbx-liver-panel-missing&code=1742-6&_sort=-date").json()
    assert [e["resource"]["code"]["coding"][0]["code"] for e in liver["entry"]] == ["1742-6"]
    nothing = client.get("/fhir/Observation?patient=sbx-opioid-active&code=http://loinc.org|98979-8").json()
    assert nothing["total"] == 0 and "entry" not in nothing


def _dated_patient() -> PatientStore:
    observations = [
        {
            "resourceType": "Observation",
            "id": f"alt-{i}",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "1742-6"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": (TODAY - timedelta(days=d)).isoformat(),
            "valueQuantity": {"value": 20 + i, "unit": "U/L"},
        }
        for i, d in enumerate([30, 2, 60, 9, 1])
    ]
    data = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": "Patient", "id": "p1"}}] + [{"resource": o} for o in observations],
    }
    store, _ = build_store([load_data(data, "p1.json", TODAY, roll="none", group="test")])
    return store


def test_paging_follows_next_links_to_every_result_in_date_order() -> None:
    for client in _client(_dated_patient()):
        url: str | None = "/fhir/Observation?patient=p1&code=http://loinc.org|1742-6&_sort=-date&_count=2"
        ids, pages = [], 0
        while url:
            body = client.get(url).json()
            pages += 1
            assert body["total"] == 5
            ids += [e["resource"]["id"] for e in body["entry"]]
            url = next((_fhir_path(link["url"]) for link in body["link"] if link["relation"] == "next"), None)
        assert pages == 3
        assert ids == ["alt-4", "alt-1", "alt-3", "alt-0", "alt-2"]  # 1, 2, 9, 30, 60 days ago
        oldest_first = client.get("/fhir/Observation?patient=p1&_sort=date&_count=1").json()
        assert oldest_first["entry"][0]["resource"]["id"] == "alt-2"


@pytest.mark.parametrize(
    "query",
    ["Observation?patient=p1&category=laboratory", "Observation?patient=p1&_count=many", "Observation?_sort=code"],
)
def test_unsupported_searches_are_refused_with_an_operation_outcome(client: TestClient, query: str) -> None:
    r = client.get(f"/fhir/{query}")
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"


def test_a_fixture_can_make_a_search_fail(client: TestClient) -> None:
    r = client.get("/fhir/AllergyIntolerance?patient=sbx-data-unavailable&_count=100")
    assert r.status_code == 500 and r.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/Condition?patient=sbx-data-unavailable").status_code == 200
    prefetch = build_prefetch(STORE, "sbx-data-unavailable")
    assert prefetch["allergies"]["resourceType"] == "OperationOutcome"
    assert prefetch["conditions"]["resourceType"] == "Bundle"


# -- the fetch path, end to end ----------------------------------------------------------------------------------
def _hook(client: TestClient, pid: str, mode: str, hook: str = "order-sign") -> dict[str, Any]:
    order = STORE.patients[pid].order
    assert order is not None
    built = client.post(
        "/sandbox/api/hook-request",
        json={"patientId": pid, "hook": hook, "mode": mode, "draftId": "draft-1", "order": order.as_json()},
    )
    assert built.status_code == 200, built.text
    body = built.json()["request"]
    body["fhirServer"] = FHIR
    r = client.post(f"/cds-services/{built.json()['service']}", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _rules(response: dict[str, Any]) -> list[str]:
    return sorted(c["source"]["topic"]["code"] for c in response["cards"])


@pytest.mark.parametrize("pid", PATIENT_IDS)
def test_fetch_mode_gives_the_same_cards_as_prefetch_mode(client: TestClient, recorder: Recorder, pid: str) -> None:
    prefetched = _rules(_hook(client, pid, "prefetch"))
    refetched = {category for category, how in recorder.calls[-1].provenance if how != "prefetch"}
    assert refetched <= (
        {"allergies"} if STORE.patients[pid].fail_searches else set()
    )  # an OperationOutcome is refetched
    fetched = _rules(_hook(client, pid, "fetch"))
    record = recorder.calls[-1]
    assert {how for _, how in record.provenance} == {"fetched"}, record.provenance
    assert fetched == prefetched == sorted(STORE.patients[pid].expect or ())


@pytest.mark.parametrize("pid", ["sbx-opioid-active", "sbx-buprenorphine-maintenance", "sbx-alcohol-alt-4x"])
def test_the_service_follows_next_links_from_the_sandbox_server(paging_client: TestClient, pid: str) -> None:
    assert _rules(_hook(paging_client, pid, "fetch")) == sorted(STORE.patients[pid].expect or ())


def test_a_failing_search_in_fetch_mode_gives_the_data_unavailable_card(client: TestClient, recorder: Recorder) -> None:
    response = _hook(client, "sbx-data-unavailable", "fetch")
    card = next(c for c in response["cards"] if c["source"]["topic"]["code"] == "data-unavailable")
    assert "allerg" in card["summary"].lower() + card["detail"].lower()
    assert recorder.calls[-1].unavailable == ("allergies",) and recorder.calls[-1].fetch_errors == 1


# -- the page API ------------------------------------------------------------------------------------------------
def test_the_page_and_its_assets_are_served(client: TestClient) -> None:
    page = client.get("/sandbox")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Naltrexone CDS sandbox" in page.text and 'aria-live="polite"' in page.text
    for asset, kind in (("sandbox.js", "javascript"), ("sandbox.css", "text/css")):
        r = client.get(f"/sandbox/static/{asset}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
    root = client.get("/", follow_redirects=False)
    assert root.status_code in (302, 307) and root.headers["location"] == "/sandbox"


def test_patient_list_and_chart(client: TestClient) -> None:
    patients = client.get("/sandbox/api/patients").json()["patients"]
    assert len(patients) == len(STORE.patients)
    first = patients[0]
    assert {"id", "name", "age", "gender", "description", "expect", "order"} <= set(first)
    chart = client.get("/sandbox/api/patients/sbx-opioid-active").json()
    assert chart["medications"][0]["name"] == "oxycodone hydrochloride 5 MG Oral Tablet"
    assert chart["medications"][0]["status"] == "active"
    assert any(lab["relevant"] and lab["value"] == "24 U/L" for lab in chart["labs"])
    assert chart["problems"] and chart["allergies"] == []
    assert client.get("/sandbox/api/patients/nobody").status_code == 404


def test_hook_requests_for_both_modes(client: TestClient) -> None:
    order = {"product": "injection", "dose": 380, "frequency": "every-4-weeks", "supplyDays": 28, "refills": 11}
    base = {"patientId": "sbx-clean-record", "hook": "order-select", "draftId": "d-1", "order": order}
    pre = client.post("/sandbox/api/hook-request", json={**base, "mode": "prefetch"}).json()
    assert pre["service"] == "naltrexone-order-select"
    assert set(pre["request"]["prefetch"]) == {pk.key for pk in PREFETCH}
    assert pre["request"]["context"]["selections"] == ["MedicationRequest/d-1"]
    draft = pre["request"]["context"]["draftOrders"]["entry"][0]["resource"]
    validate(draft)
    assert draft["medicationCodeableConcept"]["coding"][0]["code"] == "637213"
    assert pre["orderText"].startswith("Naltrexone 380 mg extended-release injection")
    fetch = client.post("/sandbox/api/hook-request", json={**base, "mode": "fetch"}).json()
    assert "prefetch" not in fetch["request"] and fetch["request"]["fhirServer"] == "http://testserver/fhir"
    bad = client.post("/sandbox/api/hook-request", json={**base, "order": {**order, "frequency": "hourly"}})
    assert bad.status_code == 400


def test_activity_shows_calls_and_feedback(client: TestClient) -> None:
    response = _hook(client, "sbx-opioid-active", "prefetch")
    card = response["cards"][0]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": card["overrideReasons"][0], "userComment": "stopped last month"},
                "outcomeTimestamp": NOW.isoformat(),
            }
        ]
    }
    assert client.post("/cds-services/naltrexone-order-sign/feedback", json=feedback).json() == {"received": 1}
    activity = client.get("/sandbox/api/activity").json()
    assert activity["feedback"][0]["card"] == card["uuid"]
    assert activity["feedback"][0]["overrideReason"] == card["overrideReasons"][0]["display"]
    assert activity["calls"][0]["cards"][0]["uuid"] == card["uuid"]
