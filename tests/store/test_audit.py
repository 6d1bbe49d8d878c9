"""The audit trail: every hook call leaves one PHI-free row (successes and failures), its cards match the answer,
retention removes old rows, and neither the database nor the log ever holds patient data or tokens."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.hooks.models import FeedbackItem
from cds_service.observe import CallRecord, CardRecord
from cds_service.store.observer import StoreObserver
from cds_service.store.schema import metadata
from cds_service.store.writes import (
    NOT_A_UUID,
    FeedbackRow,
    audit_hook_instance,
    prune_audit,
    write_calls,
    write_feedback,
)
from tests.builders import (
    NOW,
    PATIENT_ID,
    bundle,
    empty_prefetch,
    hook_request,
    medication_request,
    naltrexone_draft,
)
from tests.store.conftest import all_rows, flush

SIGN = "/cds-services/naltrexone-order-sign"


class Recorder:
    """A CallObserver that keeps what the app reported, to compare with what the store wrote."""

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []

    async def on_call(self, record: CallRecord) -> None:
        self.calls.append(record)

    async def on_feedback(self, service_id: str, items: list[FeedbackItem]) -> None:
        return None


@pytest.fixture
def recorded(settings: Settings) -> Iterator[tuple[TestClient, Recorder]]:
    recorder = Recorder()
    app = create_app(settings, clock=lambda: NOW, observers=[recorder])
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, recorder


def test_every_hook_call_leaves_a_row(recorded: tuple[TestClient, Recorder], engine: Engine) -> None:
    client, recorder = recorded
    ok = hook_request(prefetch=empty_prefetch())
    ok["hookInstance"] = instance_ok = str(uuid.uuid4())
    bad = {"hook": "order-sign", "hookInstance": (instance_bad := str(uuid.uuid4())), "context": "not an object"}
    missing = hook_request()  # no prefetch and no fhirServer: 412
    missing["hookInstance"] = instance_missing = str(uuid.uuid4())
    answers = [client.post(SIGN, json=body) for body in (ok, bad, missing)]
    assert [a.status_code for a in answers] == [200, 400, 412]
    flush(client)

    rows = sorted(all_rows(engine, "hook_calls"), key=lambda r: r["id"])
    assert [(r["hook_instance"], r["status_code"], r["error"]) for r in rows] == [
        (instance_ok, 200, None),
        (instance_bad, 400, "invalid"),
        (instance_missing, 412, "required"),
    ]
    assert all(r["service_id"] == "naltrexone-order-sign" for r in rows)
    assert all(r["started_at"] == NOW for r in rows)
    # each column is what the app reported to its observers
    for row, record in zip(rows, recorder.calls, strict=True):
        assert row["latency_ms"] == pytest.approx(record.latency_ms)
        assert row["unavailable"] == sorted(record.unavailable)
        assert row["provenance"] == dict(record.provenance)
        assert row["fetch_errors"] == record.fetch_errors
    assert set(rows[0]["provenance"].values()) == {"prefetch"}


def test_cards_match_the_response(app_client: TestClient, engine: Engine) -> None:
    r = app_client.post(SIGN, json=hook_request(prefetch=empty_prefetch()))
    assert r.status_code == 200
    cards = r.json()["cards"]
    assert cards
    flush(app_client)
    [call] = all_rows(engine, "hook_calls")
    stored = {(c["rule_id"], c["indicator"], c["card_uuid"]) for c in all_rows(engine, "call_cards")}
    assert stored == {(c["source"]["topic"]["code"], c["indicator"], c["uuid"]) for c in cards}
    assert {c["call_id"] for c in all_rows(engine, "call_cards")} == {call["id"]}


def test_fetched_data_and_fetch_errors_are_recorded(settings: Settings, engine: Engine) -> None:
    """Prefetch without the liver tests: the service fetches them itself (here the FHIR server fails)."""

    def fhir(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"resourceType": "OperationOutcome", "issue": []})

    prefetch = empty_prefetch()
    del prefetch["liverTests"]
    body = hook_request(prefetch=prefetch, fhir_server="http://127.0.0.1:9/fhir")
    recorder = Recorder()
    app = create_app(
        settings, clock=lambda: NOW, http=httpx.AsyncClient(transport=httpx.MockTransport(fhir)), observers=[recorder]
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post(SIGN, json=body)
        flush(client)
    [record] = recorder.calls
    [row] = all_rows(engine, "hook_calls")
    assert row["status_code"] == r.status_code
    assert record.fetch_errors >= 1
    assert row["fetch_errors"] == record.fetch_errors
    assert row["unavailable"] == sorted(record.unavailable)
    assert "liver-tests" in row["unavailable"]
    assert row["provenance"] == dict(record.provenance)


# -- retention ------------------------------------------------------------------------------------------------------
def _call(days_ago: float, card: str) -> CallRecord:
    return CallRecord(
        hook_instance=str(uuid.uuid4()),
        service_id="naltrexone-order-sign",
        started_at=NOW - timedelta(days=days_ago),
        latency_ms=4.0,
        status_code=200,
        cards=(CardRecord("opioid-active", "critical", card),),
    )


def test_retention_removes_old_calls_and_their_cards_but_keeps_feedback(engine: Engine) -> None:
    write_calls(engine, [_call(400, "old-card"), _call(10, "new-card")])
    write_feedback(engine, "naltrexone-order-sign", [FeedbackRow("old-card", "overridden", NOW - timedelta(400))], NOW)
    assert prune_audit(engine, NOW - timedelta(days=365), chunk=1) == 1
    assert [c["card_uuid"] for c in all_rows(engine, "call_cards")] == ["new-card"]
    assert len(all_rows(engine, "hook_calls")) == 1
    [kept] = all_rows(engine, "feedback")
    assert kept["rule_id"] == "opioid-active"  # still attributable to its rule


def test_the_store_prunes_at_start_up(engine: Engine) -> None:
    write_calls(engine, [_call(40, "old-card"), _call(2, "new-card")])

    async def run() -> None:
        observer = StoreObserver(engine, retention_days=30, clock=lambda: NOW)
        await observer.start()
        try:
            for _ in range(500):  # the pruner runs in the background
                if len(all_rows(engine, "hook_calls")) == 1:
                    break
                await asyncio.sleep(0.01)
        finally:
            await observer.stop()

    asyncio.run(run())
    assert [c["card_uuid"] for c in all_rows(engine, "call_cards")] == ["new-card"]


# -- no PHI ---------------------------------------------------------------------------------------------------------
PHI = {
    "patient_id": "PHIPAT4417",
    "family": "Zebulonne",
    "given": "Quixotea",
    "mrn": "MRN99887766",
    "birth_date": "1961-07-13",
    "token": "tokSeCrEt5150",
    "user": "PHIDOC8812",
    "encounter": "PHIENC3303",
    "resource": "PHIMED7007",
    "draft": "PHIDRAFT6006",
    "server": "phi-fhir-host",
    "note": "lives at 12 Quince Lane",
}


def _phi_requests() -> list[dict[str, Any]]:
    patient = {
        "resourceType": "Patient",
        "id": PHI["patient_id"],
        "identifier": [{"system": "urn:mrn", "value": PHI["mrn"]}],
        "name": [{"family": PHI["family"], "given": [PHI["given"]]}],
        "gender": "female",
        "birthDate": PHI["birth_date"],
        "address": [{"text": PHI["note"]}],
    }
    opioid = medication_request(id=PHI["resource"], note=[{"text": PHI["note"]}])
    opioid["subject"] = {"reference": f"Patient/{PHI['patient_id']}", "display": f"{PHI['given']} {PHI['family']}"}
    draft = naltrexone_draft(id=PHI["draft"], note=[{"text": PHI["note"]}])
    draft["subject"] = {"reference": f"Patient/{PHI['patient_id']}"}
    prefetch = empty_prefetch()
    prefetch["patient"] = patient
    prefetch["medicationRequests"] = bundle(opioid)

    def personalise(body: dict[str, Any], hook_instance: str) -> dict[str, Any]:
        body["hookInstance"] = hook_instance
        body["context"].update(
            {"patientId": PHI["patient_id"], "userId": f"Practitioner/{PHI['user']}", "encounterId": PHI["encounter"]}
        )
        return body

    answered = personalise(
        hook_request(
            draft_orders=[draft],
            prefetch=prefetch,
            fhir_server=f"http://{PHI['server']}.localhost/fhir",
            access_token=PHI["token"],
        ),
        str(uuid.uuid4()),
    )
    answered["fhirAuthorization"]["patient"] = PHI["patient_id"]
    invalid = personalise(hook_request(draft_orders=[draft], access_token=PHI["token"]), f"{PHI['mrn']}-instance")
    invalid["fhirServer"] = f"not-a-url-{PHI['server']}"
    unfetchable = personalise(hook_request(draft_orders=[draft]), str(uuid.uuid4()))
    return [answered, invalid, unfetchable]


def test_no_audit_row_or_log_line_holds_phi(
    app_client: TestClient, engine: Engine, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    statuses = [app_client.post(SIGN, json=body).status_code for body in _phi_requests()]
    assert statuses == [200, 400, 412]
    cards = app_client.post(SIGN, json=_phi_requests()[0]).json()["cards"]
    feedback = {
        "feedback": [
            {"card": c["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-21T15:00:00Z"} for c in cards
        ]
    }
    assert app_client.post(f"{SIGN}/feedback", json=feedback).status_code == 200
    flush(app_client)

    dumped = {table: json.dumps(all_rows(engine, table), default=str) for table in metadata.tables}
    assert len(all_rows(engine, "hook_calls")) == 4
    needles = [v.lower() for v in PHI.values()]
    for table, text in dumped.items():
        leaked = [n for n in needles if n in text.lower()]
        assert not leaked, f"{table} holds {leaked}"
    assert NOT_A_UUID in dumped["hook_calls"]
    if database_url.startswith("sqlite"):  # also the raw file and its WAL: nothing hides in free pages
        path = Path(database_url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes().lower() for p in path.parent.glob(path.name + "*"))
        assert not [n for n in needles if n.encode() in raw]
    log_text = "\n".join([caplog.text, *(repr(r.args) for r in caplog.records)]).lower()
    assert not [n for n in needles if n in log_text], caplog.text


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("D1577C69-DFBE-44AD-BA6D-3E05E953B2EA", "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"),
        ("(unreadable)", "(unreadable)"),
        ("MRN-1234", NOT_A_UUID),
        ("d1577c69-dfbe-44ad-ba6d-3e05e953b2ea; Jane Doe", NOT_A_UUID),
        ("", NOT_A_UUID),
    ],
)
def test_only_uuids_are_kept_as_hook_instance(sent: str, stored: str) -> None:
    assert audit_hook_instance(sent) == stored


def test_patient_id_of_the_builders_is_not_special() -> None:
    # guard against a vacuous PHI test: our needles are not the builders' defaults
    assert PATIENT_ID not in PHI.values()
