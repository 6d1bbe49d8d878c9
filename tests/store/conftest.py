"""Fixtures for the feedback store: a fresh database per test (SQLite in tmp_path; test_postgres.py swaps in a
real local PostgreSQL), an app wired to it, and helpers to read every row back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.store.db import create_store_engine, upgrade
from cds_service.store.schema import metadata
from tests.builders import NOW
from tests.store.postgres_harness import PostgresServer, available

# Switchable rules off: these tests are about what is recorded, not about which rules fire.
QUIET_POLICY: dict[str, Any] = {
    "indicators": {"liver-panel-missing": "off", "overdose-risk": "off", "duration-short": "off"}
}


@pytest.fixture
def database_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path}/feedback.sqlite3"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings.development(feedback={"database_url": database_url}, policy=QUIET_POLICY)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the test database, migrated."""
    e = create_store_engine(database_url)
    upgrade(e)
    yield e
    e.dispose()


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    """The real app (lifespan running: store migrated, audit writer started) on the test database."""
    with TestClient(create_app(settings, clock=lambda: NOW), raise_server_exceptions=False) as client:
        yield client


def flush(client: TestClient) -> None:
    """Wait until the app's audit writer has written everything queued so far."""
    assert client.portal is not None
    assert client.portal.call(client.app.state.store.flush, 10.0)  # type: ignore[attr-defined]


def all_rows(engine: Engine, table: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(metadata.tables[table]))]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    ok, reason = available()
    if not ok:
        pytest.skip(reason)
    with PostgresServer() as server:
        server.create_database("cds_test")
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty schema (first on the search path) on the session's PostgreSQL server."""
    return postgres_server.create_schema("cds_test", f"t_{uuid.uuid4().hex[:12]}")
