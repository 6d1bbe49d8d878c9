"""Alembic environment for the feedback database.

Run by :func:`cds_service.store.db.upgrade` with an open connection already inside a transaction
(``config.attributes["connection"]``), or by ``cds-service db`` with an engine or a URL. No alembic.ini exists:
the config is built in code (:func:`cds_service.store.db.alembic_config`).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from cds_service.store.db import create_store_engine
from cds_service.store.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things in place
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = config.attributes.get("engine")
    if engine is None:
        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("no database: pass a connection, an engine or sqlalchemy.url to the Alembic config")
        engine = create_store_engine(url)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported; run them against a database")
run_migrations_online()
