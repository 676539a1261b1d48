"""Per-user preferences, read on every turn (one primary-key lookup)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from .db import session_factory
from .models import UserPreferences

TIERS = ("high", "mid", "low")


class Preferences:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)

    async def default_tier(self, user_id: str) -> str | None:
        async with self._sessions() as db:
            return await db.scalar(
                select(UserPreferences.default_tier).where(UserPreferences.user_id == user_id)
            )

    async def set_default_tier(self, user_id: str, tier: str | None) -> None:
        if tier is not None and tier not in TIERS:
            raise ValueError(f"tier must be one of {TIERS} or None")
        stmt = insert(UserPreferences).values(user_id=user_id, default_tier=tier)
        stmt = stmt.on_conflict_do_update(
            index_elements=[UserPreferences.user_id], set_={"default_tier": tier}
        )
        async with self._sessions() as db:
            await db.execute(stmt)
            await db.commit()
