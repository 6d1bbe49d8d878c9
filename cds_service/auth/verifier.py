"""Decides whether a request comes from a CDS client we trust (CDS Hooks 2.0, "Trusting CDS Clients").

Every call from an EHR carries ``Authorization: Bearer <JWT>`` signed with the EHR's private key. We accept it
only if all of this holds, checked in this order so that nothing is fetched for a token that is already wrong:

1. header: ``alg`` in the allowlist (never ``none`` or HMAC), ``kid`` present, ``typ`` JWT, no ``crit``;
2. ``iss`` is a configured issuer; a ``jku`` header, if the issuer is configured by ``jku``, equals that URL
   exactly (any other URL is refused and never fetched: fetching it would be SSRF and would let the caller
   choose the key). Issuers configured by ``jwks_file`` ignore ``jku``: their keys only come from the file;
3. the signature verifies with the issuer's key ``kid``, from a cached JWKS (refetched after ``jwks_ttl_s``,
   and once more when an unknown ``kid`` appears, which is how key rotation shows up);
4. ``aud`` (a string or an array) contains the exact URL that was called, built from ``public_base_url``
   rather than the ``Host`` header, or one of the issuer's ``extra_audiences``;
5. ``exp`` (required, no cap on lifetime), ``iat`` (required, not in the future), ``nbf`` (if present),
   all with ``leeway_s`` of clock skew; ``jti`` required and not seen before; ``tenant`` allowlisted if
   configured. Claims we do not know (``sub``, ...) are ignored.

Failures raise :class:`AuthError`, whose reason is for the log only; callers answer a bare 401.

Concurrency: the service runs on one asyncio event loop. The replay check-and-remember runs without an
``await`` in between, so two requests with the same ``jti`` cannot both pass. JWKS refreshes are serialised
per issuer by an ``asyncio.Lock``, and rate-limited by ``jwks_min_refetch_interval_s`` so a flood of tokens
with made-up ``kid`` values cannot make us hammer an EHR's JWKS endpoint.

Multi-worker deployments: the JWKS cache and the replay cache live in this process's memory and are NOT
shared between worker processes or replicas. A token replayed to a different worker within its lifetime is
not detected there. Run one worker per replay domain, or route each EHR to one worker, or replace
``_ReplayCache`` with a shared store (e.g. Redis ``SET key NX EX``) if that matters for your deployment.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Final

import httpx

from cds_service.auth import jose_backend
from cds_service.auth.settings import AuthSettings, IssuerSettings, normalize_public_base_url

__all__ = ["AuthConfigError", "AuthError", "JwtVerifier", "TrustedClient"]

logger = logging.getLogger("cds_service.auth")

MAX_JWKS_BYTES: Final = 256 * 1024
MAX_JTI_LENGTH: Final = 256
_LOGGED_TEXT_LIMIT: Final = 120


def _loggable(value: object) -> str | None:
    """A header/claim value fit for a log line: strings only, truncated (values are attacker-controlled)."""
    if not isinstance(value, str):
        return None
    return value if len(value) <= _LOGGED_TEXT_LIMIT else value[:_LOGGED_TEXT_LIMIT] + "..."


def jti_fingerprint(jti: str) -> str:
    """A short hash of a ``jti``: lets an operator match log lines for one token without logging the id."""
    return hashlib.sha256(jti.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class AuthError(Exception):
    """Raised by :meth:`JwtVerifier.verify` when a request is not from a trusted client.

    ``reason`` says why, for the log; it never contains the token or claims other than the issuer. ``iss`` and
    ``kid`` (as sent, truncated) and ``jti_hash`` help an operator find the request; any may be None.
    Never put the reason in a response body: it would teach an attacker which check to defeat next.
    """

    def __init__(self, reason: str, *, iss: object = None, kid: object = None, jti: object = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.iss = _loggable(iss)
        self.kid = _loggable(kid)
        self.jti_hash = jti_fingerprint(jti) if isinstance(jti, str) and jti else None


class AuthConfigError(ValueError):
    """Raised at start-up when the verifier cannot be built (bad ``public_base_url``, bad JWKS file)."""


@dataclass(frozen=True, slots=True)
class TrustedClient:
    """The verified facts about the CDS client behind a request.

    ``fhir_servers`` are the issuer's own extra FHIR server prefixes; the servers the fallback fetch may use
    are these plus the global ``[fhir] allowed_servers``.
    """

    iss: str
    tenant: str | None
    jti: str
    exp: float
    fhir_servers: tuple[str, ...] = ()


class _Replay(Enum):
    FRESH = "fresh"
    REPLAYED = "replayed"
    FULL = "full"


class _ReplayCache:
    """Remembers (iss, jti) until the token could no longer be accepted anyway (exp + leeway).

    Bounded: when full of unexpired entries it refuses new tokens rather than forgetting old ones, since
    forgetting would re-open a replay window. Only tokens with valid signatures get here, so only a trusted
    client can fill it. Process-local: see the module docstring about multiple workers.
    """

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._forget_at: dict[tuple[str, str], float] = {}
        self._queue: list[tuple[float, tuple[str, str]]] = []

    def __len__(self) -> int:
        return len(self._forget_at)

    def remember(self, key: tuple[str, str], forget_at: float, now: float) -> _Replay:
        self._prune(now)
        if key in self._forget_at:
            return _Replay.REPLAYED
        if len(self._forget_at) >= self._max_entries:
            return _Replay.FULL
        self._forget_at[key] = forget_at
        heapq.heappush(self._queue, (forget_at, key))
        return _Replay.FRESH

    def _prune(self, now: float) -> None:
        while self._queue and self._queue[0][0] < now:
            forget_at, key = heapq.heappop(self._queue)
            if self._forget_at.get(key) == forget_at:
                del self._forget_at[key]


class _JwksUnavailable(Exception):
    """A JWKS could not be loaded; the message is safe to log (no key material, no token)."""


@dataclass(eq=False)
class _KeySet:
    """One issuer's cached verification keys, indexed by ``kid`` (a kid may, unusually, name several keys)."""

    issuer: IssuerSettings
    keys: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    loaded: bool = False
    fetched_at: float = -math.inf
    attempted_at: float = -math.inf
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def source(self) -> str:
        return self.issuer.jku if self.issuer.jku is not None else str(self.issuer.jwks_file)


def _parse_jwks(raw: bytes) -> dict[str, list[dict[str, Any]]]:
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _JwksUnavailable("JWKS is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise _JwksUnavailable("JWKS is not an object with a 'keys' array")
    keys: dict[str, list[dict[str, Any]]] = {}
    for entry in document["keys"]:
        # Tokens must name their key, so a JWK without a kid could never be selected.
        if isinstance(entry, dict) and isinstance(entry.get("kid"), str) and entry["kid"]:
            keys.setdefault(entry["kid"], []).append(entry)
    return keys


def _read_jwks_file(path: Path) -> dict[str, list[dict[str, Any]]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _JwksUnavailable(f"cannot read file ({exc.strerror or type(exc).__name__})") from None
    if len(raw) > MAX_JWKS_BYTES:
        raise _JwksUnavailable("JWKS file is larger than 256 KiB")
    return _parse_jwks(raw)


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim as a finite float, None if absent; ValueError if present but not a number."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(name)
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(name) from None
    if not math.isfinite(number):
        raise ValueError(name)
    return number


class JwtVerifier:
    """Verifies CDS client JWTs against the configured issuers; one instance per application.

    ``http`` is used only to fetch the configured ``jku`` URLs (no redirects, short timeout, size-capped).
    ``clock`` returns Unix time and exists so tests can move time instead of sleeping.
    """

    def __init__(
        self,
        settings: AuthSettings,
        public_base_url: str,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            self._base_url = normalize_public_base_url(public_base_url)
        except ValueError as exc:
            raise AuthConfigError(str(exc)) from None
        self._settings = settings
        self._http = http
        self._clock = clock
        self._issuers = {issuer.iss: issuer for issuer in settings.issuers}
        self._keysets = {issuer.iss: _KeySet(issuer) for issuer in settings.issuers}
        self._replay = _ReplayCache(settings.replay_cache_size)
        for keyset in self._keysets.values():
            if keyset.issuer.jwks_file is not None:
                # Read at start: a missing or broken file stops the service instead of failing every request.
                try:
                    keyset.keys = _read_jwks_file(keyset.issuer.jwks_file)
                except _JwksUnavailable as exc:
                    path = str(keyset.issuer.jwks_file)
                    raise AuthConfigError(
                        f"issuer {keyset.issuer.iss!r}: jwks_file {path!r} is unusable: {exc}"
                    ) from None
                keyset.loaded = True
                keyset.fetched_at = keyset.attempted_at = clock()

    @property
    def public_base_url(self) -> str:
        return self._base_url

    def expected_audience(self, path: str) -> str:
        """The ``aud`` an EHR must sign for a call to ``path`` (the request path below the service root)."""
        return self._base_url + path

    async def warm_up(self) -> None:
        """Fetch every ``jku`` JWKS once, e.g. at start-up, so the first request does not wait for it.

        Failures are logged, not raised: an EHR's JWKS being briefly down must not stop the service.
        """
        for keyset in self._keysets.values():
            if not keyset.loaded:
                await self._refresh(keyset)

    async def verify(self, authorization: str | None, path: str) -> TrustedClient:
        """Check the ``Authorization`` header of a request to ``path`` and return the trusted client.

        ``path`` is the path called, relative to ``public_base_url``
        (e.g. ``/cds-services/naltrexone-order-sign``). Each successful call consumes the token's ``jti``:
        call this once per request.

        Raises:
            AuthError: for any reason to distrust the request; unexpected internal errors also become
                AuthError (failing closed) after being logged by type.
        """
        try:
            return await self._verify(authorization, path)
        except AuthError:
            raise
        except Exception as exc:
            logger.error("token verification failed unexpectedly (%s); request refused", type(exc).__name__)
            raise AuthError(f"internal error during verification ({type(exc).__name__})") from None

    async def _verify(self, authorization: str | None, path: str) -> TrustedClient:
        token = _bearer_token(authorization)
        try:
            header = jose_backend.read_unverified_header(token)
            unverified = jose_backend.read_unverified_claims(token)
        except jose_backend.JoseError as exc:
            raise AuthError(f"malformed token: {exc}") from None

        alg, kid, iss = header.get("alg"), header.get("kid"), unverified.get("iss")
        context = {"iss": iss, "kid": kid, "jti": unverified.get("jti")}
        if not isinstance(alg, str) or not alg:
            raise AuthError("token header has no alg", **context)
        if alg.lower() == "none" or alg.upper().startswith("HS"):
            raise AuthError(f"forbidden alg {_loggable(alg)!r} (unsigned or HMAC)", **context)
        if not isinstance(kid, str) or not kid:
            raise AuthError("token header has no kid", **context)
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.upper() not in {"JWT", "APPLICATION/JWT"}:
            raise AuthError("token header typ is not JWT", **context)
        if "crit" in header:
            raise AuthError("token header has 'crit' extensions we do not understand", **context)
        if not isinstance(iss, str) or iss not in self._issuers:
            raise AuthError("issuer is not configured", **context)

        issuer = self._issuers[iss]
        algorithms = self._settings.algorithms_for(issuer)
        if alg not in algorithms:
            raise AuthError(f"alg {_loggable(alg)!r} is not allowed for this issuer", **context)
        jku = header.get("jku")
        if issuer.jku is not None and jku is not None and jku != issuer.jku:
            raise AuthError("jku header is not the issuer's registered JWKS URL (not fetched)", **context)

        candidates = await self._keys_for(self._keysets[iss], kid)
        if not candidates:
            raise AuthError("no key with this kid in the issuer's JWKS", **context)
        claims: dict[str, Any] | None = None
        failure = "signature does not verify"
        for jwk in candidates:
            try:
                claims = jose_backend.verify_and_decode(token, jwk, algorithms)
                break
            except jose_backend.JoseError as exc:
                failure = str(exc)
        if claims is None:
            raise AuthError(f"signature rejected: {failure}", **context)
        return self._check_claims(claims, issuer, kid, path)

    def _check_claims(self, claims: dict[str, Any], issuer: IssuerSettings, kid: str, path: str) -> TrustedClient:
        jti = claims.get("jti")
        context = {"iss": issuer.iss, "kid": kid, "jti": jti}
        if claims.get("iss") != issuer.iss:  # same bytes as the unverified read; checked again on principle
            raise AuthError("issuer changed between reads", **context)

        expected = self.expected_audience(path)
        audiences = claims.get("aud")
        if isinstance(audiences, str):
            audiences = [audiences]
        if not isinstance(audiences, list) or not audiences or not all(isinstance(a, str) for a in audiences):
            raise AuthError("aud is missing or not a string/array of strings", **context)
        if expected not in audiences and not set(issuer.extra_audiences) & set(audiences):
            raise AuthError(f"aud contains neither {expected!r} nor an extra audience", **context)

        now = self._clock()
        leeway = self._settings.leeway_s
        try:
            exp = _numeric_date(claims, "exp")
            iat = _numeric_date(claims, "iat")
            nbf = _numeric_date(claims, "nbf")
        except ValueError as exc:
            raise AuthError(f"{exc} is not a NumericDate", **context) from None
        if exp is None:
            raise AuthError("exp is missing", **context)
        if now > exp + leeway:
            raise AuthError(f"token expired {now - exp:.0f}s ago (leeway {leeway}s)", **context)
        if iat is None:
            raise AuthError("iat is missing", **context)
        if iat > now + leeway:
            raise AuthError(f"iat is {iat - now:.0f}s in the future (leeway {leeway}s)", **context)
        if nbf is not None and nbf > now + leeway:
            raise AuthError(f"token not valid for another {nbf - now:.0f}s (nbf)", **context)

        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
            raise AuthError("jti is missing, empty or too long", **context)
        tenant = claims.get("tenant")
        if tenant is not None and not isinstance(tenant, str):
            raise AuthError("tenant is not a string", **context)
        if issuer.tenants is not None and tenant not in issuer.tenants:
            raise AuthError("tenant is not allowed for this issuer", **context)

        # Last, so that a token failing any other check does not burn its jti.
        outcome = self._replay.remember((issuer.iss, jti), exp + leeway, now)
        if outcome is _Replay.REPLAYED:
            raise AuthError("jti already used (replay)", **context)
        if outcome is _Replay.FULL:
            logger.error(
                "replay cache is full (%d unexpired tokens); refusing new tokens until some expire. "
                "Raise auth.replay_cache_size if this is legitimate load",
                len(self._replay),
            )
            raise AuthError("replay cache full", **context)
        return TrustedClient(iss=issuer.iss, tenant=tenant, jti=jti, exp=exp, fhir_servers=tuple(issuer.fhir_servers))

    async def _keys_for(self, keyset: _KeySet, kid: str) -> list[dict[str, Any]]:
        if not keyset.loaded or self._clock() - keyset.fetched_at >= self._settings.jwks_ttl_s:
            await self._refresh(keyset)
        found = keyset.keys.get(kid)
        if found:
            return found
        # An unknown kid is how key rotation looks from here: look once more (rate-limited).
        await self._refresh(keyset)
        return keyset.keys.get(kid, [])

    async def _refresh(self, keyset: _KeySet) -> None:
        """Reload an issuer's keys (rate-limited by the min refetch interval); keep old keys on failure."""
        async with keyset.lock:
            now = self._clock()
            if now - keyset.attempted_at < self._settings.jwks_min_refetch_interval_s:
                return  # someone just (re)loaded it, or just failed to: do not hammer the source
            keyset.attempted_at = now
            try:
                if keyset.issuer.jku is not None:
                    keys = await self._fetch_jwks(keyset.issuer.jku)
                elif keyset.issuer.jwks_file is not None:
                    keys = await asyncio.to_thread(_read_jwks_file, keyset.issuer.jwks_file)
                else:  # IssuerSettings guarantees one of the two; refuse rather than assume
                    raise _JwksUnavailable("issuer has no key source")
            except _JwksUnavailable as exc:
                logger.warning(
                    "could not load JWKS for issuer %r from %s: %s (%s)",
                    keyset.issuer.iss,
                    keyset.source,
                    exc,
                    "keeping the previous keys" if keyset.loaded else "no keys yet",
                )
                return
            keyset.keys, keyset.loaded, keyset.fetched_at = keys, True, now
            logger.info("loaded %d key(s) for issuer %r from %s", len(keys), keyset.issuer.iss, keyset.source)

    async def _fetch_jwks(self, url: str) -> dict[str, list[dict[str, Any]]]:
        """GET the configured JWKS URL: no redirects (they could point anywhere), short timeout, size cap."""
        body = bytearray()
        try:
            async with self._http.stream(
                "GET",
                url,
                headers={"Accept": "application/json, application/jwk-set+json"},
                timeout=self._settings.jwks_fetch_timeout_s,
                follow_redirects=False,
            ) as response:
                if response.status_code != 200:
                    raise _JwksUnavailable(f"HTTP {response.status_code}")
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise _JwksUnavailable("JWKS is larger than 256 KiB")
        except httpx.HTTPError as exc:
            raise _JwksUnavailable(f"request failed ({type(exc).__name__})") from None
        return _parse_jwks(bytes(body))


def _bearer_token(authorization: str | None) -> str:
    """The token from ``Authorization: Bearer <token>``; the scheme is case-insensitive (RFC 7235)."""
    if authorization is None or not authorization.strip():
        raise AuthError("no Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError("Authorization scheme is not Bearer")
    token = token.strip()
    if not token or any(ch.isspace() for ch in token):
        raise AuthError("malformed Bearer credentials")
    return token
