"""ORS: an index for the sweep that marks crash-orphaned pending sends lost (issue 12).

Boundaries need no column: ``user_interaction_patterns.boundaries`` (JSONB)
holds them, now as objects with their enforced hours and days.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_proactive_messages_pending",
        "proactive_messages",
        ["at"],
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_proactive_messages_pending", table_name="proactive_messages")
