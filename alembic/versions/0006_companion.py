"""Companion: per-channel hormone state and its history (issue 12).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSONB = postgresql.JSONB(astext_type=sa.Text())


def upgrade() -> None:
    op.create_table(
        "companion_state",
        sa.Column("scope", sa.String(80), nullable=False),
        sa.Column("levels", _JSONB, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_user_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_clara_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("owner_user_id", sa.String(64), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("scope", name="pk_companion_state"),
    )
    op.create_index("ix_companion_state_owner", "companion_state", ["owner_user_id"])
    op.create_table(
        "companion_history",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(80), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("levels", _JSONB, nullable=False),
        sa.Column("cause", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_companion_history"),
    )
    op.create_index("ix_companion_history_scope_at", "companion_history", ["scope", "at"])
    op.create_index("ix_companion_history_user", "companion_history", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_companion_history_user", table_name="companion_history")
    op.drop_index("ix_companion_history_scope_at", table_name="companion_history")
    op.drop_table("companion_history")
    op.drop_index("ix_companion_state_owner", table_name="companion_state")
    op.drop_table("companion_state")
