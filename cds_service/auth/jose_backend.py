"""The one door to the JOSE library: the only module that imports ``jose`` (python-jose).

Everything else in the service speaks in plain dicts and this module's exceptions, so replacing python-jose
(joserfc, PyJWT, ...) means rewriting this file and nothing else. The functions are deliberately thin: they
parse, and they check a signature against one given JWK. Claim semantics (``iss``, ``aud``, ``exp``, replay)
belong to :mod:`cds_service.auth.verifier`, which is library-independent.

Defence in depth against the classic JOSE mistakes, whatever the library does:

* ``none`` and HMAC (``HS*``) are refused here before any key is touched, and the algorithm list is always
  passed explicitly, so a token whose header says HS256 can never be checked with an RSA public key used as an
  HMAC secret.
* A JWK must fit the algorithm: ``kty`` (and ``crv`` for EC) must match, ``alg``/``use``/``key_ops`` if
  present must agree, RSA keys must be at least 2048 bits, and JWKs carrying private material are refused.
* Tokens must be exactly three unpadded base64url segments; lenient base64 decoding would let several strings
  verify as the same token.
* Duplicate claim names and the non-JSON constants ``NaN``/``Infinity`` are refused (an ``exp`` of NaN would
  compare as "not expired").

python-jose implements RS*/ES* but not RSASSA-PSS, so PS256/PS384/PS512 are verified here with
``cryptography`` directly (RFC 7518 section 3.5: MGF1 with the same hash, salt length equal to the hash size).

Exception messages are fixed sentences: they never contain token text, so callers may log them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection, Mapping
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# python-jose ships no type hints; this is the only place it is imported.
from jose import jwk as jose_jwk  # type: ignore[import-untyped]
from jose import jws as jose_jws
from jose.exceptions import JOSEError  # type: ignore[import-untyped]

__all__ = [
    "MAX_TOKEN_LENGTH",
    "SUPPORTED_ALGORITHMS",
    "JoseError",
    "KeyMismatchError",
    "MalformedTokenError",
    "SignatureError",
    "read_unverified_claims",
    "read_unverified_header",
    "verify_and_decode",
]

# Far above any real CDS client token (about 1 KB), low enough that parsing junk costs nothing.
MAX_TOKEN_LENGTH: Final = 16_384
MIN_RSA_BITS: Final = 2048

_EC_CURVES: Final[dict[str, str]] = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_RSA_PKCS1: Final = frozenset({"RS256", "RS384", "RS512"})
_RSA_PSS: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "PS256": hashes.SHA256,
    "PS384": hashes.SHA384,
    "PS512": hashes.SHA512,
}
SUPPORTED_ALGORITHMS: Final[frozenset[str]] = frozenset(_EC_CURVES) | _RSA_PKCS1 | frozenset(_RSA_PSS)

_PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]+")


class JoseError(Exception):
    """Base of this module's errors; the message is a fixed sentence, safe to log."""


class MalformedTokenError(JoseError):
    """The string is not a well-formed compact JWS with JSON-object header and payload."""


class KeyMismatchError(JoseError):
    """The JWK cannot be used with the token's algorithm (wrong type or curve, private, too small, ...)."""


class SignatureError(JoseError):
    """The algorithm is not allowed, or the signature does not verify with the given key."""


def _is_forbidden(alg: str) -> bool:
    return alg.lower() == "none" or alg.upper().startswith("HS")


def _segments(token: str) -> tuple[str, str, str]:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise MalformedTokenError("token is not text or is too long")
    parts = token.split(".")
    if len(parts) != 3 or not all(_BASE64URL.fullmatch(part) for part in parts):
        raise MalformedTokenError("token is not three base64url segments")
    return parts[0], parts[1], parts[2]


def _b64decode(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise MalformedTokenError("token segment is not valid base64url") from None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedTokenError("token JSON repeats a member name")
        result[key] = value
    return result


def _reject_constant(_name: str) -> Any:
    raise MalformedTokenError("token JSON contains NaN or Infinity")


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedTokenError("token segment is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedTokenError("token segment is not a JSON object")
    return value


def read_unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, NOT verified: use it only to choose the key and algorithm to verify with."""
    _segments(token)
    try:
        header = jose_jws.get_unverified_header(token)
    except JOSEError:
        raise MalformedTokenError("token header is not a JSON object") from None
    if not isinstance(header, dict):
        raise MalformedTokenError("token header is not a JSON object")
    return dict(header)


def read_unverified_claims(token: str) -> dict[str, Any]:
    """The claims, NOT verified: use only ``iss`` to choose whose keys to verify with."""
    _segments(token)
    try:
        raw = jose_jws.get_unverified_claims(token)
    except JOSEError:
        raise MalformedTokenError("token payload is not valid") from None
    return _json_object(raw)


def _b64uint(value: Any) -> int:
    if not isinstance(value, str) or not _BASE64URL.fullmatch(value):
        raise KeyMismatchError("JWK number is not base64url")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise KeyMismatchError("JWK number is not base64url") from None
    return int.from_bytes(raw, "big")


def _check_key_fits(key: Mapping[str, Any], alg: str) -> None:
    if not isinstance(key, Mapping):
        raise KeyMismatchError("JWK is not an object")
    if _PRIVATE_JWK_MEMBERS & set(key):
        raise KeyMismatchError("JWK contains private or symmetric key material")
    if "use" in key and key["use"] != "sig":
        raise KeyMismatchError("JWK is not meant for signatures (use)")
    if "key_ops" in key and (not isinstance(key["key_ops"], list) or "verify" not in key["key_ops"]):
        raise KeyMismatchError("JWK is not meant for verification (key_ops)")
    if "alg" in key and key["alg"] != alg:
        raise KeyMismatchError("JWK is bound to another algorithm")
    if alg in _EC_CURVES:
        if key.get("kty") != "EC" or key.get("crv") != _EC_CURVES[alg]:
            raise KeyMismatchError("JWK is not an EC key on the algorithm's curve")
        _b64uint(key.get("x"))
        _b64uint(key.get("y"))
    else:
        if key.get("kty") != "RSA":
            raise KeyMismatchError("JWK is not an RSA key")
        if _b64uint(key.get("n")).bit_length() < MIN_RSA_BITS:
            raise KeyMismatchError("RSA key is shorter than 2048 bits")
        _b64uint(key.get("e"))


def _verify_pss(token: str, key: Mapping[str, Any], alg: str) -> bytes:
    header_b64, payload_b64, signature_b64 = _segments(token)
    digest = _RSA_PSS[alg]
    try:
        public_key = rsa.RSAPublicNumbers(_b64uint(key["e"]), _b64uint(key["n"])).public_key()
        public_key.verify(
            _b64decode(signature_b64),
            f"{header_b64}.{payload_b64}".encode("ascii"),
            padding.PSS(mgf=padding.MGF1(digest()), salt_length=padding.PSS.DIGEST_LENGTH),
            digest(),
        )
    except (InvalidSignature, ValueError):
        raise SignatureError("signature does not verify") from None
    return _b64decode(payload_b64)


def _verify_with_jose(token: str, key: Mapping[str, Any], alg: str) -> bytes:
    try:
        prepared = jose_jwk.construct(dict(key), alg)
    except Exception:  # python-jose raises assorted types for bad key data
        raise KeyMismatchError("JWK could not be loaded") from None
    try:
        payload = jose_jws.verify(token, prepared, algorithms=[alg])
    except Exception:  # JWSError, and whatever a backend lets escape: all mean "not verified"
        raise SignatureError("signature does not verify") from None
    if not isinstance(payload, bytes):
        raise SignatureError("signature does not verify")
    return payload


def verify_and_decode(token: str, key: Mapping[str, Any], algorithms: Collection[str]) -> dict[str, Any]:
    """Verify ``token``'s signature with the JWK ``key`` and return its claims (no claim is checked here).

    The token's ``alg`` header must be in ``algorithms`` and in :data:`SUPPORTED_ALGORITHMS`; ``none`` and
    HMAC are refused regardless of what the caller passes.

    Raises:
        MalformedTokenError: the token cannot be parsed.
        KeyMismatchError: the key cannot be used with the token's algorithm.
        SignatureError: the algorithm is not allowed or the signature is wrong.
    """
    header = read_unverified_header(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or _is_forbidden(alg):
        raise SignatureError("algorithm is missing or forbidden")
    if alg not in SUPPORTED_ALGORITHMS or alg not in algorithms:
        raise SignatureError("algorithm is not allowed")
    _check_key_fits(key, alg)
    payload = _verify_pss(token, key, alg) if alg in _RSA_PSS else _verify_with_jose(token, key, alg)
    return _json_object(payload)
