"""Wiring the feedback store into the FastAPI app: lifespan, ``GET /readyz``, the observer.

``create_app`` calls :func:`install_store` once and appends the returned observer to ``app.state.observers``.
The database is migrated when the app starts; a database that is down at start-up does not stop the service
(hooks are answered, ``/readyz`` says 503 and the store retries), but a ``database_url`` that can never work
(unsupported scheme or driver) fails at once with :class:`StoreConfigError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from cds_service.config import Settings
from cds_service.errors import operation_outcome
from cds_service.store.db import StoreUnavailable, create_store_engine, safe_url
from cds_service.store.observer import StoreObserver, log


def install_store(app: FastAPI, settings: Settings) -> StoreObserver:
    """Open the store in ``app``'s lifespan, add ``GET /readyz``; return the observer for ``app.state.observers``.

    Raises:
        StoreConfigError: ``[feedback] database_url`` names an unsupported database or driver.
    """
    engine = create_store_engine(settings.feedback.database_url)
    observer = StoreObserver(engine, retention_days=settings.feedback.audit_retention_days)
    app.state.store = observer
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(running: Any) -> AsyncIterator[Any]:
        log.info("feedback database: %s", safe_url(engine.url))
        await observer.start()
        try:
            async with inner(running) as state:
                yield state
        finally:
            await observer.stop()

    app.router.lifespan_context = lifespan

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        """Ready when the feedback store answers a trivial query (load balancers stop routing otherwise)."""
        try:
            await observer.check()
        except StoreUnavailable as exc:
            return JSONResponse(
                operation_outcome(exc.message, code=exc.issue_code),
                status_code=exc.status_code,
                media_type="application/fhir+json",
            )
        return JSONResponse({"status": "ready"})

    return observer
