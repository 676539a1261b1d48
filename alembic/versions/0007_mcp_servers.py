"""MCP servers: installed plug-in server configurations (issue 11).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSONB = postgresql.JSONB(astext_type=sa.Text())


def upgrade() -> None:
    op.create_table(
        "mcp_servers",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("package", sa.Text(), nullable=False),
        sa.Column("transport", sa.String(8), nullable=False),
        sa.Column("command", sa.Text(), nullable=True),
        sa.Column("args", _JSONB, nullable=False),
        sa.Column("cwd", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("headers", _JSONB, nullable=False),
        sa.Column("env", _JSONB, nullable=False),
        sa.Column("include_tools", _JSONB, nullable=False),
        sa.Column("exclude_tools", _JSONB, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("installed_by", sa.String(64), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("name", name="pk_mcp_servers"),
    )


def downgrade() -> None:
    op.drop_table("mcp_servers")
