"""Shared fixtures: an app per test with a pinned clock, and a TestClient that runs its lifespan."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cds_service.app import create_app
from cds_service.config import Settings
from tests.builders import NOW

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

ClientFactory = Callable[..., TestClient]


def shared_data_or_skip(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared public test data is not beside this checkout")
    return path


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[ClientFactory]:
    """Build a TestClient for an app with the given settings, fetch transport and clock (default NOW).

    Unless the settings name a feedback database, each app gets its own SQLite file under the test's tmp_path, so
    a test run never writes into the working directory.
    """
    opened: list[TestClient] = []

    def factory(
        settings: Settings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        now: Any = NOW,
    ) -> TestClient:
        settings = settings or Settings.development()
        if "database_url" not in settings.feedback.model_fields_set:
            url = f"sqlite:///{tmp_path}/feedback-{len(opened)}.sqlite3"
            settings = settings.model_copy(
                update={"feedback": settings.feedback.model_copy(update={"database_url": url})}
            )
        http = httpx.AsyncClient(transport=transport) if transport is not None else None
        app = create_app(settings, clock=lambda: now, http=http)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield factory
    for c in opened:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client()
