"""Keys, tokens and a loopback JWKS server for the auth tests.

Tokens are built with ``cryptography`` directly, never with the JOSE library under test, so a bug in that
library cannot cancel itself out, and so tests can build tokens no library would (alg ``none``, HS256 keyed
with a public key, NaN claims, duplicate members). Keys are generated per test run: none is committed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_CURVES: dict[str, tuple[ec.EllipticCurve, str]] = {
    "ES256": (ec.SECP256R1(), "P-256"),
    "ES384": (ec.SECP384R1(), "P-384"),
    "ES512": (ec.SECP521R1(), "P-521"),
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64_int(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url(value.to_bytes(size, "big"))


@dataclass(frozen=True)
class SigningKey:
    """A private key with the ``kid`` and ``alg`` it signs with."""

    kid: str
    alg: str
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

    def public_jwk(self, **extra: Any) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            size = (public.curve.key_size + 7) // 8
            crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[public.curve.name]
            numbers = public.public_numbers()
            jwk: dict[str, Any] = {
                "kty": "EC",
                "crv": crv,
                "x": _b64_int(numbers.x, size),
                "y": _b64_int(numbers.y, size),
            }
        else:
            rsa_numbers = public.public_numbers()
            jwk = {"kty": "RSA", "n": _b64_int(rsa_numbers.n), "e": _b64_int(rsa_numbers.e)}
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg, **extra}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, signing_input: bytes, alg: str | None = None) -> bytes:
        alg = alg or self.alg
        digest = _HASHES[alg[2:]]()
        if isinstance(self.private, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(self.private.sign(signing_input, ec.ECDSA(digest)))
            size = (self.private.curve.key_size + 7) // 8
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        if alg.startswith("PS"):
            pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
            return self.private.sign(signing_input, pss, digest)
        return self.private.sign(signing_input, padding.PKCS1v15(), digest)


def ec_key(alg: str = "ES384", kid: str | None = None, curve_of: str | None = None) -> SigningKey:
    """An EC key for ``alg``; ``curve_of`` picks another algorithm's curve (to build mismatched keys)."""
    curve, _ = _CURVES[curve_of or alg]
    return SigningKey(kid or f"ec-{uuid.uuid4().hex[:8]}", alg, ec.generate_private_key(curve))


def rsa_key(alg: str = "RS384", kid: str | None = None, bits: int = 2048) -> SigningKey:
    return SigningKey(kid or f"rsa-{uuid.uuid4().hex[:8]}", alg, rsa.generate_private_key(65537, bits))


def _segment(part: Mapping[str, Any] | bytes | str) -> str:
    if isinstance(part, Mapping):
        return b64url(json.dumps(part, separators=(",", ":")).encode())
    return b64url(part.encode() if isinstance(part, str) else part)


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def sign_jwt(
    key: SigningKey,
    claims: Mapping[str, Any] | bytes | str,
    *,
    alg: str | None = None,
    **header: Any,
) -> str:
    """A compact JWS signed by ``key``. Header members default to alg/typ/kid; pass ``name=None`` to drop one.

    ``claims`` may be raw bytes or text to build payloads no JSON encoder would produce.
    """
    full_header = _drop_none({"alg": alg or key.alg, "typ": "JWT", "kid": key.kid, **header})
    signing_input = f"{_segment(full_header)}.{_segment(claims)}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode(), alg))}"


def hmac_jwt(secret: bytes, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    """The algorithm-confusion attack: an HS256 token whose 'secret' is the victim's public key."""
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def unsigned_jwt(header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    return f"{_segment(header)}.{_segment(claims)}."


def replace_payload(token: str, claims: Mapping[str, Any]) -> str:
    """Keep header and signature, swap the payload: a tampered token."""
    head, _, signature = token.split(".")
    return f"{head}.{_segment(claims)}.{signature}"


@dataclass
class _Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class JwksServer:
    """A tiny HTTP server on 127.0.0.1 serving JWKS documents by path, recording every request path."""

    def __init__(self) -> None:
        self.routes: dict[str, _Route] = {}
        self.requests: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.requests.append(self.path)
                    route = server.routes.get(self.path, _Route(404, b"{}"))
                self.send_response(route.status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="jwks-server", daemon=True
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve_keys(self, path: str, *keys: SigningKey | Mapping[str, Any]) -> str:
        jwks = [k.public_jwk() if isinstance(k, SigningKey) else dict(k) for k in keys]
        return self.serve(path, 200, json.dumps({"keys": jwks}).encode())

    def serve(self, path: str, status: int, body: bytes, headers: dict[str, str] | None = None) -> str:
        with self._lock:
            self.routes[path] = _Route(status, body, headers or {})
        return self.url(path)

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for p in self.requests if p == path)

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def jwks_document(*keys: SigningKey) -> str:
    return json.dumps({"keys": [k.public_jwk() for k in keys]})
