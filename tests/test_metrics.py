"""GET /metrics (Prometheus text format, a registry per app) and GET /readyz (the feedback store answers)."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cds_service.app import create_app
from cds_service.config import Settings
from tests.builders import NOW, empty_prefetch, hook_request

SIGN_ID = "naltrexone-order-sign"
SIGN = f"/cds-services/{SIGN_ID}"
HOOK_ROUTE = "/cds-services/{service_id}"
QUIET_POLICY: dict[str, Any] = {
    "indicators": {"liver-panel-missing": "off", "overdose-risk": "off", "duration-short": "off"}
}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _settings(database_url: str) -> Settings:
    return Settings.development(feedback={"database_url": database_url}, policy=QUIET_POLICY)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return _settings(f"sqlite:///{tmp_path}/feedback.sqlite3")


class Clock:
    """NOW, or an exception when ``broken``: the simplest way to make the hook route fail with a 500."""

    broken = False

    def __call__(self) -> Any:
        if self.broken:
            raise RuntimeError("clock failure")
        return NOW


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, clock=clock), raise_server_exceptions=False) as c:
        yield c


def scrape(client: TestClient) -> Samples:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_counters_and_histograms_after_a_few_calls(client: TestClient, clock: Clock) -> None:
    ok = client.post(SIGN, json=hook_request(prefetch=empty_prefetch()))
    assert ok.status_code == 200
    cards = ok.json()["cards"]
    assert cards
    assert client.post(SIGN, json={"hook": "order-sign"}).status_code == 400
    assert client.post(SIGN, json=hook_request()).status_code == 412
    assert client.post("/cds-services/no-such-service", json=hook_request()).status_code == 404
    assert client.get("/no-such-path").status_code == 404
    feedback = {
        "feedback": [{"card": cards[0]["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-21T15:00Z"}]
    }
    assert client.post(f"{SIGN}/feedback", json=feedback).status_code == 200
    clock.broken = True
    assert client.post(SIGN, json=hook_request(prefetch=empty_prefetch())).status_code == 500

    m = scrape(client)
    for status in ("200", "400", "412"):
        assert value(m, "cds_hook_requests_total", service=SIGN_ID, status=status) == 1
    # latency histogram: every bucket, cumulative, three observations (the 500 failed before timing began)
    buckets = {dict(labels)["le"]: v for (name, labels), v in m.items() if name == "cds_hook_latency_seconds_bucket"}
    assert set(buckets) == {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf"}
    assert buckets["+Inf"] == 3
    assert value(m, "cds_hook_latency_seconds_count", service=SIGN_ID) == 3
    assert (value(m, "cds_hook_latency_seconds_sum", service=SIGN_ID) or 0) > 0
    # cards by rule and indicator
    expected = Counter((c["source"]["topic"]["code"], c["indicator"]) for c in cards)
    for (rule, indicator), n in expected.items():
        assert value(m, "cds_cards_total", service=SIGN_ID, rule=rule, indicator=indicator) == n
    assert value(m, "cds_feedback_items_total", service=SIGN_ID, outcome="accepted") == 1
    # 4xx/5xx of every endpoint, by route template (never the raw path)
    assert value(m, "cds_http_errors_total", route=HOOK_ROUTE, method="POST", status="400") == 1
    assert value(m, "cds_http_errors_total", route=HOOK_ROUTE, method="POST", status="412") == 1
    assert value(m, "cds_http_errors_total", route=HOOK_ROUTE, method="POST", status="404") == 1
    assert value(m, "cds_http_errors_total", route=HOOK_ROUTE, method="POST", status="500") == 1
    assert value(m, "cds_http_errors_total", route="unmatched", method="GET", status="404") == 1
    assert not [labels for (name, labels) in m if "no-such" in str(labels)]
    assert value(m, "cds_audit_queue_depth") is not None
    assert value(m, "cds_audit_records_dropped_total") == 0


def test_fallback_fetch_errors_and_unavailable_data_are_counted(settings: Settings) -> None:
    def failing_fhir(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    prefetch = empty_prefetch()
    del prefetch["liverTests"]
    http = httpx.AsyncClient(transport=httpx.MockTransport(failing_fhir))
    with TestClient(create_app(settings, clock=lambda: NOW, http=http), raise_server_exceptions=False) as client:
        client.post(SIGN, json=hook_request(prefetch=prefetch, fhir_server="http://127.0.0.1:9/fhir"))
        m = scrape(client)
    assert (value(m, "cds_fallback_fetch_errors_total", service=SIGN_ID) or 0) >= 1
    assert value(m, "cds_data_unavailable_total", service=SIGN_ID, category="liver-tests") == 1


def test_each_app_has_its_own_registry(settings: Settings, client: TestClient) -> None:
    assert client.post(SIGN, json=hook_request(prefetch=empty_prefetch())).status_code == 200
    with TestClient(create_app(settings, clock=lambda: NOW), raise_server_exceptions=False) as other:
        assert value(scrape(other), "cds_hook_requests_total", service=SIGN_ID, status="200") is None
    assert value(scrape(client), "cds_hook_requests_total", service=SIGN_ID, status="200") == 1


def test_metrics_and_readyz_are_not_in_the_openapi_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/metrics" not in paths
    assert "/readyz" not in paths


# -- readiness ------------------------------------------------------------------------------------------------------
def test_readyz_is_200_when_the_store_answers(client: TestClient) -> None:
    r = client.get("/readyz")
    assert (r.status_code, r.json()) == (200, {"status": "ready"})


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens once the socket is closed


@pytest.mark.parametrize("kind", ["sqlite-missing-directory", "postgresql-nothing-listening"])
def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path, kind: str) -> None:
    url = (
        f"sqlite:///{tmp_path}/absent/feedback.sqlite3"
        if kind.startswith("sqlite")
        else f"postgresql://cds:secret-password@127.0.0.1:{_closed_port()}/cds"
    )
    with TestClient(create_app(_settings(url), clock=lambda: NOW), raise_server_exceptions=False) as client:
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/fhir+json")
        outcome = r.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == "transient"
        assert "secret-password" not in r.text
        # the clinical service keeps answering
        assert client.post(SIGN, json=hook_request(prefetch=empty_prefetch())).status_code == 200


def test_readyz_recovers_when_the_database_comes_back(tmp_path: Path) -> None:
    folder = tmp_path / "later"
    settings = _settings(f"sqlite:///{folder}/feedback.sqlite3")
    with TestClient(create_app(settings, clock=lambda: NOW), raise_server_exceptions=False) as client:
        assert client.get("/readyz").status_code == 503
        folder.mkdir()
        assert client.get("/readyz").status_code == 200
        card = client.post(SIGN, json=hook_request(prefetch=empty_prefetch())).json()["cards"][0]["uuid"]
        item = {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-21T15:00:00Z"}
        assert client.post(f"{SIGN}/feedback", json={"feedback": [item]}).status_code == 200
