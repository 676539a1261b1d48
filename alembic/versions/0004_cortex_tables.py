"""Cortex: project members, channel links, contradictions, consolidation logs, meta.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSONB = postgresql.JSONB(astext_type=sa.Text())


def _now() -> sa.Column:
    return sa.func.now()


def upgrade() -> None:
    op.add_column("projects", sa.Column("settings", _JSONB, server_default="{}", nullable=False))
    op.create_index("ix_memories_user_created", "memories", ["user_id", "created_at"])

    op.create_table(
        "project_members",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), server_default="member", nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.CheckConstraint(
            "role IN ('owner', 'admin', 'member')", name="ck_project_members_role_valid"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_project_members_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "user_id", name="pk_project_members"),
    )
    op.create_index("ix_project_members_user", "project_members", ["user_id"])

    op.create_table(
        "channel_projects",
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("linked_by", sa.String(64), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_channel_projects_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("channel_id", name="pk_channel_projects"),
    )
    op.create_index("ix_channel_projects_project_id", "channel_projects", ["project_id"])

    op.create_table(
        "contradictions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("memory_a", sa.Uuid(), nullable=False),
        sa.Column("memory_b", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("resolution", sa.String(16), server_default="pending", nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("detected_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "resolution IN ('pending', 'a_wins', 'b_wins', 'merge', 'both_valid')",
            name="ck_contradictions_resolution_valid",
        ),
        sa.ForeignKeyConstraint(
            ["memory_a"],
            ["memories.id"],
            name="fk_contradictions_memory_a_memories",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["memory_b"],
            ["memories.id"],
            name="fk_contradictions_memory_b_memories",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_contradictions"),
        sa.UniqueConstraint("memory_a", "memory_b", name="uq_contradictions_pair"),
    )
    op.create_index(
        "ix_contradictions_user_resolution", "contradictions", ["user_id", "resolution"]
    )

    op.create_table(
        "consolidation_logs",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("job", sa.String(32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("memories_processed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("patterns_found", sa.Integer(), server_default="0", nullable=False),
        sa.Column("identities_updated", sa.Integer(), server_default="0", nullable=False),
        sa.Column("contradictions_found", sa.Integer(), server_default="0", nullable=False),
        sa.Column("memories_compacted", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("details", _JSONB, server_default="{}", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_consolidation_logs"),
    )
    op.create_index("ix_consolidation_logs_started", "consolidation_logs", ["started_at"])
    op.create_index("ix_consolidation_logs_run_id", "consolidation_logs", ["run_id"])
    op.create_index("ix_consolidation_logs_user_id", "consolidation_logs", ["user_id"])

    op.create_table(
        "cortex_meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", _JSONB, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_cortex_meta"),
    )


def downgrade() -> None:
    op.drop_table("cortex_meta")
    op.drop_index("ix_consolidation_logs_user_id", table_name="consolidation_logs")
    op.drop_index("ix_consolidation_logs_run_id", table_name="consolidation_logs")
    op.drop_index("ix_consolidation_logs_started", table_name="consolidation_logs")
    op.drop_table("consolidation_logs")
    op.drop_index("ix_contradictions_user_resolution", table_name="contradictions")
    op.drop_table("contradictions")
    op.drop_index("ix_channel_projects_project_id", table_name="channel_projects")
    op.drop_table("channel_projects")
    op.drop_index("ix_project_members_user", table_name="project_members")
    op.drop_table("project_members")
    op.drop_index("ix_memories_user_created", table_name="memories")
    op.drop_column("projects", "settings")
