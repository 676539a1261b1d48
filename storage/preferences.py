"""Per-user preferences, read on every turn (one primary-key lookup), and the
per-server settings beside them.

The voice-speech choices (``/clara speech``) live here so they survive a
restart; the Discord adapter caches them and reads each at most once.  When
PostgreSQL is unreachable those calls raise ``PreferencesUnavailable`` (nothing
was changed), so the caller can say so in a plain sentence instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from .db import session_factory
from .models import GuildSettings, UserPreferences

TIERS = ("high", "mid", "low")


class PreferencesUnavailable(Exception):
    """PostgreSQL is unreachable right now; nothing was read or changed."""


def _unreachable(exc: BaseException) -> bool:
    """The server is down or the connection dropped (not: the request was wrong)."""
    if isinstance(exc, (OperationalError, InterfaceError, OSError, TimeoutError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


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

    # -- speaking in voice channels (/clara speech) ---------------------------------

    async def speak_replies(self, user_ids: Iterable[str]) -> dict[str, bool]:
        """The users' own choices, by user id; users who never chose are absent.

        One query for any number of users (the adapter warms its cache with
        everyone in a voice channel at once)."""
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return {}
        query = select(UserPreferences.user_id, UserPreferences.speak_replies).where(
            UserPreferences.user_id.in_(ids), UserPreferences.speak_replies.is_not(None)
        )
        try:
            async with self._sessions() as db:
                rows = (await db.execute(query)).all()
        except Exception as exc:
            if _unreachable(exc):
                raise PreferencesUnavailable(str(exc)) from exc
            raise
        return {user_id: bool(value) for user_id, value in rows}

    async def set_speak_replies(self, user_id: str, value: bool | None) -> None:
        """``None``: no choice of their own any more (the server's applies)."""
        stmt = insert(UserPreferences).values(user_id=user_id, speak_replies=value)
        stmt = stmt.on_conflict_do_update(
            index_elements=[UserPreferences.user_id],
            set_={"speak_replies": value, "updated_at": func.now()},
        )
        await self._write(stmt)

    async def guild_speak_replies(self, guild_id: str) -> bool | None:
        """The server's choice; ``None`` when its admins never chose."""
        try:
            async with self._sessions() as db:
                return await db.scalar(
                    select(GuildSettings.speak_replies).where(GuildSettings.guild_id == guild_id)
                )
        except Exception as exc:
            if _unreachable(exc):
                raise PreferencesUnavailable(str(exc)) from exc
            raise

    async def set_guild_speak_replies(self, guild_id: str, value: bool | None) -> None:
        if value is None:
            # The row holds nothing else: "back to the default" is no row at all.
            await self._write(delete(GuildSettings).where(GuildSettings.guild_id == guild_id))
            return
        stmt = insert(GuildSettings).values(guild_id=guild_id, speak_replies=value)
        stmt = stmt.on_conflict_do_update(
            index_elements=[GuildSettings.guild_id],
            set_={"speak_replies": value, "updated_at": func.now()},
        )
        await self._write(stmt)

    async def _write(self, stmt: object) -> None:
        try:
            async with self._sessions() as db:
                await db.execute(stmt)  # type: ignore[call-overload]
                await db.commit()
        except Exception as exc:
            if _unreachable(exc):
                raise PreferencesUnavailable(str(exc)) from exc
            raise
