"""Audit trail (hook_calls, call_cards) and clinician feedback.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Instant = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "hook_calls",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("hook_instance", sa.String(128), nullable=False),
        sa.Column("service_id", sa.String(128), nullable=False),
        sa.Column("started_at", Instant, nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=False),
        sa.Column("error", sa.String(64)),
        sa.Column("unavailable", sa.JSON(), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("fetch_errors", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hook_calls"),
    )
    op.create_index("ix_hook_calls_started_at", "hook_calls", ["started_at"])

    op.create_table(
        "call_cards",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("call_id", Id, nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("indicator", sa.String(16), nullable=False),
        sa.Column("card_uuid", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_call_cards"),
        sa.ForeignKeyConstraint(
            ["call_id"], ["hook_calls.id"], name="fk_call_cards_call_id_hook_calls", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("card_uuid", name="uq_call_cards_card_uuid"),
    )
    op.create_index("ix_call_cards_call_id", "call_cards", ["call_id"])
    op.create_index("ix_call_cards_rule_id", "call_cards", ["rule_id"])

    op.create_table(
        "feedback",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("card_uuid", sa.String(128), nullable=False),
        sa.Column("service_id", sa.String(128), nullable=False),
        sa.Column("rule_id", sa.String(64)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("outcome_timestamp", Instant, nullable=False),
        sa.Column("accepted_suggestions", sa.JSON(), nullable=False),
        sa.Column("override_code", sa.String(256)),
        sa.Column("override_system", sa.String(512)),
        sa.Column("override_display", sa.String(512)),
        sa.Column("user_comment", sa.Text()),
        sa.Column("received_at", Instant, nullable=False),
        sa.Column("unknown_card", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        sa.UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_item"),
    )
    op.create_index("ix_feedback_card_uuid", "feedback", ["card_uuid"])
    op.create_index("ix_feedback_received_at", "feedback", ["received_at"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("call_cards")
    op.drop_table("hook_calls")
