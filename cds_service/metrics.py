"""Prometheus metrics: ``GET /metrics`` in the text exposition format (0.0.4, or OpenMetrics on request), one
registry per app.

Label values are bounded by construction: service ids of known services, rule ids, indicators, data categories,
route templates (never raw paths: an unknown path is ``unmatched``) and HTTP status codes. No patient data and no
hookInstance ever becomes a label.

Metrics (counters are exposed with the ``_total`` suffix)::

    cds_hook_requests_total{service,status}            hook calls, by HTTP status (200, 400, 412, 500, ...)
    cds_hook_latency_seconds{service}                  histogram of hook evaluation latency
    cds_cards_total{service,rule,indicator}            cards returned
    cds_data_unavailable_total{service,category}       hook calls in which a data category could not be read
    cds_fallback_fetch_errors_total{service}           failed fallback FHIR fetches
    cds_feedback_items_total{service,outcome}          feedback items received (accepted | overridden)
    cds_http_errors_total{route,method,status}         every 4xx/5xx of every endpoint, 401s included
    cds_audit_queue_depth, cds_audit_records_dropped_total   audit writer health (when the store is installed)

plus the standard ``process_*``, ``python_gc_*`` and ``python_info`` metrics.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cds_service.hooks.models import FeedbackItem
from cds_service.observe import CallRecord

# Hook answers are expected in milliseconds; the spec's target is ~500 ms, payer-side CDS allows 5 s.
LATENCY_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

__all__ = ["LATENCY_BUCKETS_S", "MetricsObserver", "install_metrics"]


class MetricsObserver:
    """Counts hook calls, cards and feedback (a :class:`cds_service.observe.CallObserver`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "cds_hook_requests", "Hook calls by service and HTTP status", ["service", "status"], registry=registry
        )
        self.latency = Histogram(
            "cds_hook_latency_seconds",
            "Hook call evaluation latency",
            ["service"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.cards = Counter(
            "cds_cards", "Cards returned, by rule and indicator", ["service", "rule", "indicator"], registry=registry
        )
        self.unavailable = Counter(
            "cds_data_unavailable",
            "Hook calls in which a data category could not be read",
            ["service", "category"],
            registry=registry,
        )
        self.fetch_errors = Counter(
            "cds_fallback_fetch_errors", "Failed fallback FHIR fetches", ["service"], registry=registry
        )
        self.feedback = Counter(
            "cds_feedback_items", "Feedback items received", ["service", "outcome"], registry=registry
        )
        self.http_errors = Counter(
            "cds_http_errors",
            "4xx and 5xx answers of every endpoint, by route template",
            ["route", "method", "status"],
            registry=registry,
        )

    async def on_call(self, record: CallRecord) -> None:
        service = record.service_id
        self.requests.labels(service, str(record.status_code)).inc()
        self.latency.labels(service).observe(record.latency_ms / 1000)
        for card in record.cards:
            self.cards.labels(service, card.rule_id, card.indicator).inc()
        for category in record.unavailable:
            self.unavailable.labels(service, category).inc()
        if record.fetch_errors:
            self.fetch_errors.labels(service).inc(record.fetch_errors)

    async def on_feedback(self, service_id: str, items: list[FeedbackItem]) -> None:
        for item in items:
            self.feedback.labels(service_id, item.outcome).inc()

    def count_http_error(self, scope: Scope, status: int) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.http_errors.labels(template, scope.get("method", "?"), str(status)).inc()


class _HttpErrorCounter:
    """Pure ASGI middleware counting every 4xx/5xx, including those raised before a route runs (401, 404)."""

    def __init__(self, app: ASGIApp, observer: MetricsObserver) -> None:
        self.app = app
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        except Exception:  # answered 500 by the outermost error middleware
            self.observer.count_http_error(scope, 500)
            raise
        if status >= 400:
            self.observer.count_http_error(scope, status)


class _StoreHealth(Collector):
    """Audit writer health, read from ``app.state.store`` at scrape time (absent when no store is installed)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterable[Metric]:
        store: Any = getattr(self.app.state, "store", None)
        if store is None:
            return
        yield GaugeMetricFamily("cds_audit_queue_depth", "Audit records waiting to be written", value=store.pending)
        yield CounterMetricFamily(
            "cds_audit_records_dropped", "Audit records lost (queue full or database down)", value=store.dropped
        )


def install_metrics(app: FastAPI) -> MetricsObserver:
    """Add ``GET /metrics`` and the error-counting middleware; return the observer for ``app.state.observers``.

    Call while building the app (before it starts). ``/metrics`` carries no patient data and no token, and is not
    behind CDS client authentication: expose it to the scraper's network only.
    """
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(_StoreHealth(app))
    observer = MetricsObserver(registry)
    app.state.metrics = observer
    app.add_middleware(_HttpErrorCounter, observer=observer)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        # Prometheus text format 0.0.4 by default; OpenMetrics when the scraper asks for it.
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(registry), headers={"Content-Type": content_type})

    return observer
