"""The ``[auth]`` table of the service configuration: which CDS clients (EHRs) we trust and how.

These models are validated once at start-up and shown to an operator when wrong, so every check raises a
sentence that names the offending value and says what to write instead. They are frozen and forbid unknown
keys: a misspelt ``requried = false`` must be an error, not a silently ignored line that leaves auth in an
unexpected state.

Example (TOML)::

    public_base_url = "https://cds.example.org"     # top-level key, passed to JwtVerifier separately

    [auth]
    required = true
    algorithms = ["ES384", "RS384"]

    [[auth.issuers]]
    iss = "https://ehr.example.org"
    jku = "https://ehr.example.org/.well-known/jwks.json"
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_validator

from cds_service.auth.ssrf import is_loopback_host, validate_server_prefix

__all__ = [
    "DEFAULT_ALGORITHMS",
    "SIGNATURE_ALGORITHMS",
    "AuthSettings",
    "IssuerSettings",
    "normalize_cors_origin",
    "normalize_public_base_url",
]

# Asymmetric JWS algorithms the JOSE backend can verify. HMAC (HS*) and "none" are absent on purpose.
SIGNATURE_ALGORITHMS: Final[frozenset[str]] = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
)
# The CDS Hooks reference sandbox signs ES384; Epic defaults to RS384.
DEFAULT_ALGORITHMS: Final[tuple[str, ...]] = ("ES384", "RS384")


def _check_algorithms(algorithms: tuple[str, ...]) -> tuple[str, ...]:
    if not algorithms:
        raise ValueError("list at least one signing algorithm (the defaults are ES384 and RS384)")
    for alg in algorithms:
        if alg.strip().lower() == "none":
            raise ValueError("algorithm 'none' means an unsigned token that anyone can forge; never allowed")
        if alg.strip().upper().startswith("HS"):
            raise ValueError(
                f"algorithm {alg!r} is HMAC (a shared secret); CDS clients sign with a private key, and a "
                "verifier that accepts HMAC can be fooled by a token 'signed' with the public key; "
                "never allowed"
            )
        if alg not in SIGNATURE_ALGORITHMS:
            raise ValueError(
                f"unsupported signing algorithm {alg!r}; choose from "
                f"{', '.join(sorted(SIGNATURE_ALGORITHMS))} (names are case-sensitive)"
            )
    return tuple(dict.fromkeys(algorithms))


def _absolute_http_url(url: str, what: str) -> str:
    """Common shape check for URLs an operator types: absolute http(s), no credentials, no fragment."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - accessing .port validates it
    except ValueError:
        raise ValueError(f"{what} {url!r} is not a valid URL") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{what} {url!r} must be an absolute URL such as https://host/path")
    if "@" in parts.netloc:
        raise ValueError(f"{what} {url!r} must not contain user information (user:password@)")
    if parts.fragment or url.endswith("#"):
        raise ValueError(f"{what} {url!r} must not contain a fragment (#...)")
    if url != url.strip():
        raise ValueError(f"{what} {url!r} has leading or trailing whitespace")
    return url


def _check_jku(url: str) -> str:
    _absolute_http_url(url, "jku")
    parts = urlsplit(url)
    if parts.scheme != "https" and not is_loopback_host(parts.hostname or ""):
        raise ValueError(
            f"jku {url!r} must use https: keys fetched over plain http can be replaced in transit "
            "(http is accepted only for a loopback test server)"
        )
    return url


def _check_audience(url: str) -> str:
    return _absolute_http_url(url, "extra audience")


def _check_issuer(iss: str) -> str:
    if not iss or iss != iss.strip():
        raise ValueError(f"iss {iss!r} must be non-empty, without surrounding spaces (compared exactly)")
    return iss


def _check_tenants(tenants: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if tenants is not None and not tenants:
        raise ValueError(
            "tenants = [] would reject every token; omit the key to accept any tenant, "
            "or list the tenant ids this issuer may use"
        )
    return tenants


def normalize_cors_origin(origin: str) -> str:
    """Return ``origin`` as browsers send it in the ``Origin`` header, or raise a ValueError saying why not.

    Browsers send ``scheme://host[:port]`` with no path and no default port; Starlette compares the strings
    exactly, so ``https://ehr.example.org/`` in a config would never match. We normalise such harmless
    differences and refuse wildcards: allowed origins are listed one by one.
    """
    if origin.strip() == "*":
        raise ValueError("cors_origins may not contain '*'; list each EHR origin, e.g. 'https://ehr.example.org'")
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"CORS origin {origin!r} is not a valid origin") from None
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"CORS origin {origin!r} must look like 'https://ehr.example.org' (scheme and host)")
    if "@" in parts.netloc or parts.path not in {"", "/"} or parts.query or parts.fragment:
        raise ValueError(f"CORS origin {origin!r} must be only scheme://host[:port], without path or query")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default_port = 443 if scheme == "https" else 80
    suffix = "" if port is None or port == default_port else f":{port}"
    return f"{scheme}://{host}{suffix}"


def normalize_public_base_url(url: str) -> str:
    """Validate ``public_base_url`` (the URL EHRs call us at) and return it without a trailing slash.

    The expected JWT audience is built from it, never from the ``Host`` header, which a proxy may rewrite
    and a caller may forge. Usable as a pydantic ``AfterValidator`` on the top-level config key.
    """
    _absolute_http_url(url, "public_base_url")
    parts = urlsplit(url)
    if parts.query:
        raise ValueError(f"public_base_url {url!r} must not contain a query string")
    return url.rstrip("/")


Algorithms = Annotated[tuple[str, ...], AfterValidator(_check_algorithms)]
CorsOrigin = Annotated[str, AfterValidator(normalize_cors_origin)]
ServerPrefix = Annotated[str, AfterValidator(validate_server_prefix)]


class IssuerSettings(BaseModel):
    """One trusted CDS client, identified by the ``iss`` claim of its tokens.

    Its keys come from exactly one place: ``jku`` (a JWKS URL we fetch, and the only ``jku`` header value we
    accept from it) or ``jwks_file`` (a JWKS the operator saved locally, e.g. when the EHR sends keys out of
    band). ``extra_audiences`` lists additional exact ``aud`` values, because EHRs let staff register the
    service under any URL (a proxy, an alias) and sign that URL.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    iss: Annotated[str, AfterValidator(_check_issuer)]
    jku: Annotated[str, AfterValidator(_check_jku)] | None = None
    jwks_file: Path | None = None
    extra_audiences: tuple[Annotated[str, AfterValidator(_check_audience)], ...] = ()
    tenants: Annotated[tuple[str, ...] | None, AfterValidator(_check_tenants)] = None
    fhir_servers: tuple[ServerPrefix, ...] = ()
    algorithms: Algorithms | None = None

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        if (self.jku is None) == (self.jwks_file is None):
            raise ValueError(
                f"issuer {self.iss!r}: set exactly one of 'jku' (the issuer's JWKS URL) or 'jwks_file' "
                "(a local copy of its JWKS)"
            )
        return self


class AuthSettings(BaseModel):
    """How CDS clients are authenticated (CDS Hooks 2.0, "Trusting CDS Clients").

    ``required`` defaults to true so that a config file that forgets the ``[auth]`` table fails at start-up
    (no issuers) instead of serving patient-data requests to anyone. ``leeway_s`` tolerates clock skew on
    ``exp``/``iat``/``nbf`` and is capped at five minutes; token lifetime itself is not capped (EHR tokens
    often live 15 minutes). ``replay_cache_size`` bounds memory; when it is full of unexpired ``jti`` values
    new tokens are refused (fail closed) and an error is logged.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    required: StrictBool = True
    issuers: tuple[IssuerSettings, ...] = ()
    algorithms: Algorithms = DEFAULT_ALGORITHMS
    leeway_s: int = Field(default=60, ge=0, le=300)
    jwks_ttl_s: int = Field(default=3600, ge=60, le=86_400)
    jwks_min_refetch_interval_s: int = Field(default=30, ge=1, le=3600)
    jwks_fetch_timeout_s: float = Field(default=3.0, gt=0, le=10)
    replay_cache_size: int = Field(default=100_000, ge=100, le=10_000_000)
    cors_origins: tuple[CorsOrigin, ...] = ()

    @model_validator(mode="after")
    def _issuers_make_sense(self) -> Self:
        if self.required and not self.issuers:
            raise ValueError(
                "auth.required is true but no [[auth.issuers]] are configured, so every request would be "
                "refused; add the EHR's issuer, or set required = false for local development only"
            )
        seen: set[str] = set()
        for issuer in self.issuers:
            if issuer.iss in seen:
                raise ValueError(f"issuer {issuer.iss!r} is configured twice; merge the two [[auth.issuers]]")
            seen.add(issuer.iss)
        return self

    def algorithms_for(self, issuer: IssuerSettings) -> tuple[str, ...]:
        """The algorithms accepted from ``issuer``: its own override, else the global list."""
        return issuer.algorithms if issuer.algorithms is not None else self.algorithms
