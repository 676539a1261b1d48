"""Voice speech toggles survive a restart (issue 13): the user's choice on
``user_preferences.speak_replies``, the server's in ``guild_settings``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("user_preferences", sa.Column("speak_replies", sa.Boolean(), nullable=True))
    op.create_table(
        "guild_settings",
        sa.Column("guild_id", sa.String(64), nullable=False),
        sa.Column("speak_replies", sa.Boolean(), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("guild_id", name="pk_guild_settings"),
    )


def downgrade() -> None:
    op.drop_table("guild_settings")
    op.drop_column("user_preferences", "speak_replies")
