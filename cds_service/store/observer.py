"""``StoreObserver``: the audit trail and the feedback store, as a :class:`cds_service.observe.CallObserver`.

Two paths with different promises:

* Hook calls (``on_call``) must not slow the clinical answer. The record is appended to an in-memory queue
  (microseconds) and a background task writes queued records in batches, in a worker thread. A graceful shutdown
  drains the queue; a SIGKILL loses at most the records of the last few milliseconds. If the database is down the
  queue holds up to ``max_pending`` records (retried with back-off), beyond that records are dropped and counted
  (``dropped``): the audit trail never blocks or fails a hook call.
* Feedback (``on_feedback``) is written synchronously, in one committed transaction, before the route answers
  200: a 200 means the items are on disk. On failure it raises :class:`StoreUnavailable` (answered 503), so the
  client keeps the feedback and retries; the write is idempotent, so retries never duplicate.

Without a running lifespan (``start()`` not called) ``on_call`` writes inline in a worker thread instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from alembic.util import CommandError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from cds_service.hooks.models import FeedbackItem
from cds_service.observe import CallRecord
from cds_service.store.db import StoreUnavailable, ping, safe_url, upgrade
from cds_service.store.writes import (
    FeedbackResult,
    FeedbackRow,
    feedback_rows,
    prune_audit,
    write_calls,
    write_feedback,
)

log = logging.getLogger("cds_service.store")

STORAGE_ERRORS: Final = (SQLAlchemyError, OSError, CommandError)
RETRY_DELAYS_S: Final = (0.2, 1.0, 3.0)
DAY_S: Final = 24 * 3600.0


def _now() -> datetime:
    return datetime.now(UTC)


class StoreObserver:
    """Writes the PHI-free audit trail and clinician feedback to the feedback database."""

    def __init__(
        self,
        engine: Engine,
        *,
        retention_days: int,
        clock: Callable[[], datetime] = _now,
        max_pending: int = 10_000,
        batch_size: int = 200,
        prune_every_s: float = DAY_S,
        feedback_flush_timeout_s: float = 0.5,
    ) -> None:
        self.engine = engine
        self.retention_days = retention_days
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.prune_every_s = prune_every_s
        self.feedback_flush_timeout_s = feedback_flush_timeout_s
        self.dropped = 0  # audit records lost because the queue was full or the database stayed down
        self._clock = clock
        self._queue: deque[CallRecord] = deque()
        self._enqueued = 0
        self._finished = 0  # records written or dropped by the writer
        self._wake: asyncio.Event | None = None
        self._progress: asyncio.Condition | None = None
        self._stopping: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._halt = threading.Event()  # tells a prune running in a worker thread to stop between chunks
        self._schema_lock = threading.Lock()
        self._schema_ready = False

    # -- lifecycle ----------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Migrate the database (a failure is logged: the service still answers hooks) and start the writers."""
        try:
            await asyncio.to_thread(self._ensure_schema)
        except STORAGE_ERRORS as exc:
            log.error(
                "feedback database %s is not usable at start-up (%s); audit and feedback will fail until it is",
                safe_url(self.engine.url),
                type(exc).__name__,
            )
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._stopping = asyncio.Event()
        self._halt.clear()
        self._writer = asyncio.create_task(
            self._write_loop(self._wake, self._progress, self._stopping), name="audit-writer"
        )
        self._pruner = asyncio.create_task(self._prune_loop(self._stopping), name="audit-pruner")

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Write what is queued and let a running prune finish its chunk (up to ``drain_timeout_s``), then close.

        The tasks are asked to finish rather than cancelled: a cancelled task would leave its worker thread
        holding a connection while the engine is disposed.
        """
        self._halt.set()
        tasks = [t for t in (self._writer, self._pruner) if t is not None]
        if self._stopping is not None and self._wake is not None:
            self._stopping.set()  # a batch waiting to retry gets one last attempt now
            self._wake.set()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=drain_timeout_s)
            if late:
                log.error("audit writer did not finish in %.1f s: %d records lost", drain_timeout_s, len(self._queue))
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        self._writer = self._pruner = None
        await asyncio.to_thread(self.engine.dispose)

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- CallObserver -------------------------------------------------------------------------------------------
    async def on_call(self, record: CallRecord) -> None:
        if self._writer is None or self._writer.done() or self._wake is None:
            await asyncio.to_thread(self._write_calls, [record])
            return
        if len(self._queue) >= self.max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("audit queue full (%d): %d audit records dropped so far", self.max_pending, self.dropped)
            return
        self._queue.append(record)
        self._enqueued += 1
        self._wake.set()

    async def on_feedback(self, service_id: str, items: list[FeedbackItem]) -> None:
        """Store ``items``; returns only once they are committed.

        Raises:
            BadRequest: an item the wire model let through is unusable (e.g. outcomeTimestamp not a date-time).
            StoreUnavailable: the database could not be written; nothing is acknowledged.
        """
        rows = feedback_rows(items)
        # Cards shown moments ago may still be in the audit queue: write them first so they are not "unknown".
        await self.flush(self.feedback_flush_timeout_s)
        try:
            result = await asyncio.to_thread(self._write_feedback, service_id, rows, self._clock())
        except STORAGE_ERRORS as exc:
            log.error("feedback for service %s NOT stored: %s", service_id, type(exc).__name__)
            raise StoreUnavailable("feedback could not be stored; please retry later") from None
        log.info(
            "feedback for service %s: %d stored, %d already stored, %d for unknown cards",
            service_id,
            result.stored,
            result.duplicates,
            result.unknown_cards,
        )

    # -- helpers ------------------------------------------------------------------------------------------------
    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every record queued so far is written (or dropped); False on timeout."""
        if self._writer is None or self._progress is None:
            return True
        target = self._enqueued
        try:
            async with asyncio.timeout(timeout_s), self._progress:
                await self._progress.wait_for(lambda: self._finished >= target)
        except TimeoutError:
            return False
        return True

    async def check(self, timeout_s: float = 3.0) -> None:
        """Raise StoreUnavailable unless the database is migrated and answers a trivial query."""
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.to_thread(self._check)
        except (*STORAGE_ERRORS, TimeoutError) as exc:
            raise StoreUnavailable(f"feedback store unavailable ({type(exc).__name__})") from None

    def _ensure_schema(self) -> None:
        with self._schema_lock:
            if not self._schema_ready:
                upgrade(self.engine)
                self._schema_ready = True

    def _check(self) -> None:
        self._ensure_schema()
        ping(self.engine)

    def _write_calls(self, records: list[CallRecord]) -> None:
        self._ensure_schema()
        write_calls(self.engine, records)

    def _write_feedback(self, service_id: str, rows: list[FeedbackRow], received_at: datetime) -> FeedbackResult:
        self._ensure_schema()
        return write_feedback(self.engine, service_id, rows, received_at)

    async def _write_loop(self, wake: asyncio.Event, progress: asyncio.Condition, stopping: asyncio.Event) -> None:
        while True:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
                await self._write_batch(batch)
                async with progress:
                    self._finished += len(batch)
                    progress.notify_all()
            if stopping.is_set():
                return
            await wake.wait()
            wake.clear()

    async def _write_batch(self, batch: list[CallRecord]) -> None:
        for attempt, delay in enumerate((*RETRY_DELAYS_S, None)):
            try:
                await asyncio.to_thread(self._write_calls, batch)
                return
            except STORAGE_ERRORS as exc:
                if delay is None or (self._stopping is not None and self._stopping.is_set()):
                    self.dropped += len(batch)
                    log.error(
                        "audit rows for %d hook calls NOT stored after %d attempts: %s",
                        len(batch),
                        attempt + 1,
                        type(exc).__name__,
                    )
                    return
                if self._stopping is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
            except Exception as exc:  # a bug must not kill the writer and silently stop the audit trail
                self.dropped += len(batch)
                log.error("audit rows for %d hook calls NOT stored: %s", len(batch), type(exc).__name__, exc_info=exc)
                return

    async def _prune_loop(self, stopping: asyncio.Event) -> None:
        """Prune at start-up, then every ``prune_every_s`` (a day), until stopped."""
        while not stopping.is_set():
            cutoff = self._clock() - timedelta(days=self.retention_days)
            try:
                removed = await asyncio.to_thread(self._prune, cutoff)
                if removed:
                    log.info("audit retention: removed %d hook calls older than %s", removed, cutoff.date())
            except STORAGE_ERRORS as exc:
                log.error("audit retention pruning failed: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.prune_every_s)

    def _prune(self, cutoff: datetime) -> int:
        self._ensure_schema()
        return prune_audit(self.engine, cutoff, stop=self._halt.is_set)
