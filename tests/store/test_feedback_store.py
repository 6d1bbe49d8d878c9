"""Feedback storage: every item stored, resends idempotent, unknown cards flagged, bad bodies 400, storage failure
503, two concurrent writers lose nothing, and a 200 survives a SIGKILL of the service right after it.

test_postgres.py re-runs this module against a real local PostgreSQL (it overrides ``database_url``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.observe import CallRecord, CardRecord
from cds_service.store.db import create_store_engine, upgrade
from cds_service.store.writes import FeedbackRow, write_calls, write_feedback
from tests.builders import NOW, empty_prefetch, hook_request
from tests.store.conftest import QUIET_POLICY, all_rows, flush

REPO = Path(__file__).resolve().parents[2]
SIGN = "/cds-services/naltrexone-order-sign"
SELECT = "/cds-services/naltrexone-order-select"


def _cards(client: TestClient) -> list[dict[str, Any]]:
    r = client.post(SIGN, json=hook_request(prefetch=empty_prefetch()))
    assert r.status_code == 200, r.text
    cards: list[dict[str, Any]] = r.json()["cards"]
    assert cards, "this request is expected to produce at least one card"
    return cards


def _item(card: str, outcome: str = "overridden", when: str = "2026-11-21T15:01:00Z", **extra: Any) -> dict[str, Any]:
    return {"card": card, "outcome": outcome, "outcomeTimestamp": when, **extra}


def _post(client: TestClient, *items: dict[str, Any], path: str = SIGN) -> Any:
    return client.post(f"{path}/feedback", json={"feedback": list(items)})


def test_every_field_of_an_item_is_stored(app_client: TestClient, engine: Engine) -> None:
    card = _cards(app_client)[0]
    item = _item(
        card["uuid"],
        acceptedSuggestions=[{"id": "sugg-1"}],
        overrideReason={
            "reason": {"code": "patient-informed", "system": "urn:site:reasons", "display": "Patient informed"},
            "userComment": "discussed risks",
        },
    )
    assert _post(app_client, item).status_code == 200
    [row] = all_rows(engine, "feedback")
    assert row["card_uuid"] == card["uuid"]
    assert row["service_id"] == "naltrexone-order-sign"
    assert row["rule_id"] == card["source"]["topic"]["code"]
    assert row["outcome"] == "overridden"
    assert row["outcome_timestamp"] == datetime(2026, 11, 21, 15, 1, tzinfo=UTC)
    assert row["accepted_suggestions"] == ["sugg-1"]
    assert (row["override_code"], row["override_system"], row["override_display"]) == (
        "patient-informed",
        "urn:site:reasons",
        "Patient informed",
    )
    assert row["user_comment"] == "discussed risks"
    assert row["unknown_card"] is False
    assert row["received_at"].tzinfo is not None


def test_resending_the_same_item_stores_it_once(app_client: TestClient, engine: Engine) -> None:
    card = _cards(app_client)[0]["uuid"]
    for when in (
        "2026-11-21T15:01:00Z",
        "2026-11-21T15:01:00Z",
        "2026-11-21T15:01:00+00:00",
        "2026-11-21T10:01:00-05:00",
    ):
        assert _post(app_client, _item(card, when=when)).status_code == 200
    # the same item twice inside one POST, too
    assert _post(app_client, _item(card), _item(card)).status_code == 200
    assert len(all_rows(engine, "feedback")) == 1


def test_a_changed_decision_is_a_new_item(app_client: TestClient, engine: Engine) -> None:
    card = _cards(app_client)[0]["uuid"]
    assert _post(app_client, _item(card, "accepted", "2026-11-21T15:01:00Z")).status_code == 200
    assert _post(app_client, _item(card, "overridden", "2026-11-21T15:01:00Z")).status_code == 200
    assert _post(app_client, _item(card, "overridden", "2026-11-21T15:05:00Z")).status_code == 200
    rows = all_rows(engine, "feedback")
    assert sorted((r["outcome"], r["outcome_timestamp"].minute) for r in rows) == [
        ("accepted", 1),
        ("overridden", 1),
        ("overridden", 5),
    ]


def test_same_key_with_another_comment_keeps_the_first(app_client: TestClient, engine: Engine) -> None:
    card = _cards(app_client)[0]["uuid"]
    first = _item(card, overrideReason={"userComment": "first"})
    second = _item(card, overrideReason={"userComment": "second"})
    assert _post(app_client, first).status_code == 200
    assert _post(app_client, second).status_code == 200
    assert [r["user_comment"] for r in all_rows(engine, "feedback")] == ["first"]


def test_unknown_cards_are_accepted_and_flagged(app_client: TestClient, engine: Engine) -> None:
    card = _cards(app_client)[0]["uuid"]
    stranger = str(uuid.uuid4())
    assert _post(app_client, _item(card), _item(stranger)).status_code == 200
    # a card issued by order-sign is unknown to order-select
    assert _post(app_client, _item(card, "accepted"), path=SELECT).status_code == 200
    flags = {(r["card_uuid"], r["service_id"]): (r["unknown_card"], r["rule_id"]) for r in all_rows(engine, "feedback")}
    assert flags[(card, "naltrexone-order-sign")][0] is False
    assert flags[(card, "naltrexone-order-sign")][1] is not None
    assert flags[(stranger, "naltrexone-order-sign")] == (True, None)
    assert flags[(card, "naltrexone-order-select")] == (True, None)


def test_feedback_arriving_before_its_audit_row_is_corrected(engine: Engine) -> None:
    card = str(uuid.uuid4())
    row = FeedbackRow(card_uuid=card, outcome="overridden", outcome_timestamp=NOW)
    result = write_feedback(engine, "naltrexone-order-sign", [row], NOW)
    assert (result.stored, result.unknown_cards) == (1, 1)
    record = CallRecord(
        hook_instance=str(uuid.uuid4()),
        service_id="naltrexone-order-sign",
        started_at=NOW,
        latency_ms=5.0,
        status_code=200,
        cards=(CardRecord("opioid-active", "critical", card),),
    )
    write_calls(engine, [record])
    [stored] = all_rows(engine, "feedback")
    assert (stored["unknown_card"], stored["rule_id"]) == (False, "opioid-active")


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"{not json", None),
        (b"", None),
        (b'{"feedback": []}', "feedback"),
        (b'{"nothing": 1}', "feedback"),
        (b'{"feedback": [{"outcome": "accepted", "outcomeTimestamp": "2026-11-21T10:00:00Z"}]}', "feedback.0.card"),
        (b'{"feedback": [{"card": "c", "outcome": "maybe", "outcomeTimestamp": "2026-11-21T10:00:00Z"}]}', None),
        (b'{"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "yesterday"}]}', None),
        (b'{"feedback": [{"card": "c", "outcome": "accepted"}]}', "feedback.0.outcomeTimestamp"),
        (
            b'{"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "0001-01-01T00:00:00+00:52"}]}',
            None,
        ),
        (
            b'{"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "9999-12-31T23:59:59-01:00"}]}',
            None,
        ),
    ],
    ids=[
        "not-json",
        "empty",
        "empty-list",
        "no-feedback",
        "no-card",
        "bad-outcome",
        "bad-timestamp",
        "no-timestamp",
        "before-year-1-in-utc",
        "after-year-9999-in-utc",
    ],
)
def test_bad_bodies_are_400_and_store_nothing(
    app_client: TestClient, engine: Engine, body: bytes, where: str | None
) -> None:
    r = app_client.post(f"{SIGN}/feedback", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"
    if where:
        assert any(e.startswith(where) for e in outcome["issue"][0].get("expression", [])), outcome
    assert all_rows(engine, "feedback") == []


def test_storage_failure_answers_503_and_hooks_still_work(tmp_path: Path) -> None:
    unusable = f"sqlite:///{tmp_path}/no-such-dir/feedback.sqlite3"
    settings = Settings.development(feedback={"database_url": unusable}, policy=QUIET_POLICY)
    with TestClient(create_app(settings, clock=lambda: NOW), raise_server_exceptions=False) as client:
        hook = client.post(SIGN, json=hook_request(prefetch=empty_prefetch()))
        assert hook.status_code == 200  # the clinical answer never depends on the audit trail
        r = _post(client, _item(str(uuid.uuid4())))
        assert r.status_code == 503
        assert r.json()["resourceType"] == "OperationOutcome"
        assert r.json()["issue"][0]["code"] == "transient"


# -- two writers ----------------------------------------------------------------------------------------------------
WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from cds_service.store.db import create_store_engine, upgrade
    from cds_service.store.writes import FeedbackRow, write_feedback

    url, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    engine = create_store_engine(url)
    upgrade(engine)  # both writers migrate the same fresh database at the same moment
    base = datetime(2026, 11, 21, tzinfo=UTC)
    for i in range(first, last):
        row = FeedbackRow(card_uuid=f"card-{i}", outcome="overridden", outcome_timestamp=base + timedelta(seconds=i))
        write_feedback(engine, "naltrexone-order-sign", [row], datetime.now(UTC))
    print("done", flush=True)
    """
)


def _python_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_two_concurrent_writers_lose_nothing(database_url: str) -> None:
    # Overlapping ranges: items 100-199 are written by both, and must be stored once.
    writers = [
        subprocess.Popen(  # noqa: S603 - our own script with the test's interpreter
            [sys.executable, "-c", WRITER, database_url, str(first), str(last)],
            env=_python_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for first, last in ((0, 200), (100, 300))
    ]
    for writer in writers:
        out, err = writer.communicate(timeout=240)
        assert writer.returncode == 0, err
        assert out.strip() == "done"
    engine = create_store_engine(database_url)
    try:
        rows = all_rows(engine, "feedback")
    finally:
        engine.dispose()
    assert sorted(r["card_uuid"] for r in rows) == sorted(f"card-{i}" for i in range(300))


# -- crash safety ---------------------------------------------------------------------------------------------------
SERVER = textwrap.dedent(
    """
    import json, sys
    import uvicorn
    from cds_service.app import create_app
    from cds_service.config import Settings

    settings = Settings.development(feedback={"database_url": sys.argv[1]}, policy=json.loads(sys.argv[3]))
    uvicorn.run(create_app(settings), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_a_200_survives_a_sigkill_right_after_it(database_url: str) -> None:
    port = _free_port()
    server = subprocess.Popen(  # noqa: S603 - our own script with the test's interpreter
        [sys.executable, "-c", SERVER, database_url, str(port), json.dumps(QUIET_POLICY)],
        env=_python_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the service did not become ready"
                time.sleep(0.1)
            hook = http.post(SIGN, json=hook_request(prefetch=empty_prefetch()))
            assert hook.status_code == 200
            card = hook.json()["cards"][0]["uuid"]
            r = http.post(f"{SIGN}/feedback", json={"feedback": [_item(card)]})
            assert r.status_code == 200
            server.send_signal(signal.SIGKILL)  # no shutdown, no flush, no WAL checkpoint
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(timeout=30)
        if server.stderr:
            server.stderr.close()
    assert server.returncode == -signal.SIGKILL
    engine = create_store_engine(database_url)
    try:
        upgrade(engine)  # a no-op: the dead service had migrated it
        [row] = all_rows(engine, "feedback")
        calls = all_rows(engine, "hook_calls")
    finally:
        engine.dispose()
    assert row["card_uuid"] == card
    assert row["unknown_card"] is False  # the audit row of the call was written before the feedback
    assert len(calls) == 1


def test_feedback_through_the_observer_waits_for_queued_audit_rows(app_client: TestClient, engine: Engine) -> None:
    cards = _cards(app_client)
    # no explicit flush: on_feedback itself writes the queued audit rows first
    assert _post(app_client, *[_item(c["uuid"]) for c in cards]).status_code == 200
    assert {r["unknown_card"] for r in all_rows(engine, "feedback")} == {False}
    flush(app_client)


def test_migrations_build_exactly_the_schema_module(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from cds_service.store.schema import metadata

    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diffs == []


def test_an_in_memory_database_takes_concurrent_writers_in_turn() -> None:
    """``sqlite://`` (tests, experiments; not durable): one connection, so threads must take turns with it."""
    from concurrent.futures import ThreadPoolExecutor

    settings = Settings.development(feedback={"database_url": "sqlite://"}, policy=QUIET_POLICY)
    with TestClient(create_app(settings, clock=lambda: NOW), raise_server_exceptions=False) as client:

        def session(i: int) -> tuple[int, int]:
            hook = client.post(SIGN, json=hook_request(prefetch=empty_prefetch()))
            card = hook.json()["cards"][0]["uuid"]
            return hook.status_code, _post(client, _item(card)).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert set(pool.map(session, range(40))) == {(200, 200)}
        flush(client)
        engine = client.app.state.store.engine  # type: ignore[attr-defined]
        assert len(all_rows(engine, "hook_calls")) == 40
        assert [r["unknown_card"] for r in all_rows(engine, "feedback")] == [False] * 40
