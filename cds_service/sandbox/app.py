"""The sandbox application: the real service (``create_app`` in development mode) with the sandbox mounted on it.

Same origin for everything, so the page needs no CORS: ``/cds-services/...`` (the service, auth off), ``/fhir/...``
(the sandbox FHIR server the service fetches from in "let the service fetch" mode), ``/sandbox`` (the page and
its API). An observer keeps the last calls and feedback so the page can show what the service recorded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.hooks.models import FeedbackItem
from cds_service.observe import CallObserver, CallRecord
from cds_service.sandbox.fhir_server import MAX_COUNT, fhir_router
from cds_service.sandbox.page import STATIC_DIR, page_router
from cds_service.sandbox.patients import PatientStore, Roll, build_store, load_fixtures, load_paths


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    service_id: str
    item: FeedbackItem
    received_at: datetime


class SandboxActivity:
    """Keeps the most recent hook calls and feedback items (PHI-free records) for the page's activity panel."""

    def __init__(self, keep: int = 50) -> None:
        self.calls: deque[CallRecord] = deque(maxlen=keep)
        self.feedback: deque[FeedbackEntry] = deque(maxlen=keep)

    async def on_call(self, record: CallRecord) -> None:
        self.calls.appendleft(record)

    async def on_feedback(self, service_id: str, items: list[FeedbackItem]) -> None:
        now = datetime.now(UTC)
        for item in items:
            self.feedback.appendleft(FeedbackEntry(service_id, item, now))


def load_store(
    today: date, paths: Sequence[Path] = (), *, fixtures: bool = True, roll: Roll = "anchor"
) -> tuple[PatientStore, list[str]]:
    """The fixture patients (unless ``fixtures`` is false) plus every Bundle under ``paths``; returns warnings too."""
    files = load_fixtures(today) if fixtures else []
    extra, warnings = load_paths(paths, today, roll=roll)
    store, more = build_store([*files, *extra])
    return store, warnings + more


def create_sandbox_app(
    store: PatientStore,
    *,
    settings: Settings | None = None,
    clock: Callable[[], datetime] | None = None,
    http: httpx.AsyncClient | None = None,
    observers: Iterable[CallObserver] = (),
    fhir_max_count: int = MAX_COUNT,
) -> FastAPI:
    """The service plus the sandbox. ``http`` is the client the service fetches with (tests route it back into this
    app in-process); ``fhir_max_count`` caps the sandbox FHIR server's page size (tests force paging with it).
    """
    activity = SandboxActivity()
    kwargs = {"clock": clock} if clock is not None else {}
    app = create_app(settings or Settings.development(), http=http, observers=[activity, *observers], **kwargs)
    today = (lambda: clock().date()) if clock is not None else (lambda: datetime.now(UTC).date())
    app.state.sandbox_store = store
    app.state.sandbox_activity = activity
    app.include_router(fhir_router(store, fhir_max_count))
    app.include_router(page_router(store, activity, today))
    app.mount("/sandbox/static", StaticFiles(directory=STATIC_DIR), name="sandbox-static")
    return app
