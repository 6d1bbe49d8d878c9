"""The feedback database: engine creation from ``[feedback] database_url``, migrations, and the store's errors.

Two back ends, both through SQLAlchemy 2 (sync engines; the app runs every query in a worker thread so the event
loop never waits on the database):

* SQLite (default, zero set-up): WAL journal and ``synchronous=FULL``, so a committed transaction is on disk
  before ``commit()`` returns and survives a SIGKILL or power loss. Write transactions open with
  ``BEGIN IMMEDIATE`` (connection option ``sqlite_immediate``) so two writers queue on the busy timeout instead
  of failing with "database is locked" when a read turns into a write.
* PostgreSQL through psycopg 3 (``postgresql://`` and ``postgres://`` are read as ``postgresql+psycopg://``).

The schema is owned by Alembic (``cds_service/store/migrations``); :func:`upgrade` runs ``upgrade head`` inside
one transaction (serialised across processes by ``BEGIN IMMEDIATE`` on SQLite and an advisory lock on PostgreSQL),
so several workers starting at once migrate exactly once.

Errors::

    StoreConfigError (ConfigError)  the URL names an unsupported database or driver; raised at start-up
    StoreUnavailable (ServiceError) a write or check could not reach the database: the route answers 503
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import QueuePool

from cds_service.config import ConfigError
from cds_service.errors import ServiceError

log = logging.getLogger("cds_service.store")

MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S: Final = 30.0
PG_CONNECT_TIMEOUT_S: Final = 5
# Arbitrary constant naming "the schema migration" for pg_advisory_xact_lock.
_PG_MIGRATION_LOCK: Final = 0x4E54_5843  # "NTXC"


class StoreConfigError(ConfigError):
    """``[feedback] database_url`` cannot be used (unsupported database or driver); the message is for the operator."""


class StoreUnavailable(ServiceError):
    """The feedback database could not be written or read; answered as 503 so the client retries later.

    Raised by ``StoreObserver.on_feedback`` instead of answering 200 for feedback that was not stored.
    """

    status_code = 503
    issue_code = "transient"


def database_url(raw: str) -> URL:
    """The SQLAlchemy URL for ``raw``, with the driver we support for its database chosen explicitly."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise StoreConfigError(
            "[feedback] database_url is not a database URL; expected sqlite:///PATH or "
            "postgresql://USER:PASSWORD@HOST/DBNAME"
        ) from None
    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return url.set(drivername="sqlite+pysqlite")
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return url.set(drivername="postgresql+psycopg")
    raise StoreConfigError(
        f"[feedback] database_url uses {url.drivername!r}; supported are sqlite:/// (default) and "
        "postgresql:// (psycopg 3)"
    )


def safe_url(url: URL | str) -> str:
    """The URL for log lines and error messages: password hidden."""
    parsed = url if isinstance(url, URL) else make_url(url)
    return parsed.render_as_string(hide_password=True)


def create_store_engine(raw_url: str) -> Engine:
    """An engine for ``raw_url``; no connection is made yet (the database may come up after the service)."""
    url = database_url(raw_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=10,
        connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S, "application_name": "naltrexone-cds"},
    )


def _sqlite_engine(url: URL) -> Engine:
    memory = url.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
    }
    if memory:
        # One connection holds the whole database; a pool of exactly that one connection makes threads take
        # turns with it (StaticPool would let two threads interleave transactions on it). Not durable: for tests.
        only = sqlite3.connect(":memory:", check_same_thread=False, timeout=SQLITE_BUSY_TIMEOUT_S)
        kwargs = {"creator": lambda: only, "poolclass": QueuePool, "pool_size": 1, "max_overflow": 0}
        kwargs["pool_timeout"] = SQLITE_BUSY_TIMEOUT_S
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (its implicit BEGIN ignores our needs);
        # SQLAlchemy's "begin" event below emits BEGIN itself.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            if not memory:
                _enable_wal(cursor)
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection inside a write transaction, committed on normal exit (durable once this returns)."""
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_immediate=True)
        with conn.begin():
            yield conn


def alembic_config(engine: Engine | None = None, url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations; no alembic.ini is needed."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """``alembic upgrade head`` in one transaction; a no-op when the database is already current."""
    head = head_revision()
    with engine.connect() as probe:
        if current_revision(probe) == head:
            return
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    log.info("feedback database %s migrated to %s", safe_url(engine.url), head)


def ping(engine: Engine) -> None:
    """A trivial query: raises if the database cannot be reached."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1")).scalar_one()


def _enable_wal(cursor: Any) -> None:
    """Switch a file database to WAL, retrying while another process holds the lock.

    Changing the journal mode needs an exclusive lock and SQLite may answer "database is locked" at once instead of
    waiting on the busy timeout: two workers opening a fresh file together (seen in CI) race on it.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    delay = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
