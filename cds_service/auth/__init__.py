"""Trusting CDS clients: JWT verification, the FHIR-server SSRF guard, CORS.

Modules, and why each is separate:

* :mod:`~cds_service.auth.settings` - the ``[auth]`` config table, validated at start-up.
* :mod:`~cds_service.auth.jose_backend` - the only module importing the JOSE library (swap it here alone).
* :mod:`~cds_service.auth.verifier` - the trust decision itself, library-independent, testable without HTTP.
* :mod:`~cds_service.auth.dependency` - FastAPI wiring: CORS, ``TrustedClientDep``, the bare 401.
* :mod:`~cds_service.auth.ssrf` - which ``fhirServer`` URLs the fallback fetch may contact.

Exceptions::

    AuthError        the token is not trusted (reason for the log only); raised by JwtVerifier.verify
    Unauthorized     what the FastAPI dependency raises instead; carries no reason; map it to a bare 401
    AuthConfigError  (ValueError) the verifier cannot be built at start-up; show it to the operator
"""

from cds_service.auth.dependency import (
    TrustedClientDep,
    Unauthorized,
    install_auth,
    require_trusted_client,
    unauthorized_response,
)
from cds_service.auth.settings import (
    DEFAULT_ALGORITHMS,
    SIGNATURE_ALGORITHMS,
    AuthSettings,
    IssuerSettings,
    normalize_cors_origin,
    normalize_public_base_url,
)
from cds_service.auth.ssrf import fhir_server_allowed, is_loopback_host, validate_server_prefix
from cds_service.auth.verifier import AuthConfigError, AuthError, JwtVerifier, TrustedClient

__all__ = [
    "DEFAULT_ALGORITHMS",
    "SIGNATURE_ALGORITHMS",
    "AuthConfigError",
    "AuthError",
    "AuthSettings",
    "IssuerSettings",
    "JwtVerifier",
    "TrustedClient",
    "TrustedClientDep",
    "Unauthorized",
    "fhir_server_allowed",
    "install_auth",
    "is_loopback_host",
    "normalize_cors_origin",
    "normalize_public_base_url",
    "require_trusted_client",
    "unauthorized_response",
    "validate_server_prefix",
]
