"""FastAPI wiring for CDS client authentication: CORS, the ``TrustedClientDep`` dependency, the 401.

Why a dependency and not a middleware: a dependency runs only for the routes that declare it, after
routing, so the CORS preflight (``OPTIONS``, answered by ``CORSMiddleware`` before routing) never meets
authentication, and a route without ``TrustedClientDep`` is visibly unprotected in its own signature.

Usage::

    install_auth(app, verifier, cors_origins)        # verifier=None turns authentication off (development)

    @router.post("/cds-services/{service_id}")
    async def call_service(..., client: TrustedClientDep) -> ...: ...

Each request's token is verified once: FastAPI caches a dependency within a request, so declaring
``TrustedClientDep`` on a router and on a route still verifies (and consumes the ``jti``) once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.middleware.cors import CORSMiddleware

from cds_service.auth.verifier import AuthError, JwtVerifier, TrustedClient

__all__ = [
    "CORS_ALLOW_HEADERS",
    "CORS_ALLOW_METHODS",
    "TrustedClientDep",
    "Unauthorized",
    "install_auth",
    "require_trusted_client",
    "unauthorized_response",
]

logger = logging.getLogger("cds_service.auth")

CORS_ALLOW_METHODS: Final = ["GET", "POST", "OPTIONS"]
CORS_ALLOW_HEADERS: Final = ["Content-Type", "Authorization"]

# What a refused caller sees: the same generic outcome whatever the reason (the reason is in our log only).
UNAUTHORIZED_OUTCOME: Final[dict[str, Any]] = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "login", "diagnostics": "Unauthorized"}],
}


class Unauthorized(Exception):
    """No trustworthy CDS client token: map it to a bare 401 with ``WWW-Authenticate: Bearer``.

    It deliberately carries no reason (that was logged when it was raised), so no error handler can leak one.
    """

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def unauthorized_response() -> Response:
    """The 401 answer: generic OperationOutcome, ``WWW-Authenticate: Bearer``, no reason."""
    return JSONResponse(
        status_code=401,
        content=UNAUTHORIZED_OUTCOME,
        headers={"WWW-Authenticate": "Bearer"},
        media_type="application/fhir+json",
    )


async def _unauthorized_handler(_request: Request, _exc: Exception) -> Response:
    return unauthorized_response()


def install_auth(
    app: FastAPI,
    verifier: JwtVerifier | None,
    cors_origins: Sequence[str],
    *,
    auth_required: bool | None = None,
) -> None:
    """Attach authentication and CORS to ``app``; call once while building the app, before it starts.

    * ``app.state.verifier`` is set to ``verifier``. Requests read it each time, so it may be set later (e.g.
      in a lifespan, once the HTTP client exists). ``auth_required`` says whether a verifier is mandatory; it
      defaults to ``verifier is not None``. When it is true and ``app.state.verifier`` is still None at request
      time, requests fail (500) instead of silently running without authentication. When it is false,
      authentication is off: every caller is trusted (logged as a warning).
    * ``CORSMiddleware`` answers preflights for ``cors_origins`` (exact origins; none by default) with
      ``GET, POST, OPTIONS`` and ``Content-Type, Authorization``, without any token.
    * A fallback handler maps :class:`Unauthorized` to :func:`unauthorized_response`. An application that maps
      errors itself may register its own handler for ``Unauthorized`` afterwards; the later one wins.
    """
    app.state.verifier = verifier
    app.state.auth_required = auth_required if auth_required is not None else verifier is not None
    if not app.state.auth_required:
        logger.warning("CDS client authentication is OFF: any caller is trusted (development use only)")
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(cors_origins),
        allow_methods=CORS_ALLOW_METHODS,
        allow_headers=CORS_ALLOW_HEADERS,
        allow_credentials=False,
        max_age=600,
    )
    app.add_exception_handler(Unauthorized, _unauthorized_handler)


def _route_path(request: Request) -> str:
    """The path below the application root (``root_path`` removed): what ``public_base_url`` prefixes.

    Mirrors how Starlette's router strips ``root_path``, so a service behind a path-prefix proxy expects
    ``{public_base_url}/cds-services/...`` whichever way the ASGI server reports the prefix.
    """
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :]
    return path


async def require_trusted_client(request: Request) -> TrustedClient | None:
    """Verify the request's bearer token; None when authentication is off.

    Raises:
        Unauthorized: the token is missing or not trusted (reason logged at WARNING, without the token).
        RuntimeError: ``install_auth`` was never called, or authentication is required and no verifier has
            been set - failing closed rather than running unprotected.
    """
    state = request.app.state
    try:
        verifier, required = state.verifier, state.auth_required
    except AttributeError:
        raise RuntimeError("install_auth() was not called on this app; refusing to run unprotected") from None
    if verifier is None:
        if required:
            raise RuntimeError("authentication is required but app.state.verifier is not set (did the lifespan run?)")
        return None
    if not isinstance(verifier, JwtVerifier):
        raise RuntimeError("app.state.verifier must be a JwtVerifier or None")
    path = _route_path(request)
    headers = request.headers.getlist("authorization")
    try:
        if len(headers) > 1:
            raise AuthError("several Authorization headers")
        client = await verifier.verify(headers[0] if headers else None, path)
    except AuthError as exc:
        logger.warning(
            "refused %s %s: %s (iss=%r kid=%r jti_sha256=%s)",
            request.method,
            path,
            exc.reason,
            exc.iss,
            exc.kid,
            exc.jti_hash,
        )
        raise Unauthorized() from None
    return client


TrustedClientDep = Annotated[TrustedClient | None, Depends(require_trusted_client)]
"""Declare ``client: TrustedClientDep`` on every discovery, service and feedback route."""
