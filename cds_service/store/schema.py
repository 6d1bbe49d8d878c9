"""Tables of the feedback database (SQLAlchemy Core). Alembic migrations create them; keep both in step.

``hook_calls`` and ``call_cards`` are the audit trail: PHI-free by construction (they are filled from
:class:`cds_service.observe.CallRecord`, which holds no patient identifier, resource content or token).
``feedback`` holds what clinicians did with the cards. Its ``user_comment`` is free text typed by a clinician and
may contain anything, patient details included: treat the feedback table as sensitive; the report never prints it.

What "the same feedback item" means (the idempotency key, ``uq_feedback_item``): the same card, the same outcome
and the same ``outcomeTimestamp`` (compared as an instant, so ``...Z`` and ``...+00:00`` are the same). A client
that resends a POST (retry after a timeout) therefore stores nothing new; a clinician who changes their mind
(accepted, later overridden) produces a new outcome or timestamp and is stored. A resend with the same key but a
different reason or comment is still the same decision: the first one stored wins.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

# Explicit constraint names, so migrations can refer to them on every back end.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every back end (SQLite stores no zone: we store UTC and re-attach it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UTCDateTime needs an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - every driver we support returns datetime
            raise TypeError(f"unexpected datetime value {type(value).__name__}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


hook_calls = Table(
    "hook_calls",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("hook_instance", String(128), nullable=False),
    Column("service_id", String(128), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False, index=True),
    Column("latency_ms", Float, nullable=False),
    Column("status_code", SmallInteger, nullable=False),
    Column("error", String(64)),  # OperationOutcome issue code of a failed call, never a message
    Column("unavailable", JSON, nullable=False),  # list of data categories that could not be read
    Column("provenance", JSON, nullable=False),  # {category: "prefetch" | "fetched" | "none" | "mixed"}
    Column("fetch_errors", Integer, nullable=False),
)

call_cards = Table(
    "call_cards",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("call_id", Id, ForeignKey("hook_calls.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("rule_id", String(64), nullable=False, index=True),
    Column("indicator", String(16), nullable=False),
    Column("card_uuid", String(128), nullable=False, unique=True),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("card_uuid", String(128), nullable=False, index=True),
    Column("service_id", String(128), nullable=False),
    Column("rule_id", String(64)),  # copied from call_cards when the card is known; survives audit pruning
    Column("outcome", String(16), nullable=False),  # accepted | overridden
    Column("outcome_timestamp", UTCDateTime(), nullable=False),
    Column("accepted_suggestions", JSON, nullable=False),  # list of suggestion uuids
    Column("override_code", String(256)),
    Column("override_system", String(512)),
    Column("override_display", String(512)),
    Column("user_comment", Text),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("unknown_card", Boolean, nullable=False),  # no card with this uuid was issued by this service
    UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_item"),
)

Index("ix_feedback_received_at", feedback.c.received_at)
