"""Companion state in PostgreSQL: each channel's hormone levels, and their history.

The store knows nothing of the hormone model: levels are a ``{name: value}``
mapping it saves and returns.  Saving the state and appending its history row
happen in one transaction, so the chart never shows a change the state lacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from .db import session_factory
from .models import CompanionHistory, CompanionState


@dataclass(frozen=True)
class StoredMood:
    levels: dict[str, float]
    at: datetime
    last_user_at: datetime | None = None
    last_clara_at: datetime | None = None
    owner_user_id: str | None = None


@dataclass(frozen=True)
class MoodPoint:
    at: datetime
    levels: dict[str, float]


#: History kept per scope: the chart shows 24 h; a week leaves room for a longer
#: chart later while bounding the table (two rows per turn).
KEEP_HISTORY = timedelta(days=7)


class CompanionStore:
    def __init__(self, engine: AsyncEngine, *, keep_history: timedelta = KEEP_HISTORY) -> None:
        self._sessions = session_factory(engine)
        self.keep_history = keep_history

    async def load(self, scope: str) -> StoredMood | None:
        async with self._sessions() as db:
            row = await db.get(CompanionState, scope)
            if row is None:
                return None
            return StoredMood(
                dict(row.levels), row.at, row.last_user_at, row.last_clara_at, row.owner_user_id
            )

    async def save(
        self, scope: str, mood: StoredMood, *, cause: str, user_id: str | None = None
    ) -> None:
        """Upsert the scope's state and append a history row (one transaction); the
        scope's history older than ``keep_history`` goes in the same breath (an index
        range on (scope, at), usually empty)."""
        values = {
            "levels": mood.levels,
            "at": mood.at,
            "last_user_at": mood.last_user_at,
            "last_clara_at": mood.last_clara_at,
            "owner_user_id": mood.owner_user_id,
        }
        stmt = insert(CompanionState).values(scope=scope, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[CompanionState.scope], set_=values)
        async with self._sessions() as db:
            await db.execute(stmt)
            db.add(
                CompanionHistory(
                    scope=scope, at=mood.at, levels=mood.levels, cause=cause[:16], user_id=user_id
                )
            )
            await db.execute(
                delete(CompanionHistory).where(
                    CompanionHistory.scope == scope,
                    CompanionHistory.at < mood.at - self.keep_history,
                )
            )
            await db.commit()

    async def history(self, scope: str, since: datetime) -> list[MoodPoint]:
        """The scope's changes since ``since``, oldest first, plus the last one
        before it (the chart needs where the window started from)."""
        async with self._sessions() as db:
            before = (
                await db.execute(
                    select(CompanionHistory.at, CompanionHistory.levels)
                    .where(CompanionHistory.scope == scope, CompanionHistory.at < since)
                    .order_by(CompanionHistory.at.desc(), CompanionHistory.id.desc())
                    .limit(1)
                )
            ).all()
            rows = (
                await db.execute(
                    select(CompanionHistory.at, CompanionHistory.levels)
                    .where(CompanionHistory.scope == scope, CompanionHistory.at >= since)
                    .order_by(CompanionHistory.at, CompanionHistory.id)
                )
            ).all()
        return [MoodPoint(at, dict(levels)) for at, levels in [*before, *rows]]

    async def owned_scopes(self, user_id: str) -> list[str]:
        """The scopes that are the user's one-to-one conversations."""
        async with self._sessions() as db:
            rows = await db.scalars(
                select(CompanionState.scope).where(CompanionState.owner_user_id == user_id)
            )
            return list(rows)

    async def delete_user_data(self, user_id: str) -> int:
        """Forget the user: history rows their messages caused and their DMs' state.

        A shared channel's current levels stay: they are the channel's mood,
        mixed from everyone, and name nobody.
        """
        async with self._sessions() as db:
            owned = select(CompanionState.scope).where(CompanionState.owner_user_id == user_id)
            history = await db.execute(
                delete(CompanionHistory).where(
                    or_(CompanionHistory.user_id == user_id, CompanionHistory.scope.in_(owned))
                )
            )
            states = await db.execute(
                delete(CompanionState).where(CompanionState.owner_user_id == user_id)
            )
            await db.commit()
            return history.rowcount + states.rowcount
