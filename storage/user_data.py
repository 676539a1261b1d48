"""Delete everything the core tables hold about one user.

Every store of user data offers ``delete_user_data(user_id)``; ``/clara
forget`` (Cortex issue) calls them all.  Here: the user's sessions (and so
their messages, by cascade), the messages they wrote in other people's
sessions, the projects they own, and their preferences.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy import delete, select, union
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from .db import session_factory
from .models import Base, ConversationSession, Message, Project, UserPreferences


@dataclass
class DeletedCounts:
    messages: int
    sessions: int
    projects: int
    preferences: int


async def delete_user_data(db: AsyncSession, user_id: str) -> DeletedCounts:
    messages = await db.execute(delete(Message).where(Message.user_id == user_id))
    sessions = await db.execute(
        delete(ConversationSession).where(ConversationSession.user_id == user_id)
    )
    projects = await db.execute(delete(Project).where(Project.owner_id == user_id))
    prefs = await db.execute(delete(UserPreferences).where(UserPreferences.user_id == user_id))
    await db.commit()
    return DeletedCounts(messages.rowcount, sessions.rowcount, projects.rowcount, prefs.rowcount)


async def delete_user_data_in(engine: AsyncEngine, user_id: str) -> DeletedCounts:
    """``delete_user_data`` in a session of its own."""
    async with session_factory(engine)() as db:
        return await delete_user_data(db, user_id)


# -- every user, for ``cortex clear --all`` ------------------------------------------------

#: Every (table, column) that names a user.  ``cortex clear --all`` finds users here,
#: including those Redis no longer knows (tests/e2e/test_cortex_cli_ops.py checks
#: that no user column of the schema is missing from this list).
USER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("memories", "user_id"),
    ("contradictions", "user_id"),
    ("consolidation_logs", "user_id"),
    ("project_members", "user_id"),
    ("projects", "owner_id"),
    ("sessions", "user_id"),
    ("messages", "user_id"),
    ("user_preferences", "user_id"),
    ("companion_state", "owner_user_id"),
    ("companion_history", "user_id"),
    ("proactive_messages", "user_id"),
    ("proactive_assessments", "user_id"),
    ("proactive_notes", "user_id"),
    ("user_interaction_patterns", "user_id"),
    ("mcp_servers", "installed_by"),
)

#: Tables that hold conversation content without naming a user (a channel's rolling
#: summary): emptied by ``--all``, untouched by a one-user clear.
SHARED_CONTENT_TABLES: tuple[str, ...] = ("channel_summaries",)


async def user_ids(engine: AsyncEngine) -> set[str]:
    """Every user id any table names (one ``UNION`` over ``USER_COLUMNS``)."""
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    parts = [
        select(tables[table].c[column].label("user_id")).where(tables[table].c[column].is_not(None))
        for table, column in USER_COLUMNS
    ]
    async with engine.connect() as conn:
        rows = await conn.execute(union(*parts))
        return {str(r[0]) for r in rows}


async def clear_shared_content(engine: AsyncEngine) -> dict[str, int]:
    """Empty ``SHARED_CONTENT_TABLES``; rows deleted per table."""
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    counts: dict[str, int] = {}
    async with engine.begin() as conn:
        for name in SHARED_CONTENT_TABLES:
            result = await conn.execute(delete(tables[name]))
            counts[name] = int(result.rowcount or 0)
    return counts


#: Redis keys that name a user: Cortex's hot tier (``cortex:USER:SUFFIX``,
#: clara_core/cortex/hot.py) and the mood cache's owner index (``mood:owner:USER``,
#: storage/companion_cache.py).
_HOT_SUFFIXES = frozenset({"identity", "session", "working", "working:data", "recent", "meta"})


async def redis_user_ids(redis: Redis) -> set[str]:
    """Users with keys in Redis (a user whose rows are gone may still have some)."""
    found: set[str] = set()
    async for raw in redis.scan_iter(match="cortex:*", count=500):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        _, _, rest = key.partition(":")
        user, _, suffix = rest.partition(":")
        if user and suffix in _HOT_SUFFIXES:
            found.add(user)
    async for raw in redis.scan_iter(match="mood:owner:*", count=500):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        found.add(key.removeprefix("mood:owner:"))
    return found
