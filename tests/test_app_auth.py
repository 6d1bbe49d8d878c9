"""Auth on, end to end through the real app: a signed EHR token gets cards; nothing secret reaches the logs."""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cds_service.config import Settings
from tests.auth_helpers import ec_key, jwks_document, sign_jwt
from tests.builders import hook_request, medication_request, prefetch_with, topics

BASE = "https://cds.example-hospital.org"
ISS = "https://ehr.example.com"
SIGN = "/cds-services/naltrexone-order-sign"


@pytest.fixture
def key() -> Any:
    return ec_key("ES384", kid="ehr-key-1")


@pytest.fixture
def app_client(tmp_path: Path, key: Any, make_client: Any) -> TestClient:
    jwks = tmp_path / "ehr-jwks.json"
    jwks.write_text(jwks_document(key))
    settings = Settings.model_validate(
        {
            "public_base_url": BASE,
            "auth": {
                "required": True,
                "issuers": [{"iss": ISS, "jwks_file": str(jwks)}],
                "cors_origins": ["https://ehr.example.com"],
            },
        }
    )
    client: TestClient = make_client(settings, transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    return client


def _token(key: Any, path: str, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISS, "aud": BASE + path, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4()), "sub": "ehr"}
    body.update(claims)
    return sign_jwt(key, body)


def test_no_token_is_a_bare_401(app_client: TestClient) -> None:
    r = app_client.get("/cds-services")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["issue"][0]["diagnostics"] == "Unauthorized"


def test_signed_token_gets_cards_and_a_replay_does_not(app_client: TestClient, key: Any) -> None:
    token = _token(key, SIGN)
    body = hook_request(prefetch=prefetch_with(medicationRequests=[medication_request()]))
    r = app_client.post(SIGN, json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert topics(r.json())[0] == "opioid-active"
    replay = app_client.post(SIGN, json=body, headers={"Authorization": f"Bearer {token}"})
    assert replay.status_code == 401


def test_token_for_another_endpoint_is_refused(app_client: TestClient, key: Any) -> None:
    token = _token(key, "/cds-services")  # the audience is the discovery URL, not the service called
    r = app_client.post(SIGN, json=hook_request(prefetch=prefetch_with()), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_discovery_and_feedback_need_a_token_too(app_client: TestClient, key: Any) -> None:
    assert (
        app_client.get("/cds-services", headers={"Authorization": f"Bearer {_token(key, '/cds-services')}"}).status_code
        == 200
    )
    feedback = {"feedback": [{"card": "c1", "outcome": "accepted", "outcomeTimestamp": "2026-11-21T10:00:00Z"}]}
    assert app_client.post(f"{SIGN}/feedback", json=feedback).status_code == 401


def test_cors_preflight_needs_no_token(app_client: TestClient) -> None:
    r = app_client.options(
        SIGN,
        headers={
            "Origin": "https://ehr.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type, Authorization",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://ehr.example.com"
    assert set(r.headers["access-control-allow-methods"].replace(" ", "").split(",")) == {"GET", "POST", "OPTIONS"}


def test_no_token_access_token_or_patient_data_in_the_logs(
    app_client: TestClient, key: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_access_token = "AT-very-secret-4f9c2b"
    patient_name = "Zebulon Quartermaine-Fictional"
    med = medication_request(id="mr-distinctive-77", text=f"oxycodone for {patient_name}")
    body = hook_request(
        prefetch=prefetch_with(medicationRequests=[med]),
        fhir_server="https://fhir.not-allowlisted.example/R4",
        access_token=secret_access_token,
    )
    del body["prefetch"]["conditions"]  # forces a (refused) fallback fetch path with the access token in hand
    good = _token(key, SIGN)
    r = app_client.post(SIGN, json=body, headers={"Authorization": f"Bearer {good}"})
    assert r.status_code == 200
    bad = good[:-4] + "AAAA"
    assert app_client.post(SIGN, json=body, headers={"Authorization": f"Bearer {bad}"}).status_code == 401
    logged = "\n".join(rec.getMessage() + " " + json.dumps(rec.args, default=str) for rec in caplog.records)
    assert caplog.records, "the request was logged at all"
    for secret in (good, bad, good.split(".")[1], secret_access_token, patient_name, "mr-distinctive-77", "pat-1"):
        assert secret not in logged
