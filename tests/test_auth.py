"""CDS client trust: JWT verification, key rotation, the SSRF guard, CORS and log hygiene.

The negative table follows CDS Hooks 2.0 "Trusting CDS Clients" and the classic JOSE attacks (alg ``none``,
HS256 keyed with the public key, a ``jku`` pointing at the attacker). Every token is built in
``tests.auth_helpers`` with ``cryptography`` alone; keys are generated per run and JWKS are served by a real
HTTP server on 127.0.0.1 started by the test.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import tomllib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from cds_service.auth import (
    SIGNATURE_ALGORITHMS,
    AuthConfigError,
    AuthError,
    AuthSettings,
    IssuerSettings,
    JwtVerifier,
    TrustedClient,
    TrustedClientDep,
    fhir_server_allowed,
    install_auth,
    is_loopback_host,
    jose_backend,
    normalize_public_base_url,
    validate_server_prefix,
)
from cds_service.auth.dependency import UNAUTHORIZED_OUTCOME
from tests.auth_helpers import (
    JwksServer,
    SigningKey,
    ec_key,
    hmac_jwt,
    jwks_document,
    replace_payload,
    rsa_key,
    sign_jwt,
    unsigned_jwt,
)

NOW = 1_750_000_000.0
BASE = "https://cds.example.org"
SIGN_PATH = "/cds-services/naltrexone-order-sign"
AUD = BASE + SIGN_PATH
ISS = "https://ehr.example.org"  # keys from a jku on the loopback JWKS server
FILE_ISS = "https://file-ehr.example.org"  # keys from a jwks_file
EHR_FHIR = "https://ehr.example.org/fhir/R4"
REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Keys:
    es384: SigningKey
    rs384: SigningKey  # in the jwks_file
    es256: SigningKey
    rs256: SigningKey
    ps384: SigningKey
    p256_as_es384: SigningKey  # claims ES384 but sits on P-256
    attacker: SigningKey  # a stranger's key that reuses es384's kid
    rotated: SigningKey  # the EHR's next key


@pytest.fixture(scope="module")
def keys() -> Keys:
    es384 = ec_key("ES384", kid="ehr-es384-1")
    return Keys(
        es384=es384,
        rs384=rsa_key("RS384", kid="ehr-rs384-1"),
        es256=ec_key("ES256", kid="ehr-es256-1"),
        rs256=rsa_key("RS256", kid="ehr-rs256-1"),
        ps384=rsa_key("PS384", kid="ehr-ps384-1"),
        p256_as_es384=ec_key("ES384", kid="ehr-p256", curve_of="ES256"),
        attacker=ec_key("ES384", kid=es384.kid),
        rotated=ec_key("ES384", kid="ehr-es384-2"),
    )


class Clock:
    """Unix time that only moves when a test says so."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server(keys: Keys) -> Iterator[JwksServer]:
    with JwksServer() as s:
        s.serve_keys("/jwks.json", keys.es384, keys.es256, keys.p256_as_es384, keys.ps384, keys.rs256)
        s.serve_keys("/evil/jwks.json", keys.attacker)
        yield s


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: a proxy from the environment must never see these loopback requests.
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@dataclass
class World:
    keys: Keys
    server: JwksServer
    jwks_file: Path
    clock: Clock
    http: httpx.AsyncClient

    @property
    def jku(self) -> str:
        return self.server.url("/jwks.json")

    def settings(self, **overrides: Any) -> AuthSettings:
        jku_issuer: dict[str, Any] = {"iss": ISS, "jku": self.jku, "fhir_servers": [EHR_FHIR]}
        file_issuer: dict[str, Any] = {"iss": FILE_ISS, "jwks_file": self.jwks_file}
        jku_issuer.update(overrides.pop("jku_issuer", {}))
        file_issuer.update(overrides.pop("file_issuer", {}))
        return AuthSettings.model_validate({"issuers": [jku_issuer, file_issuer], **overrides})

    def verifier(self, settings: AuthSettings | None = None) -> JwtVerifier:
        return JwtVerifier(settings or self.settings(), BASE, self.http, clock=self.clock)


@pytest.fixture
def world(keys: Keys, server: JwksServer, tmp_path: Path, http: httpx.AsyncClient) -> World:
    jwks_file = tmp_path / "file-ehr-jwks.json"
    jwks_file.write_text(jwks_document(keys.rs384))
    return World(keys, server, jwks_file, Clock(), http)


def claims(**overrides: Any) -> dict[str, Any]:
    """Claims of a valid token for the order-sign service; ``name=None`` drops a claim."""
    values: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "exp": NOW + 300,
        "iat": NOW - 5,
        "jti": uuid.uuid4().hex,
        "sub": "practitioner-42",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def bearer(token: str) -> str:
    return f"Bearer {token}"


# --------------------------------------------------------------------------------------------- negative table


@dataclass(frozen=True)
class Case:
    id: str
    reason: str  # a fragment of AuthError.reason: the case must fail for the reason it is about
    authorization: Callable[[World], str | None]
    use_once_first: bool = False  # for replay: the same header is accepted once, then refused


def _raw_payload(w: World, text: str) -> str:
    return bearer(sign_jwt(w.keys.es384, text))


def _spliced_signature(w: World) -> str:
    a = sign_jwt(w.keys.es384, claims())
    b = sign_jwt(w.keys.es384, claims())
    return bearer(a.rsplit(".", 1)[0] + "." + b.rsplit(".", 1)[1])


NEGATIVE_CASES = [
    Case(
        "alg none",
        "segments",
        lambda w: bearer(unsigned_jwt({"alg": "none", "typ": "JWT", "kid": w.keys.es384.kid}, claims())),
    ),
    Case(
        "alg none with a signature",
        "forbidden alg",
        lambda w: bearer(unsigned_jwt({"alg": "none", "typ": "JWT", "kid": w.keys.es384.kid}, claims()) + "AAAA"),
    ),
    Case(
        "alg None",
        "segments",
        lambda w: bearer(unsigned_jwt({"alg": "None", "typ": "JWT", "kid": w.keys.es384.kid}, claims())),
    ),
    Case(
        "HS256 keyed with the RSA public key (PEM)",
        "forbidden alg",
        lambda w: bearer(
            hmac_jwt(
                w.keys.rs384.public_pem(),
                {"alg": "HS256", "typ": "JWT", "kid": w.keys.rs384.kid},
                claims(iss=FILE_ISS),
            )
        ),
    ),
    Case(
        "HS256 keyed with the EC public JWK",
        "forbidden alg",
        lambda w: bearer(
            hmac_jwt(
                json.dumps(w.keys.es384.public_jwk()).encode(),
                {"alg": "HS256", "typ": "JWT", "kid": w.keys.es384.kid},
                claims(),
            )
        ),
    ),
    Case("wrong kid", "no key with this kid", lambda w: bearer(sign_jwt(w.keys.es384, claims(), kid="no-such-kid"))),
    Case(
        "a stranger's key under the EHR's kid",
        "signature does not verify",
        lambda w: bearer(sign_jwt(w.keys.attacker, claims())),
    ),
    Case(
        "unknown iss",
        "issuer is not configured",
        lambda w: bearer(sign_jwt(w.keys.es384, claims(iss="https://evil.example"))),
    ),
    Case(
        "iss of the other issuer",
        "no key with this kid",
        lambda w: bearer(sign_jwt(w.keys.es384, claims(iss=FILE_ISS))),
    ),
    Case(
        "unlisted jku",
        "jku header",
        lambda w: bearer(sign_jwt(w.keys.attacker, claims(), jku=w.server.url("/evil/jwks.json"))),
    ),
    Case(
        "jku on another host",
        "jku header",
        lambda w: bearer(sign_jwt(w.keys.es384, claims(), jku="https://evil.example/jwks")),
    ),
    Case(
        "wrong aud",
        "aud contains neither",
        lambda w: bearer(sign_jwt(w.keys.es384, claims(aud=BASE + "/cds-services/other"))),
    ),
    Case("trailing-slash aud", "aud contains neither", lambda w: bearer(sign_jwt(w.keys.es384, claims(aud=AUD + "/")))),
    Case(
        "aud from the Host header",
        "aud contains neither",
        lambda w: bearer(sign_jwt(w.keys.es384, claims(aud="http://testserver" + SIGN_PATH))),
    ),
    Case(
        "aud array without us",
        "aud contains neither",
        lambda w: bearer(sign_jwt(w.keys.es384, claims(aud=[BASE, "https://x.example"]))),
    ),
    Case("empty aud array", "aud is missing", lambda w: bearer(sign_jwt(w.keys.es384, claims(aud=[])))),
    Case("missing aud", "aud is missing", lambda w: bearer(sign_jwt(w.keys.es384, claims(aud=None)))),
    Case("expired", "expired", lambda w: bearer(sign_jwt(w.keys.es384, claims(exp=NOW - 61, iat=NOW - 900)))),
    Case("iat in the future", "iat is", lambda w: bearer(sign_jwt(w.keys.es384, claims(iat=NOW + 61, exp=NOW + 900)))),
    Case("nbf in the future", "nbf", lambda w: bearer(sign_jwt(w.keys.es384, claims(nbf=NOW + 61)))),
    Case("missing exp", "exp is missing", lambda w: bearer(sign_jwt(w.keys.es384, claims(exp=None)))),
    Case("missing iat", "iat is missing", lambda w: bearer(sign_jwt(w.keys.es384, claims(iat=None)))),
    Case("exp is a string", "NumericDate", lambda w: bearer(sign_jwt(w.keys.es384, claims(exp=str(int(NOW + 300)))))),
    Case("exp is true", "NumericDate", lambda w: bearer(sign_jwt(w.keys.es384, claims(exp=True)))),
    Case(
        "exp is NaN",
        "NaN",
        lambda w: _raw_payload(w, f'{{"iss":"{ISS}","aud":"{AUD}","exp":NaN,"iat":{NOW},"jti":"{uuid.uuid4().hex}"}}'),
    ),
    Case(
        "duplicate aud claim",
        "repeats",
        lambda w: _raw_payload(
            w,
            f'{{"iss":"{ISS}","aud":"https://x.example","exp":{NOW + 300},"iat":{NOW},'
            f'"jti":"{uuid.uuid4().hex}","aud":"{AUD}"}}',
        ),
    ),
    Case("missing jti", "jti is missing", lambda w: bearer(sign_jwt(w.keys.es384, claims(jti=None)))),
    Case("empty jti", "jti is missing", lambda w: bearer(sign_jwt(w.keys.es384, claims(jti="")))),
    Case("replayed jti", "replay", lambda w: bearer(sign_jwt(w.keys.es384, claims())), use_once_first=True),
    Case(
        "tampered payload",
        "signature does not verify",
        lambda w: bearer(replace_payload(sign_jwt(w.keys.es384, claims()), claims(sub="someone-else"))),
    ),
    Case("signature of another token", "signature does not verify", _spliced_signature),
    Case("malformed: not a JWT", "malformed", lambda w: "Bearer not-a-jwt"),
    Case("malformed: four segments", "malformed", lambda w: bearer(sign_jwt(w.keys.es384, claims()) + ".AAAA")),
    Case(
        "malformed: padded base64",
        "malformed",
        lambda w: bearer(sign_jwt(w.keys.es384, claims()).replace(".", "=.", 1)),
    ),
    Case("malformed: payload not JSON", "not JSON", lambda w: _raw_payload(w, "not json")),
    Case("malformed: payload is an array", "not a JSON object", lambda w: _raw_payload(w, "[1, 2]")),
    Case("malformed: oversized", "too long", lambda w: "Bearer " + "a" * 20_000 + ".b.c"),
    Case("missing kid", "no kid", lambda w: bearer(sign_jwt(w.keys.es384, claims(), kid=None))),
    Case("missing typ", "typ", lambda w: bearer(sign_jwt(w.keys.es384, claims(), typ=None))),
    Case("typ is not JWT", "typ", lambda w: bearer(sign_jwt(w.keys.es384, claims(), typ="at+jwt"))),
    Case("crit header", "crit", lambda w: bearer(sign_jwt(w.keys.es384, claims(), crit=["exp"]))),
    Case("ES256 not configured", "not allowed", lambda w: bearer(sign_jwt(w.keys.es256, claims()))),
    Case("PS384 not configured", "not allowed", lambda w: bearer(sign_jwt(w.keys.ps384, claims()))),
    Case(
        "RS384 header over an EC key",
        "another algorithm",
        lambda w: bearer(sign_jwt(w.keys.es384, claims(), alg="RS384")),
    ),
    Case("ES384 over a P-256 key", "curve", lambda w: bearer(sign_jwt(w.keys.p256_as_es384, claims()))),
    Case("no Authorization header", "no Authorization", lambda w: None),
    Case("empty Authorization header", "no Authorization", lambda w: ""),
    Case("token without Bearer", "not Bearer", lambda w: sign_jwt(w.keys.es384, claims())),
    Case("Basic scheme", "not Bearer", lambda w: "Basic dXNlcjpwYXNzd29yZA=="),
    Case("Bearer without token", "malformed Bearer", lambda w: "Bearer "),
]


@pytest.mark.anyio
@pytest.mark.parametrize("case", NEGATIVE_CASES, ids=lambda c: c.id)
async def test_untrusted_tokens_are_refused(world: World, case: Case) -> None:
    verifier = world.verifier()
    authorization = case.authorization(world)
    if case.use_once_first:
        await verifier.verify(authorization, SIGN_PATH)
    with pytest.raises(AuthError) as caught:
        await verifier.verify(authorization, SIGN_PATH)
    assert case.reason in caught.value.reason
    assert world.server.count("/evil/jwks.json") == 0, "an unlisted jku must never be fetched"


@pytest.mark.anyio
async def test_unlisted_jku_is_never_requested(world: World) -> None:
    evil = world.server.url("/evil/jwks.json")
    token = sign_jwt(world.keys.attacker, claims(), jku=evil)
    verifier = world.verifier()
    for _ in range(3):
        with pytest.raises(AuthError, match="jku"):
            await verifier.verify(bearer(token), SIGN_PATH)
    assert world.server.count("/evil/jwks.json") == 0
    assert world.server.requests == [], "nothing at all is fetched for a token refused on its header"


# --------------------------------------------------------------------------------------------- JOSE backend


def test_backend_refuses_hmac_and_none_even_when_the_caller_allows_them(keys: Keys) -> None:
    rsa_jwk = keys.rs384.public_jwk()
    confused = hmac_jwt(keys.rs384.public_pem(), {"alg": "HS256", "typ": "JWT", "kid": keys.rs384.kid}, claims())
    with pytest.raises(jose_backend.SignatureError):
        jose_backend.verify_and_decode(confused, rsa_jwk, ["HS256", "RS384"])
    with pytest.raises(jose_backend.SignatureError):
        jose_backend.verify_and_decode(confused, {"kty": "oct", "k": "c2VjcmV0"}, ["HS256"])
    unsigned = unsigned_jwt({"alg": "none", "typ": "JWT"}, claims()) + "AAAA"
    with pytest.raises(jose_backend.SignatureError):
        jose_backend.verify_and_decode(unsigned, rsa_jwk, ["none"])


def test_backend_checks_the_key_type_when_the_jwk_names_no_alg(keys: Keys) -> None:
    ec_jwk = {k: v for k, v in keys.es384.public_jwk().items() if k != "alg"}
    token = sign_jwt(keys.es384, claims(), alg="RS384")
    with pytest.raises(jose_backend.KeyMismatchError, match="not an RSA key"):
        jose_backend.verify_and_decode(token, ec_jwk, ["RS384"])


@pytest.mark.parametrize("key_name", ["es384", "rs384", "es256", "rs256", "ps384"])
def test_backend_verifies_every_supported_family(keys: Keys, key_name: str) -> None:
    key: SigningKey = getattr(keys, key_name)
    token = sign_jwt(key, claims(sub="round-trip"))
    assert jose_backend.verify_and_decode(token, key.public_jwk(), [key.alg])["sub"] == "round-trip"
    assert key.alg in jose_backend.SUPPORTED_ALGORITHMS


def test_backend_supports_every_algorithm_the_settings_accept() -> None:
    assert SIGNATURE_ALGORITHMS == jose_backend.SUPPORTED_ALGORITHMS


# --------------------------------------------------------------------------------------------- accepted tokens


@pytest.mark.anyio
async def test_es384_token_from_the_jku_issuer_is_trusted(world: World) -> None:
    jti = uuid.uuid4().hex
    token = sign_jwt(world.keys.es384, claims(jti=jti, tenant="t-1"), jku=world.jku)
    client = await world.verifier().verify(bearer(token), SIGN_PATH)
    assert client == TrustedClient(iss=ISS, tenant="t-1", jti=jti, exp=NOW + 300, fhir_servers=(EHR_FHIR,))
    assert world.server.count("/jwks.json") == 1


@pytest.mark.anyio
async def test_rs384_token_from_the_jwks_file_issuer_is_trusted(world: World) -> None:
    token = sign_jwt(world.keys.rs384, claims(iss=FILE_ISS))
    client = await world.verifier().verify(bearer(token), SIGN_PATH)
    assert client.iss == FILE_ISS and client.fhir_servers == ()
    assert world.server.requests == []


@pytest.mark.anyio
async def test_jwks_file_issuer_ignores_a_jku_header_and_never_fetches_it(world: World) -> None:
    evil = world.server.url("/evil/jwks.json")
    token = sign_jwt(world.keys.rs384, claims(iss=FILE_ISS), jku=evil)
    await world.verifier().verify(bearer(token), SIGN_PATH)
    assert world.server.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(
            {"sub": "anything", "unknown": {"nested": [1]}, "nbf": NOW - 10}, id="sub, nbf and unknown claims"
        ),
        pytest.param({"aud": ["https://other.example", AUD]}, id="aud array"),
        pytest.param({"exp": NOW + 900}, id="15-minute token (Epic)"),
        pytest.param({"exp": NOW + 86_400}, id="no cap on lifetime"),
        pytest.param({"exp": NOW - 59, "iat": NOW - 900}, id="expired within leeway"),
        pytest.param({"iat": NOW + 59}, id="iat ahead within leeway"),
        pytest.param({"nbf": NOW + 59}, id="nbf ahead within leeway"),
        pytest.param({"exp": int(NOW) + 300, "iat": int(NOW)}, id="integer dates"),
    ],
)
async def test_valid_variations_are_trusted(world: World, extra: dict[str, Any]) -> None:
    token = sign_jwt(world.keys.es384, claims(**extra))
    assert (await world.verifier().verify(bearer(token), SIGN_PATH)).iss == ISS


@pytest.mark.anyio
async def test_scheme_is_case_insensitive(world: World) -> None:
    token = sign_jwt(world.keys.es384, claims())
    await world.verifier().verify(f"bearer  {token} ", SIGN_PATH)


@pytest.mark.anyio
async def test_discovery_audience_is_the_discovery_url(world: World) -> None:
    token = sign_jwt(world.keys.es384, claims(aud=BASE + "/cds-services"))
    verifier = world.verifier()
    await verifier.verify(bearer(token), "/cds-services")


@pytest.mark.anyio
@pytest.mark.parametrize("key_name", ["es256", "rs256", "ps384"])
async def test_optional_algorithms_work_when_configured(world: World, key_name: str) -> None:
    key: SigningKey = getattr(world.keys, key_name)
    settings = world.settings(algorithms=["ES384", "RS384", "ES256", "RS256", "PS384"])
    await world.verifier(settings).verify(bearer(sign_jwt(key, claims())), SIGN_PATH)


@pytest.mark.anyio
async def test_issuer_algorithm_override_narrows_the_list(world: World) -> None:
    verifier = world.verifier(world.settings(jku_issuer={"algorithms": ["RS384"]}))
    with pytest.raises(AuthError, match="not allowed"):
        await verifier.verify(bearer(sign_jwt(world.keys.es384, claims())), SIGN_PATH)


@pytest.mark.anyio
async def test_extra_audiences_are_accepted_exactly(world: World) -> None:
    alias = "https://proxy.hospital.example/cds/naltrexone"
    verifier = world.verifier(world.settings(jku_issuer={"extra_audiences": [alias]}))
    await verifier.verify(bearer(sign_jwt(world.keys.es384, claims(aud=alias))), SIGN_PATH)
    with pytest.raises(AuthError, match="aud"):
        await verifier.verify(bearer(sign_jwt(world.keys.es384, claims(aud=alias + "/"))), SIGN_PATH)


@pytest.mark.anyio
async def test_tenant_allowlist(world: World) -> None:
    verifier = world.verifier(world.settings(jku_issuer={"tenants": ["hospital-a"]}))
    ok = await verifier.verify(bearer(sign_jwt(world.keys.es384, claims(tenant="hospital-a"))), SIGN_PATH)
    assert ok.tenant == "hospital-a"
    for tenant in ("hospital-b", None, 7):
        with pytest.raises(AuthError, match="tenant"):
            await verifier.verify(bearer(sign_jwt(world.keys.es384, claims(tenant=tenant))), SIGN_PATH)


@pytest.mark.anyio
async def test_leeway_is_configurable(world: World) -> None:
    verifier = world.verifier(world.settings(leeway_s=0))
    with pytest.raises(AuthError, match="expired"):
        await verifier.verify(bearer(sign_jwt(world.keys.es384, claims(exp=NOW - 1))), SIGN_PATH)


# --------------------------------------------------------------------------------------------- replay


@pytest.mark.anyio
async def test_replay_is_per_issuer_and_ends_when_the_token_could_no_longer_be_used(world: World) -> None:
    verifier = world.verifier()
    jti = "shared-jti"
    await verifier.verify(bearer(sign_jwt(world.keys.es384, claims(jti=jti))), SIGN_PATH)
    await verifier.verify(bearer(sign_jwt(world.keys.rs384, claims(jti=jti, iss=FILE_ISS))), SIGN_PATH)
    with pytest.raises(AuthError, match="replay"):
        await verifier.verify(bearer(sign_jwt(world.keys.es384, claims(jti=jti))), SIGN_PATH)
    world.clock.advance(300 + 60 + 1)  # past exp + leeway of the first token
    fresh = claims(jti=jti, exp=world.clock.now + 300, iat=world.clock.now)
    await verifier.verify(bearer(sign_jwt(world.keys.es384, fresh)), SIGN_PATH)


@pytest.mark.anyio
async def test_a_token_refused_for_another_reason_does_not_burn_its_jti(world: World) -> None:
    verifier = world.verifier()
    jti = uuid.uuid4().hex
    with pytest.raises(AuthError, match="aud"):
        await verifier.verify(bearer(sign_jwt(world.keys.es384, claims(jti=jti, aud=BASE))), SIGN_PATH)
    await verifier.verify(bearer(sign_jwt(world.keys.es384, claims(jti=jti))), SIGN_PATH)


@pytest.mark.anyio
async def test_concurrent_replays_let_exactly_one_through(world: World) -> None:
    verifier = world.verifier()
    authorization = bearer(sign_jwt(world.keys.es384, claims()))
    results = await asyncio.gather(
        *(verifier.verify(authorization, SIGN_PATH) for _ in range(10)), return_exceptions=True
    )
    assert sum(isinstance(r, TrustedClient) for r in results) == 1
    assert sum(isinstance(r, AuthError) for r in results) == 9


@pytest.mark.anyio
async def test_a_full_replay_cache_fails_closed(world: World, caplog: pytest.LogCaptureFixture) -> None:
    verifier = world.verifier(world.settings(replay_cache_size=100))
    for _ in range(100):
        await verifier.verify(bearer(sign_jwt(world.keys.es384, claims())), SIGN_PATH)
    with pytest.raises(AuthError, match="replay cache full"):
        await verifier.verify(bearer(sign_jwt(world.keys.es384, claims())), SIGN_PATH)
    assert "replay cache is full" in caplog.text
    world.clock.advance(361)
    fresh = claims(exp=world.clock.now + 300, iat=world.clock.now)
    await verifier.verify(bearer(sign_jwt(world.keys.es384, fresh)), SIGN_PATH)


# --------------------------------------------------------------------------------------------- JWKS cache


@pytest.mark.anyio
async def test_key_rotation_is_picked_up_with_one_refetch(world: World) -> None:
    verifier = world.verifier()
    await verifier.verify(bearer(sign_jwt(world.keys.es384, claims())), SIGN_PATH)
    assert world.server.count("/jwks.json") == 1

    world.server.serve_keys("/jwks.json", world.keys.rotated)  # the EHR rotates
    world.clock.advance(31)  # beyond the minimum refetch interval
    rotated = claims(exp=world.clock.now + 300, iat=world.clock.now)
    client = await verifier.verify(bearer(sign_jwt(world.keys.rotated, rotated)), SIGN_PATH)
    assert client.iss == ISS
    assert world.server.count("/jwks.json") == 2

    # The retired key is gone from the cache, and asking again does not refetch within the interval.
    with pytest.raises(AuthError, match="kid"):
        await verifier.verify(bearer(sign_jwt(world.keys.es384, rotated | {"jti": "x"})), SIGN_PATH)
    assert world.server.count("/jwks.json") == 2


@pytest.mark.anyio
async def test_a_flood_of_unknown_kids_cannot_hammer_the_jwks_url(world: World) -> None:
    verifier = world.verifier()
    await verifier.verify(bearer(sign_jwt(world.keys.es384, claims())), SIGN_PATH)
    for i in range(40):
        world.clock.advance(1)
        forged = claims(exp=world.clock.now + 300, iat=world.clock.now)
        with pytest.raises(AuthError):
            await verifier.verify(bearer(sign_jwt(world.keys.attacker, forged, kid=f"made-up-{i}")), SIGN_PATH)
    assert world.server.count("/jwks.json") == 1 + 1  # the first fetch, then one refetch after 30 s


@pytest.mark.anyio
async def test_jwks_is_refetched_after_its_ttl(world: World) -> None:
    verifier = world.verifier(world.settings(jwks_ttl_s=600))

    async def verify_now() -> None:
        now = world.clock.now
        await verifier.verify(bearer(sign_jwt(world.keys.es384, claims(exp=now + 300, iat=now))), SIGN_PATH)

    await verify_now()
    world.clock.advance(599)
    await verify_now()
    assert world.server.count("/jwks.json") == 1
    world.clock.advance(2)
    await verify_now()
    assert world.server.count("/jwks.json") == 2


@pytest.mark.anyio
async def test_concurrent_requests_share_one_jwks_fetch(world: World) -> None:
    verifier = world.verifier()
    tokens = [bearer(sign_jwt(world.keys.es384, claims())) for _ in range(10)]
    results = await asyncio.gather(*(verifier.verify(t, SIGN_PATH) for t in tokens))
    assert len(results) == 10
    assert world.server.count("/jwks.json") == 1


@pytest.mark.anyio
async def test_unavailable_jwks_refuses_without_hammering_and_recovers(world: World) -> None:
    world.server.serve("/jwks.json", 503, b"down")
    verifier = world.verifier()
    token = sign_jwt(world.keys.es384, claims())
    for _ in range(5):
        with pytest.raises(AuthError, match="kid"):
            await verifier.verify(bearer(token), SIGN_PATH)
    assert world.server.count("/jwks.json") == 1
    world.server.serve_keys("/jwks.json", world.keys.es384)
    world.clock.advance(31)
    await verifier.verify(bearer(token), SIGN_PATH)


@pytest.mark.anyio
async def test_stale_keys_are_kept_when_a_refresh_fails(world: World) -> None:
    verifier = world.verifier(world.settings(jwks_ttl_s=60))
    await verifier.verify(bearer(sign_jwt(world.keys.es384, claims())), SIGN_PATH)
    world.server.serve("/jwks.json", 500, b"oops")
    world.clock.advance(120)
    later = claims(exp=world.clock.now + 300, iat=world.clock.now)
    await verifier.verify(bearer(sign_jwt(world.keys.es384, later)), SIGN_PATH)
    assert world.server.count("/jwks.json") == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        pytest.param(302, b"", {"Location": "/evil/jwks.json"}, id="redirect is not followed"),
        pytest.param(200, b'{"keys": [' + b'{"kid": "x", "kty": "EC"},' * 20_000 + b"{}]}", {}, id="oversized"),
        pytest.param(200, b"<html>", {}, id="not JSON"),
        pytest.param(200, b'{"keys": {}}', {}, id="keys not an array"),
    ],
)
async def test_bad_jwks_responses_give_no_keys(world: World, status: int, body: bytes, headers: dict[str, str]) -> None:
    world.server.serve("/jwks.json", status, body, headers)
    with pytest.raises(AuthError, match="kid"):
        await world.verifier().verify(bearer(sign_jwt(world.keys.es384, claims())), SIGN_PATH)
    assert world.server.count("/evil/jwks.json") == 0


@pytest.mark.anyio
async def test_private_or_unfit_jwks_entries_are_not_used(world: World) -> None:
    private = world.keys.es384.public_jwk(d="AAAA")
    world.server.serve("/jwks.json", 200, json.dumps({"keys": [private]}).encode())
    with pytest.raises(AuthError, match="private"):
        await world.verifier().verify(bearer(sign_jwt(world.keys.es384, claims())), SIGN_PATH)
    world.server.serve("/jwks.json", 200, json.dumps({"keys": [world.keys.es384.public_jwk(use="enc")]}).encode())
    with pytest.raises(AuthError, match="use"):
        await world.verifier().verify(bearer(sign_jwt(world.keys.es384, claims())), SIGN_PATH)


@pytest.mark.anyio
async def test_short_rsa_keys_are_refused(world: World) -> None:
    weak = rsa_key("RS384", kid="weak", bits=1024)
    world.jwks_file.write_text(jwks_document(weak))
    with pytest.raises(AuthError, match="2048"):
        await world.verifier().verify(bearer(sign_jwt(weak, claims(iss=FILE_ISS))), SIGN_PATH)


@pytest.mark.anyio
async def test_jwks_file_is_reread_on_an_unknown_kid(world: World) -> None:
    verifier = world.verifier()
    new_key = rsa_key("RS384", kid="ehr-rs384-2")
    world.jwks_file.write_text(jwks_document(world.keys.rs384, new_key))
    world.clock.advance(31)
    later = claims(iss=FILE_ISS, exp=world.clock.now + 300, iat=world.clock.now)
    await verifier.verify(bearer(sign_jwt(new_key, later)), SIGN_PATH)


@pytest.mark.anyio
async def test_warm_up_fetches_jku_issuers_once(world: World) -> None:
    verifier = world.verifier()
    await verifier.warm_up()
    await verifier.verify(bearer(sign_jwt(world.keys.es384, claims())), SIGN_PATH)
    assert world.server.count("/jwks.json") == 1


def test_unusable_jwks_file_stops_start_up(tmp_path: Path) -> None:
    settings = AuthSettings(issuers=(IssuerSettings(iss=FILE_ISS, jwks_file=tmp_path / "missing.json"),))
    with pytest.raises(AuthConfigError, match=r"missing\.json"):
        JwtVerifier(settings, BASE, httpx.AsyncClient(trust_env=False))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    settings = AuthSettings(issuers=(IssuerSettings(iss=FILE_ISS, jwks_file=broken),))
    with pytest.raises(AuthConfigError, match="not JSON"):
        JwtVerifier(settings, BASE, httpx.AsyncClient(trust_env=False))


@pytest.mark.parametrize("url", ["cds.example.org", "ftp://cds.example.org", "https://cds.example.org/?x=1"])
def test_bad_public_base_url_stops_start_up(tmp_path: Path, url: str) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    settings = AuthSettings(issuers=(IssuerSettings(iss=FILE_ISS, jwks_file=jwks),))
    with pytest.raises(AuthConfigError, match="public_base_url"):
        JwtVerifier(settings, url, httpx.AsyncClient(trust_env=False))


def test_public_base_url_loses_its_trailing_slash() -> None:
    assert normalize_public_base_url("https://cds.example.org/base/") == "https://cds.example.org/base"


# --------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        pytest.param(
            {"issuers": [{"iss": ISS, "jku": "https://e/j"}], "algorithms": ["none"]}, "never allowed", id="none"
        ),
        pytest.param({"issuers": [{"iss": ISS, "jku": "https://e/j"}], "algorithms": ["HS256"]}, "HMAC", id="HS256"),
        pytest.param(
            {"issuers": [{"iss": ISS, "jku": "https://e/j", "algorithms": ["HS512"]}]}, "HMAC", id="issuer HS512"
        ),
        pytest.param(
            {"issuers": [{"iss": ISS, "jku": "https://e/j"}], "algorithms": ["es384"]}, "unsupported", id="case"
        ),
        pytest.param({"issuers": [{"iss": ISS, "jku": "https://e/j"}], "algorithms": []}, "at least one", id="empty"),
        pytest.param({"issuers": [{"iss": ISS}]}, "exactly one of 'jku'", id="no key source"),
        pytest.param(
            {"issuers": [{"iss": ISS, "jku": "https://e/j", "jwks_file": "k.json"}]}, "exactly one", id="two sources"
        ),
        pytest.param({"issuers": [{"iss": ISS, "jku": "http://ehr.example/jwks"}]}, "must use https", id="http jku"),
        pytest.param({"issuers": [{"iss": ISS, "jku": "https://u:p@e/j"}]}, "user information", id="jku userinfo"),
        pytest.param({"issuers": [{"iss": " x", "jku": "https://e/j"}]}, "surrounding", id="iss spaces"),
        pytest.param({"issuers": []}, "no [[auth.issuers]]", id="required without issuers"),
        pytest.param(
            {"issuers": [{"iss": ISS, "jku": "https://e/j"}, {"iss": ISS, "jku": "https://e/k"}]},
            "configured twice",
            id="duplicate issuer",
        ),
        pytest.param(
            {"issuers": [{"iss": ISS, "jku": "https://e/j"}], "leeway_s": 301}, "less than or equal", id="leeway"
        ),
        pytest.param({"issuers": [{"iss": ISS, "jku": "https://e/j"}], "requried": False}, "Extra inputs", id="typo"),
        pytest.param({"required": "no", "issuers": []}, "valid boolean", id="string bool"),
        pytest.param({"issuers": [{"iss": ISS, "jku": "https://e/j"}], "cors_origins": ["*"]}, "'*'", id="cors *"),
        pytest.param(
            {"issuers": [{"iss": ISS, "jku": "https://e/j"}], "cors_origins": ["https://ehr.example/app"]},
            "without path",
            id="cors path",
        ),
        pytest.param({"issuers": [{"iss": ISS, "jku": "https://e/j", "tenants": []}]}, "reject every", id="tenants []"),
        pytest.param(
            {"issuers": [{"iss": ISS, "jku": "https://e/j", "fhir_servers": ["https://ehr.example/fhir?x=1"]}]},
            "query",
            id="fhir server with query",
        ),
        pytest.param(
            {"issuers": [{"iss": ISS, "jku": "https://e/j", "extra_audiences": ["cds/naltrexone"]}]},
            "absolute URL",
            id="relative audience",
        ),
    ],
)
def test_invalid_auth_settings_are_explained(auth: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        AuthSettings.model_validate(auth)
    assert message in str(caught.value)


def test_auth_settings_defaults_and_normalisation() -> None:
    settings = AuthSettings.model_validate(
        {
            "issuers": [
                {
                    "iss": ISS,
                    "jku": "https://ehr.example.org/jwks",
                    "fhir_servers": ["HTTPS://EHR.example.org:443/fhir/"],
                }
            ],
            "cors_origins": ["HTTPS://EHR.example.org:443/", "http://localhost:3000"],
        }
    )
    assert settings.required is True
    assert settings.algorithms == ("ES384", "RS384")
    assert (settings.leeway_s, settings.jwks_ttl_s) == (60, 3600)
    assert settings.issuers[0].fhir_servers == ("https://ehr.example.org/fhir",)
    assert settings.cors_origins == ("https://ehr.example.org", "http://localhost:3000")
    with pytest.raises(ValidationError):
        settings.leeway_s = 5  # type: ignore[misc]
    assert AuthSettings(required=False).issuers == ()


def _toml_examples() -> list[str]:
    text = (REPO / "docs" / "connecting-an-ehr.md").read_text(encoding="utf-8")
    return re.findall(r"```toml\n(.*?)```", text, flags=re.DOTALL)


def test_documented_example_configs_are_valid() -> None:
    examples = _toml_examples()
    assert len(examples) == 2, "the production example and the sandbox (development) example"
    for example in examples:
        config = tomllib.loads(example)
        normalize_public_base_url(config["public_base_url"])
        auth = AuthSettings.model_validate(config["auth"])
        assert auth.required
        for prefix in config["fhir"]["allowed_servers"]:
            validate_server_prefix(prefix)
    sandbox = AuthSettings.model_validate(tomllib.loads(examples[1])["auth"])
    assert sandbox.issuers[0].iss == "https://sandbox.cds-hooks.org"
    assert sandbox.issuers[0].jku == "https://sandbox.cds-hooks.org/.well-known/jwks.json"


# --------------------------------------------------------------------------------------------- SSRF guard

ALLOWED = [
    "https://ehr.example/fhir",
    "http://127.0.0.1",
    "https://ehr2.example:8443/r4/",
    "http://legacy.example/fhir",
]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://ehr.example/fhir", True),
        ("https://ehr.example/fhir/", True),
        ("https://ehr.example/fhir/R4", True),
        ("https://ehr.example/fhir/Observation?patient=1&code=http%3A%2F%2Floinc.org%7C1", True),
        ("https://EHR.example/fhir/Patient/1", True),
        ("https://ehr.example:443/fhir", True),
        ("https://ehr.example/fhirevil", False),
        ("https://ehr.example/fhi", False),
        ("https://ehr.example/", False),
        ("https://ehr.example", False),
        ("https://ehr.example.evil.com/fhir", False),
        ("https://evil.com/ehr.example/fhir", False),
        ("https://ehr.example./fhir", False),
        ("http://ehr.example/fhir", False),  # no downgrade from an https prefix
        ("https://ehr.example:8443/fhir", False),
        ("https://user:pw@ehr.example/fhir", False),
        ("https://ehr.example@evil.com/fhir", False),
        ("https://ehr.example/fhir/../admin", False),
        ("https://ehr.example/fhir/%2e%2e/admin", False),
        ("https://ehr.example/fhir%2F..%2Fadmin", False),
        ("https://ehr.example\\@evil.com/fhir", False),
        (" https://ehr.example/fhir", False),
        ("https://ehr.example/fhir//x", False),
        ("ftp://ehr.example/fhir", False),
        ("/fhir/Patient/1", False),
        ("", False),
        ("https://ehr.example:99999/fhir", False),
        ("http://127.0.0.1:9999/fhir/R4/Patient/1", True),  # loopback prefix without a port: any port
        ("http://127.0.0.1/fhir", True),
        ("https://127.0.0.1:9999/fhir", False),
        ("http://127.0.0.2:9999/fhir", False),
        ("http://localhost:9999/fhir", False),
        ("https://ehr2.example:8443/r4/Patient", True),
        ("https://ehr2.example/r4/Patient", False),  # the prefix names a port: only that one
        ("http://legacy.example/fhir/Patient/1", True),  # explicitly http
        ("http://legacy.example:8080/fhir/Patient/1", False),
    ],
)
def test_fhir_server_allowlist(url: str, allowed: bool) -> None:
    assert fhir_server_allowed(url, ALLOWED) is allowed


def test_empty_allowlist_allows_nothing() -> None:
    assert not fhir_server_allowed("https://ehr.example/fhir", [])


@pytest.mark.parametrize(
    ("prefix", "canonical"),
    [
        ("HTTPS://EHR.Example/fhir/", "https://ehr.example/fhir"),
        ("https://ehr.example:443/fhir", "https://ehr.example/fhir"),
        ("http://[::1]:8080/fhir", "http://[::1]:8080/fhir"),
        ("http://127.0.0.1", "http://127.0.0.1"),
    ],
)
def test_server_prefixes_are_canonicalised(prefix: str, canonical: str) -> None:
    assert validate_server_prefix(prefix) == canonical


@pytest.mark.parametrize(
    "prefix",
    ["https://ehr.example/fhir?x=1", "https://u@ehr.example/fhir", "ftp://ehr.example", "https://e/a/../b", "ehr"],
)
def test_bad_server_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(prefix))):
        validate_server_prefix(prefix)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("0.0.0.0", False),  # noqa: S104 - a test value, nothing binds to it
        ("localhost.evil.com", False),
        ("ehr.example", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


# --------------------------------------------------------------------------------------------- FastAPI


ORIGIN = "https://ehr-web.example.org"
PATIENT_SECRET = "patient-Zq8-secret"
ACCESS_TOKEN = "fhir-access-token-Zq8"


def build_app(
    verifier: JwtVerifier | None, cors_origins: list[str] | None = None, auth_required: bool | None = None
) -> FastAPI:
    app = FastAPI()
    install_auth(app, verifier, [ORIGIN] if cors_origins is None else cors_origins, auth_required=auth_required)

    @app.get("/cds-services")
    async def discovery(client: TrustedClientDep) -> dict[str, Any]:
        return {"services": [], "iss": client.iss if client else None}

    @app.post("/cds-services/{service_id}")
    async def service(service_id: str, client: TrustedClientDep) -> dict[str, Any]:
        return {"cards": [], "iss": client.iss if client else None}

    return app


@pytest.fixture
async def api(world: World) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(world.verifier())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def hook_body() -> dict[str, Any]:
    return {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": EHR_FHIR,
        "fhirAuthorization": {"access_token": ACCESS_TOKEN, "token_type": "Bearer", "scope": "patient/*.read"},
        "context": {"patientId": PATIENT_SECRET, "userId": "Practitioner/1", "draftOrders": {}},
    }


def _headers(authorization: str | None, **extra: str) -> dict[str, str]:
    return ({"Authorization": authorization} if authorization is not None else {}) | extra


@pytest.mark.anyio
async def test_valid_tokens_reach_discovery_and_services(api: httpx.AsyncClient, world: World) -> None:
    token = sign_jwt(world.keys.es384, claims(aud=BASE + "/cds-services"))
    r = await api.get("/cds-services", headers=_headers(bearer(token)))
    assert r.status_code == 200 and r.json()["iss"] == ISS
    token = sign_jwt(world.keys.rs384, claims(iss=FILE_ISS))
    r = await api.post(SIGN_PATH, json=hook_body(), headers=_headers(bearer(token)))
    assert r.status_code == 200 and r.json()["iss"] == FILE_ISS


@pytest.mark.anyio
@pytest.mark.parametrize("case", NEGATIVE_CASES, ids=lambda c: c.id)
async def test_refused_requests_get_a_bare_401(api: httpx.AsyncClient, world: World, case: Case) -> None:
    authorization = case.authorization(world)
    if case.use_once_first:
        assert (await api.post(SIGN_PATH, json=hook_body(), headers=_headers(authorization))).status_code == 200
    r = await api.post(SIGN_PATH, json=hook_body(), headers=_headers(authorization))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json() == UNAUTHORIZED_OUTCOME, "the body must not say why"


@pytest.mark.anyio
async def test_audience_comes_from_public_base_url_not_the_host_header(api: httpx.AsyncClient, world: World) -> None:
    forged_host = {"Host": "evil.example"}
    token = sign_jwt(world.keys.es384, claims(aud="http://evil.example" + SIGN_PATH))
    r = await api.post(SIGN_PATH, json=hook_body(), headers=_headers(bearer(token), **forged_host))
    assert r.status_code == 401
    token = sign_jwt(world.keys.es384, claims())
    r = await api.post(SIGN_PATH, json=hook_body(), headers=_headers(bearer(token), **forged_host))
    assert r.status_code == 200


@pytest.mark.anyio
async def test_root_path_behind_a_proxy_is_part_of_the_audience(world: World) -> None:
    verifier = JwtVerifier(world.settings(), BASE + "/naltrexone", world.http, clock=world.clock)
    transport = httpx.ASGITransport(app=build_app(verifier), root_path="/naltrexone")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        token = sign_jwt(world.keys.es384, claims(aud=BASE + "/naltrexone" + SIGN_PATH))
        r = await client.post("/naltrexone" + SIGN_PATH, json=hook_body(), headers=_headers(bearer(token)))
        assert r.status_code == 200


@pytest.mark.anyio
async def test_two_authorization_headers_are_refused(api: httpx.AsyncClient, world: World) -> None:
    good = bearer(sign_jwt(world.keys.es384, claims()))
    headers = [("Authorization", good), ("Authorization", "Bearer junk")]
    r = await api.post(SIGN_PATH, json=hook_body(), headers=headers)
    assert r.status_code == 401


@pytest.mark.anyio
async def test_cors_preflight_needs_no_token(api: httpx.AsyncClient) -> None:
    r = await api.options(
        SIGN_PATH,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert r.headers["access-control-allow-methods"] == "GET, POST, OPTIONS"
    allowed_headers = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "authorization"} <= allowed_headers


@pytest.mark.anyio
async def test_cors_preflight_from_an_unlisted_origin_is_not_allowed(api: httpx.AsyncClient) -> None:
    r = await api.options(
        SIGN_PATH, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert r.status_code == 400
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.anyio
async def test_a_401_still_carries_cors_headers_for_an_allowed_origin(api: httpx.AsyncClient) -> None:
    r = await api.post(SIGN_PATH, json=hook_body(), headers={"Origin": ORIGIN})
    assert r.status_code == 401
    assert r.headers["access-control-allow-origin"] == ORIGIN


@pytest.mark.anyio
async def test_no_cors_origins_by_default() -> None:
    transport = httpx.ASGITransport(app=build_app(None, cors_origins=[]))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        r = await client.options(SIGN_PATH, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.anyio
async def test_auth_off_trusts_everyone_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="cds_service.auth")
    transport = httpx.ASGITransport(app=build_app(None))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        r = await client.post(SIGN_PATH, json=hook_body())
    assert r.status_code == 200 and r.json()["iss"] is None
    assert "authentication is OFF" in caplog.text


@pytest.mark.anyio
async def test_a_route_without_install_auth_fails_closed() -> None:
    app = FastAPI()

    @app.get("/cds-services")
    async def discovery(client: TrustedClientDep) -> dict[str, Any]:
        return {"services": []}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        with pytest.raises(RuntimeError, match="install_auth"):
            await client.get("/cds-services", headers={"Authorization": "Bearer x"})


@pytest.mark.anyio
async def test_a_required_verifier_that_was_never_set_fails_closed(world: World) -> None:
    app = build_app(None, auth_required=True)  # e.g. the lifespan that was meant to set it did not run
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        with pytest.raises(RuntimeError, match="verifier is not set"):
            await client.post(SIGN_PATH, json=hook_body())
        app.state.verifier = world.verifier()  # set later, as a lifespan would
        token = sign_jwt(world.keys.es384, claims())
        r = await client.post(SIGN_PATH, json=hook_body(), headers=_headers(bearer(token)))
        assert r.status_code == 200 and r.json()["iss"] == ISS


# --------------------------------------------------------------------------------------------- log hygiene


@pytest.mark.anyio
async def test_tokens_claims_and_patient_data_never_reach_the_logs(
    api: httpx.AsyncClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    jti = "jti-" + uuid.uuid4().hex
    sub = "Practitioner/secret-" + uuid.uuid4().hex[:8]
    good = sign_jwt(world.keys.es384, claims(jti=jti, sub=sub))
    expired = sign_jwt(world.keys.es384, claims(exp=NOW - 3600, iat=NOW - 7200, sub=sub))
    wrong_aud = sign_jwt(world.keys.es384, claims(aud="https://elsewhere.example", sub=sub))
    tampered = replace_payload(good, claims(sub=sub, jti=jti + "-2"))
    forged = sign_jwt(world.keys.attacker, claims(sub=sub))
    tokens = [good, good, expired, wrong_aud, tampered, forged]  # good twice: the second is a replay
    statuses = []
    for token in tokens:
        r = await api.post(SIGN_PATH, json=hook_body(), headers=_headers(bearer(token)))
        statuses.append(r.status_code)
    assert statuses == [200, 401, 401, 401, 401, 401]

    logged = caplog.text + "\n".join(str(record.__dict__) + record.getMessage() for record in caplog.records)
    assert "refused" in logged, "refusals are logged"
    secrets = [PATIENT_SECRET, ACCESS_TOKEN, jti, sub]
    for token in tokens:
        secrets.append(token)
        secrets.extend(token.split("."))
    for secret in secrets:
        assert secret not in logged
