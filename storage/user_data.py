"""Delete everything the core tables hold about one user.

Every store of user data offers ``delete_user_data(user_id)``; ``/clara
forget`` (Cortex issue) calls them all.  Here: the user's sessions (and so
their messages, by cascade), the messages they wrote in other people's
sessions, the projects they own, and their preferences.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from .db import session_factory
from .models import ConversationSession, Message, Project, UserPreferences


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
