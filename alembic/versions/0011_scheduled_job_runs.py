"""Scheduled jobs run once across Clara processes (issue 15): one row per job, the
slot a process claimed (storage/job_claims.py).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scheduled_job_runs",
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("job", name="pk_scheduled_job_runs"),
    )


def downgrade() -> None:
    op.drop_table("scheduled_job_runs")
