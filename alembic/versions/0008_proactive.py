"""Organic Response System: interaction patterns, notes, assessments, proactive messages (issue 12).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSONB = postgresql.JSONB(astext_type=sa.Text())
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "user_interaction_patterns",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("opted_in", sa.Boolean(), nullable=True),
        sa.Column("talked_in_dm", sa.Boolean(), nullable=False),
        sa.Column("last_channel_id", sa.String(64), nullable=True),
        sa.Column("last_user_message_at", _TS, nullable=True),
        sa.Column("last_proactive_at", _TS, nullable=True),
        sa.Column("unanswered", sa.Integer(), nullable=False),
        sa.Column("proactive_sent", sa.Integer(), nullable=False),
        sa.Column("proactive_answered", sa.Integer(), nullable=False),
        sa.Column("active_hours", _JSONB, nullable=False),
        sa.Column("boundaries", _JSONB, nullable=False),
        sa.Column("last_summary", sa.Text(), nullable=True),
        sa.Column("open_threads", _JSONB, nullable=False),
        sa.Column("summary_at", _TS, nullable=True),
        sa.Column("next_check_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_interaction_patterns"),
    )
    op.create_index(
        "ix_user_interaction_patterns_next_check", "user_interaction_patterns", ["next_check_at"]
    )
    op.create_table(
        "proactive_notes",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("relevance", sa.Float(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=True),
        sa.Column("not_before", _TS, nullable=True),
        sa.Column("source_message_ids", _JSONB, nullable=False),
        sa.Column("used_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_proactive_notes"),
    )
    op.create_index("ix_proactive_notes_user", "proactive_notes", ["user_id"])
    op.create_table(
        "proactive_assessments",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("next_check_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_proactive_assessments"),
    )
    op.create_index("ix_proactive_assessments_user_at", "proactive_assessments", ["user_id", "at"])
    op.create_table(
        "proactive_messages",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("answered_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_proactive_messages"),
    )
    op.create_index("ix_proactive_messages_user_at", "proactive_messages", ["user_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_proactive_messages_user_at", table_name="proactive_messages")
    op.drop_table("proactive_messages")
    op.drop_index("ix_proactive_assessments_user_at", table_name="proactive_assessments")
    op.drop_table("proactive_assessments")
    op.drop_index("ix_proactive_notes_user", table_name="proactive_notes")
    op.drop_table("proactive_notes")
    op.drop_index("ix_user_interaction_patterns_next_check", table_name="user_interaction_patterns")
    op.drop_table("user_interaction_patterns")
