"""What the service tells its observers (audit trail, metrics) about each call: PHI-free by construction.

A ``CallRecord`` holds no patient identifier, no resource content and no token: only the hookInstance, which
service, when, how long, which rules fired with which indicators and card uuids, which data categories were
unavailable and whether data came from prefetch or the fallback fetch. Observers are registered on
``app.state.observers``; a failing observer is logged and never fails the hook call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cds_service.hooks.models import FeedbackItem

log = logging.getLogger("cds_service.observe")


@dataclass(frozen=True, slots=True)
class CardRecord:
    rule_id: str
    indicator: str
    card_uuid: str


@dataclass(frozen=True, slots=True)
class CallRecord:
    hook_instance: str
    service_id: str
    started_at: datetime
    latency_ms: float
    status_code: int
    cards: tuple[CardRecord, ...] = ()
    unavailable: tuple[str, ...] = ()  # data categories that could not be read (Category values)
    provenance: tuple[tuple[str, str], ...] = ()  # (category, "prefetch" | "fetched" | "none" | "mixed")
    fetch_errors: int = 0
    error: str | None = None  # OperationOutcome issue code when the call failed


class CallObserver(Protocol):
    async def on_call(self, record: CallRecord) -> None: ...

    async def on_feedback(self, service_id: str, items: list[FeedbackItem]) -> None: ...


async def notify_call(observers: list[CallObserver], record: CallRecord) -> None:
    for observer in observers:
        try:
            await observer.on_call(record)
        except Exception as exc:  # an audit or metrics failure must not fail the clinical answer
            log.error("observer %s failed on a call record: %s", type(observer).__name__, type(exc).__name__)
