"""Synchronous writes to the feedback database: audit rows, feedback items, retention pruning.

Plain functions over an ``Engine``, each one transaction, called from a worker thread by
:class:`cds_service.store.observer.StoreObserver` (and directly by tests). Every value written to the audit tables
is re-checked here against a narrow shape (a UUID, a short lower-case token), so that even a caller that put
something unexpected into a ``CallRecord`` cannot smuggle patient data into the audit trail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, Engine, Insert, bindparam, delete, select, update

from cds_service.errors import BadRequest
from cds_service.hooks.models import FeedbackItem
from cds_service.observe import CallRecord
from cds_service.store.db import write_transaction
from cds_service.store.schema import call_cards, feedback, hook_calls

_UUID: Final = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TOKEN: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
NOT_A_UUID: Final = "(not a uuid)"
MAX_CARD_UUID: Final = 128
MAX_COMMENT: Final = 4000


# -- audit ----------------------------------------------------------------------------------------------------------
def audit_hook_instance(value: str) -> str:
    """The hookInstance as stored: a UUID as sent, the app's "(unreadable)" marker, or "(not a uuid)".

    The spec makes hookInstance a UUID; a client that sends anything else might send an encounter or record
    number, so such a value is not stored at all (not even hashed: a hash of a short identifier is reversible).
    """
    if _UUID.match(value):
        return value.lower()
    return value if value == "(unreadable)" else NOT_A_UUID


def _token(value: str | None) -> str | None:
    if value is None:
        return None
    return value if _TOKEN.match(value) else "(other)"


def _call_row(record: CallRecord) -> dict[str, Any]:
    return {
        "hook_instance": audit_hook_instance(record.hook_instance),
        "service_id": _token(record.service_id) or "(other)",
        "started_at": record.started_at if record.started_at.tzinfo else record.started_at.replace(tzinfo=UTC),
        "latency_ms": float(record.latency_ms),
        "status_code": int(record.status_code),
        "error": _token(record.error),
        "unavailable": sorted({_token(c) or "(other)" for c in record.unavailable}),
        "provenance": {_token(c) or "(other)": _token(how) or "(other)" for c, how in record.provenance},
        "fetch_errors": int(record.fetch_errors),
    }


def _insert_ignoring_conflicts(conn: Connection, table: Any, columns: list[str]) -> Insert:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=columns)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=columns)


def write_calls(engine: Engine, records: Sequence[CallRecord]) -> None:
    """Audit rows for ``records`` and their cards, in one transaction."""
    if not records:
        return
    with write_transaction(engine) as conn:
        card_rows: list[dict[str, Any]] = []
        known: list[dict[str, Any]] = []
        for record in records:
            row = _call_row(record)
            call_id = conn.execute(hook_calls.insert().returning(hook_calls.c.id), row).scalar_one()
            for card in record.cards:
                rule_id = _token(card.rule_id) or "(other)"
                card_rows.append(
                    {
                        "call_id": call_id,
                        "rule_id": rule_id,
                        "indicator": _token(card.indicator) or "(other)",
                        "card_uuid": card.card_uuid[:MAX_CARD_UUID],
                    }
                )
                known.append(
                    {"b_uuid": card.card_uuid[:MAX_CARD_UUID], "b_service": row["service_id"], "b_rule": rule_id}
                )
        if card_rows:
            conn.execute(_insert_ignoring_conflicts(conn, call_cards, ["card_uuid"]), card_rows)
            # Feedback that arrived before its card's audit row (another worker, or a slow flush) is known now.
            conn.execute(
                update(feedback)
                .where(feedback.c.card_uuid == bindparam("b_uuid"), feedback.c.service_id == bindparam("b_service"))
                .where(feedback.c.unknown_card.is_(True))
                .values(unknown_card=False, rule_id=bindparam("b_rule")),
                known,
            )


def prune_audit(engine: Engine, before: datetime, *, chunk: int = 5000, stop: Callable[[], bool] | None = None) -> int:
    """Delete audit rows (calls and their cards) that started before ``before``; returns how many calls.

    Deletes in chunks, each its own short transaction, so a first prune of a large table never holds the SQLite
    write lock for long; ``stop`` is asked between chunks (shutdown). Feedback rows are kept: they carry their
    own ``rule_id``.
    """
    total = 0
    while True:
        with write_transaction(engine) as conn:
            ids = list(
                conn.execute(select(hook_calls.c.id).where(hook_calls.c.started_at < before).limit(chunk)).scalars()
            )
            if ids:
                conn.execute(delete(call_cards).where(call_cards.c.call_id.in_(ids)))
                conn.execute(delete(hook_calls).where(hook_calls.c.id.in_(ids)))
        total += len(ids)
        if len(ids) < chunk or (stop is not None and stop()):
            return total


# -- feedback -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FeedbackRow:
    """One feedback item, validated and normalised for storage."""

    card_uuid: str
    outcome: str
    outcome_timestamp: datetime
    accepted_suggestions: tuple[str, ...] = ()
    override_code: str | None = None
    override_system: str | None = None
    override_display: str | None = None
    user_comment: str | None = None


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    stored: int
    duplicates: int
    unknown_cards: int


def parse_instant(value: str) -> datetime:
    """An ISO 8601 instant in UTC; a value without a zone is read as UTC.

    Raises ValueError (not a date-time) or OverflowError (outside years 1-9999 once moved to UTC).
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:limit]


def feedback_rows(items: Iterable[FeedbackItem]) -> list[FeedbackRow]:
    """Storage rows for validated wire items. Raises BadRequest (400) for what the wire model lets through."""
    rows = []
    for i, item in enumerate(items):
        try:
            when = parse_instant(item.outcomeTimestamp)
        except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00+01:00 is before year 1 in UTC
            raise BadRequest(
                f"invalid feedback: feedback.{i}.outcomeTimestamp is not an ISO 8601 instant",
                expression=[f"feedback.{i}.outcomeTimestamp"],
            ) from None
        if len(item.card) > MAX_CARD_UUID:
            raise BadRequest(
                f"invalid feedback: feedback.{i}.card is longer than {MAX_CARD_UUID} characters",
                expression=[f"feedback.{i}.card"],
            )
        reason = item.overrideReason.reason if item.overrideReason and item.overrideReason.reason else {}
        rows.append(
            FeedbackRow(
                card_uuid=item.card,
                outcome=item.outcome,
                outcome_timestamp=when,
                accepted_suggestions=tuple(s.id[:MAX_CARD_UUID] for s in item.acceptedSuggestions),
                override_code=_text(reason.get("code"), 256),
                override_system=_text(reason.get("system"), 512),
                override_display=_text(reason.get("display"), 512),
                user_comment=_text(item.overrideReason.userComment, MAX_COMMENT) if item.overrideReason else None,
            )
        )
    return rows


def write_feedback(
    engine: Engine, service_id: str, rows: Sequence[FeedbackRow], received_at: datetime
) -> FeedbackResult:
    """Store ``rows`` idempotently in one transaction; committed (durable) when this returns."""
    stored = duplicates = unknown = 0
    with write_transaction(engine) as conn:
        uuids = sorted({r.card_uuid for r in rows})
        query = (
            select(call_cards.c.card_uuid, call_cards.c.rule_id)
            .join(hook_calls, hook_calls.c.id == call_cards.c.call_id)
            .where(call_cards.c.card_uuid.in_(uuids), hook_calls.c.service_id == service_id)
        )
        issued: dict[str, str] = {card_uuid: rule_id for card_uuid, rule_id in conn.execute(query)}
        insert = _insert_ignoring_conflicts(conn, feedback, ["card_uuid", "outcome", "outcome_timestamp"]).returning(
            feedback.c.id
        )
        for row in rows:
            rule_id = issued.get(row.card_uuid)
            result = conn.execute(
                insert,
                {
                    "card_uuid": row.card_uuid,
                    "service_id": service_id,
                    "rule_id": rule_id,
                    "outcome": row.outcome,
                    "outcome_timestamp": row.outcome_timestamp,
                    "accepted_suggestions": list(row.accepted_suggestions),
                    "override_code": row.override_code,
                    "override_system": row.override_system,
                    "override_display": row.override_display,
                    "user_comment": row.user_comment,
                    "received_at": received_at,
                    "unknown_card": rule_id is None,
                },
            )
            if result.first() is not None:  # RETURNING yields nothing when the item was already stored
                stored += 1
                unknown += rule_id is None
            else:
                duplicates += 1
    return FeedbackResult(stored, duplicates, unknown)
