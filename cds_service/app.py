"""The FastAPI application: thin routes over the FHIR door, the rules and the card renderer.

Every error leaves through one mapping to a FHIR OperationOutcome (``_install_error_handlers``); a 401 carries no
reason. The evaluation clock is injected (``clock``) so golden tests can pin "now".
"""

from __future__ import annotations

import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cds_service.auth import Unauthorized
from cds_service.auth.dependency import TrustedClientDep, install_auth
from cds_service.auth.verifier import JwtVerifier
from cds_service.config import Settings
from cds_service.domain import Category
from cds_service.errors import BadRequest, NotFound, PayloadTooLarge, ServiceError, operation_outcome
from cds_service.fhir.orders import read_draft_orders
from cds_service.fhir.resolve import FetchSettings, FhirFetcher, resolve
from cds_service.fhir.snapshot import build_snapshot
from cds_service.fhir.values import json_shape_problem
from cds_service.hooks.models import Card, CardsResponse, FeedbackRequest, HookRequest
from cds_service.hooks.services import SERVICES
from cds_service.metrics import install_metrics
from cds_service.observe import CallObserver, CallRecord, CardRecord, notify_call
from cds_service.render import CardContentError, CardLibrary
from cds_service.rules import RULES, evaluate
from cds_service.store.integration import install_store

log = logging.getLogger("cds_service")

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class FhirJSONResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _outcome(status: int, message: str, code: str, expression: list[str] | None = None) -> Response:
    return FhirJSONResponse(
        operation_outcome(message, code=code, expression=expression),
        status_code=status,
        media_type="application/fhir+json",
    )


def _validation_message(exc: ValidationError | RequestValidationError) -> tuple[str, list[str]]:
    parts, where = [], []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        where.append(loc or "(body)")
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    return "invalid CDS Hooks request: " + "; ".join(parts), where


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> Response:
        return _outcome(exc.status_code, exc.message, exc.issue_code, exc.expression)

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, __: Unauthorized) -> Response:
        response = _outcome(401, "Unauthorized", "security")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        message, where = _validation_message(exc)
        return _outcome(400, message, "invalid", where)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        response = _outcome(exc.status_code, str(exc.detail), code)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        incident = uuid.uuid4().hex[:12]
        log.error("unexpected error, incident %s: %s", incident, type(exc).__name__, exc_info=exc)
        return _outcome(500, f"internal error (incident {incident}); no cards could be produced", "exception")


async def _read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is over the {limit} byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body is over the {limit} byte limit")
    if not body:
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        parsed = orjson.loads(bytes(body))
    except orjson.JSONDecodeError as exc:  # orjson itself refuses nesting over 1024 levels here
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    # Structural limits before anything recursive (pydantic, fhir.resources) sees the document: a resource nested
    # a few hundred levels deep exhausts Python's recursion limit in validation (a 500), and an array is bounded
    # by [limits] max_bundle_entries (a Bundle's entries in draftOrders or a prefetch key -> 413).
    limits = request.app.state.settings.limits
    problem = json_shape_problem(parsed, max_depth=limits.max_json_depth, max_items=limits.max_bundle_entries)
    if problem is None:
        return parsed
    if problem.startswith("nested"):
        raise BadRequest(f"request body is {problem}")
    raise PayloadTooLarge(f"request body refused: {problem} ([limits] max_bundle_entries)")


class _CallOutcome:
    """What one hook call produced, filled in as it goes so that even a failed call leaves an audit record."""

    def __init__(self) -> None:
        self.hook_instance = "(unreadable)"
        self.status = 200
        self.error: str | None = None
        self.cards: tuple[CardRecord, ...] = ()
        self.unavailable: tuple[str, ...] = ()
        self.provenance: tuple[tuple[str, str], ...] = ()
        self.fetch_errors = 0


def create_app(
    settings: Settings,
    *,
    clock: Clock = _now,
    http: httpx.AsyncClient | None = None,
    observers: Sequence[CallObserver] = (),
) -> FastAPI:
    """Build the service.

    ``http`` lets tests hand in a client (e.g. with a MockTransport) for the fallback fetch; the app takes it over
    and closes it at shutdown. ``observers`` receive a
    PHI-free record of every hook call and every feedback item (audit trail, metrics).
    """
    cards = CardLibrary.load()
    missing = sorted(set(RULES) - set(cards.templates))
    if missing:
        raise CardContentError(f"rules without a card file in cards/: {', '.join(missing)}")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = http or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.fhir.timeout_s, connect=min(2.0, settings.fhir.timeout_s)),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        app.state.fetcher = FhirFetcher(
            client,
            FetchSettings(
                settings.fhir.timeout_s,
                settings.fhir.max_pages,
                settings.fetch_allowlist,
                max_entries=settings.limits.max_bundle_entries,
                max_json_depth=settings.limits.max_json_depth,
            ),
        )
        app.state.verifier = JwtVerifier(settings.auth, settings.base_url, client) if settings.auth.required else None
        try:
            yield
        finally:
            await client.aclose()  # the app owns its client, a handed-in one too: no pooled socket outlives it

    app = FastAPI(
        title="Naltrexone CDS Hooks service",
        version="0.1.0",
        description="CDS Hooks 2.0 service that checks naltrexone orders for contraindications.",
        lifespan=lifespan,
        default_response_class=FhirJSONResponse,
    )
    app.state.settings = settings
    app.state.cards = cards
    app.state.observers = list(observers)
    # auth_required makes a request that arrives before the lifespan built the verifier fail closed, never open.
    install_auth(app, None, list(settings.auth.cors_origins), auth_required=settings.auth.required)
    _install_error_handlers(app)
    # Feedback loop: GET /metrics, GET /readyz, audit trail and feedback store (StoreUnavailable -> 503).
    app.state.observers.append(install_metrics(app))
    app.state.observers.append(install_store(app, settings))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/cds-services")
    async def discovery(_: TrustedClientDep) -> dict[str, Any]:
        return {"services": [s.discovery() for s in SERVICES.values()]}

    @app.post("/cds-services/{service_id}")
    async def call_service(service_id: str, request: Request, client: TrustedClientDep) -> Response:
        service = SERVICES.get(service_id)
        if service is None:
            raise NotFound(f"no CDS service with id {service_id!r}; see GET /cds-services")
        started_at, started = clock(), time.perf_counter()
        outcome = _CallOutcome()
        try:
            rendered = await _answer(service_id, service.hook, request, client, started_at, outcome)
        except ServiceError as exc:
            outcome.status, outcome.error = exc.status_code, exc.issue_code
            raise
        except Exception:
            outcome.status, outcome.error = 500, "exception"
            raise
        finally:
            record = CallRecord(
                hook_instance=outcome.hook_instance,
                service_id=service_id,
                started_at=started_at,
                latency_ms=(time.perf_counter() - started) * 1000,
                status_code=outcome.status,
                cards=outcome.cards,
                unavailable=outcome.unavailable,
                provenance=outcome.provenance,
                fetch_errors=outcome.fetch_errors,
                error=outcome.error,
            )
            await notify_call(request.app.state.observers, record)
        return FhirJSONResponse(CardsResponse(cards=rendered).dump())

    async def _answer(
        service_id: str, hook: str, request: Request, client: Any, now: datetime, outcome: _CallOutcome
    ) -> list[Card]:
        raw = await _read_json(request, settings.limits.max_body_bytes)
        if not isinstance(raw, dict):
            raise BadRequest("request body must be a JSON object")
        if isinstance(raw.get("hookInstance"), str):
            outcome.hook_instance = raw["hookInstance"][:128]
        try:
            hook_request = HookRequest.model_validate(raw)
        except ValidationError as exc:
            message, where = _validation_message(exc)
            raise BadRequest(message, expression=where) from None
        if hook_request.hook != hook:
            raise BadRequest(
                f"hook {hook_request.hook!r} does not match service {service_id!r}, which handles {hook!r}",
                expression=["hook"],
            )
        drafts = read_draft_orders(hook, hook_request.context)
        rendered: list[Card] = []
        if not drafts.to_check:
            return rendered
        allowed = settings.fetch_allowlist + (tuple(client.fhir_servers) if client else ())
        data = await resolve(hook_request, request.app.state.fetcher, allowed)
        snapshot = build_snapshot(data, drafts.other_medications)
        context_patient = hook_request.context.get("patientId")
        patient_id = snapshot.patient.id or (context_patient if isinstance(context_patient, str) else None)
        fired: set[str] = set()
        for order in drafts.to_check:
            for finding in evaluate(snapshot, order, settings.policy, now):
                if finding.rule_id in fired:
                    continue  # one card per rule even when two naltrexone drafts are signed together
                fired.add(finding.rule_id)
                card = cards.render(finding, order, patient_id)
                rendered.append(card)
                outcome.cards += (CardRecord(finding.rule_id, card.indicator, card.uuid),)
        rendered.sort(key=lambda c: {"critical": 0, "warning": 1, "info": 2}[c.indicator])
        outcome.unavailable = tuple(sorted({u.category.value for u in snapshot.unavailable}))
        outcome.provenance = tuple((c.value, how) for c, how in snapshot.provenance)
        outcome.fetch_errors = data.fetch_errors
        return rendered

    @app.post("/cds-services/{service_id}/feedback")
    async def feedback(service_id: str, request: Request, _: TrustedClientDep) -> Response:
        if service_id not in SERVICES:
            raise NotFound(f"no CDS service with id {service_id!r}; see GET /cds-services")
        raw = await _read_json(request, settings.limits.max_body_bytes)
        try:
            parsed = FeedbackRequest.model_validate(raw)
        except ValidationError as exc:
            message, where = _validation_message(exc)
            raise BadRequest(message.replace("CDS Hooks request", "feedback"), expression=where) from None
        for observer in request.app.state.observers:
            await observer.on_feedback(service_id, parsed.feedback)
        return FhirJSONResponse({"received": len(parsed.feedback)})

    return app


def tune_gc_for_serving() -> None:
    """Keep full garbage collections off the request path of a long-running server.

    Measured (bench/RESULTS.md): a full collection of the worker's heap took ~80 ms every few seconds under load,
    which set the p99; freezing the start-up heap and raising the first threshold took p99 at half load from
    91 ms to 6 ms and throughput up by ~35%. Serving entry points only: tests must not freeze their objects.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def app_from_env() -> FastAPI:
    """App factory for multi-worker uvicorn: settings from ``$CDS_CONFIG`` (development mode without it)."""
    from cds_service.config import load_settings

    app = create_app(load_settings())
    tune_gc_for_serving()
    return app


__all__ = ["Category", "app_from_env", "create_app", "tune_gc_for_serving"]
