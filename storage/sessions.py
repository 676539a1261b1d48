"""Conversation sessions and their messages.

A session is one conversation of a user in one context (a channel, a DM, the
console).  After SESSION_IDLE_MINUTES of silence it is closed; the next one
links back to it and starts from its summary (``context_snapshot``), so
Clara picks up where things were without replaying everything.  Time comes
from an injected clock, so tests exercise timeouts without waiting.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from .db import session_factory
from .models import ConversationSession, Message, Project
from .models.base import utcnow

#: Key in a message's metadata naming the turn it was written with (see add_messages).
TURN_KEY = "turn"


@dataclass(frozen=True)
class SessionInfo:
    id: uuid.UUID
    started_new: bool
    snapshot: str | None  # summary of the previous session, when starting anew
    previous_id: uuid.UUID | None


@dataclass(frozen=True)
class StoredMessage:
    role: str
    user_id: str
    content: str
    created_at: datetime


class SessionStore:
    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = session_factory(engine)
        self.clock = clock

    async def _project_id(self, db, owner_id: str, name: str) -> uuid.UUID:
        stmt = (
            insert(Project)
            .values(id=uuid.uuid4(), owner_id=owner_id, name=name)
            .on_conflict_do_nothing(constraint="uq_projects_owner_name")
        )
        await db.execute(stmt)
        return await db.scalar(
            select(Project.id).where(Project.owner_id == owner_id, Project.name == name)
        )

    async def get_or_start(
        self,
        user_id: str,
        context_id: str,
        *,
        project: str,
        idle_minutes: float,
        at: datetime | None = None,
    ) -> SessionInfo:
        """The open session, or a new one after ``idle_minutes`` of silence.

        ``at``: when the turn happened, for turns stored late (queued during a
        PostgreSQL outage): idleness is judged at that time, not at replay."""
        now = at or self.clock()
        async with self._db() as db:
            current = await db.scalar(
                select(ConversationSession)
                .where(
                    ConversationSession.user_id == user_id,
                    ConversationSession.context_id == context_id,
                    ConversationSession.archived.is_(False),
                )
                .order_by(ConversationSession.last_activity_at.desc())
                .limit(1)
                .with_for_update()
            )
            if current is not None and now - current.last_activity_at < timedelta(
                minutes=idle_minutes
            ):
                return SessionInfo(current.id, False, None, current.previous_session_id)
            previous_id = None
            snapshot = None
            if current is not None:
                current.archived = True
                current.ended_at = current.ended_at or current.last_activity_at
                previous_id = current.id
                snapshot = current.session_summary or await self._fallback_snapshot(db, current.id)
            new = ConversationSession(
                project_id=await self._project_id(db, user_id, project),
                user_id=user_id,
                context_id=context_id,
                started_at=now,
                last_activity_at=now,
                previous_session_id=previous_id,
                context_snapshot=snapshot,
            )
            db.add(new)
            await db.commit()
            return SessionInfo(new.id, True, snapshot, previous_id)

    async def _fallback_snapshot(self, db, session_id: uuid.UUID, limit: int = 10) -> str | None:
        """No summary yet: the last few messages stand in for one."""
        rows = (
            await db.execute(
                select(Message.role, Message.content)
                .where(Message.session_id == session_id)
                .order_by(Message.id.desc())
                .limit(limit)
            )
        ).all()
        if not rows:
            return None
        return "\n".join(f"{role}: {content[:300]}" for role, content in reversed(rows))

    async def add_messages(
        self,
        session_id: uuid.UUID,
        messages: Sequence[tuple[str, str, str, str | None]],
        *,
        at: datetime | None = None,
        turn_id: str | None = None,
    ) -> None:
        """(role, user_id, content, platform_message_id) rows, and the session's activity time.

        ``at``: when they were said (a late write keeps its time); ``turn_id``
        marks the rows so that a replayed write can tell it already landed."""
        now = at or self.clock()
        meta = {TURN_KEY: turn_id} if turn_id is not None else {}
        async with self._db() as db:
            for role, user_id, content, platform_id in messages:
                db.add(
                    Message(
                        session_id=session_id,
                        user_id=user_id,
                        role=role,
                        content=content,
                        platform_message_id=platform_id,
                        created_at=now,
                        meta=meta,
                    )
                )
            await db.execute(
                update(ConversationSession)
                .where(
                    ConversationSession.id == session_id,
                    # a late write must not move the activity time backwards
                    ConversationSession.last_activity_at < now,
                )
                .values(last_activity_at=now)
            )
            await db.commit()

    async def has_turn(self, user_id: str, turn_id: str) -> bool:
        """Whether rows written with ``turn_id`` for ``user_id`` exist."""
        async with self._db() as db:
            found = await db.scalar(
                select(Message.id)
                .where(Message.user_id == user_id, Message.meta.contains({TURN_KEY: turn_id}))
                .limit(1)
            )
            return found is not None

    async def ping(self) -> None:
        """Raise unless PostgreSQL answers."""
        async with self._db() as db:
            await db.execute(select(1))

    async def messages(self, session_id: uuid.UUID, limit: int = 20) -> list[StoredMessage]:
        async with self._db() as db:
            rows = (
                await db.execute(
                    select(Message)
                    .where(Message.session_id == session_id)
                    .order_by(Message.id.desc())
                    .limit(limit)
                )
            ).scalars()
            return [StoredMessage(m.role, m.user_id, m.content, m.created_at) for m in rows][::-1]

    async def idle_unsummarised(self, idle_minutes: float, limit: int = 20) -> list[uuid.UUID]:
        cutoff = self.clock() - timedelta(minutes=idle_minutes)
        async with self._db() as db:
            rows = await db.scalars(
                select(ConversationSession.id)
                .where(
                    ConversationSession.session_summary.is_(None),
                    ConversationSession.last_activity_at < cutoff,
                    ConversationSession.messages.any(),
                )
                .order_by(ConversationSession.last_activity_at)
                .limit(limit)
            )
            return list(rows)

    async def set_summary(self, session_id: uuid.UUID, summary: str) -> None:
        async with self._db() as db:
            await db.execute(
                update(ConversationSession)
                .where(ConversationSession.id == session_id)
                .values(session_summary=summary)
            )
            await db.commit()

    async def recent_context_owners(self, prefix: str, *, since: datetime, limit: int) -> list[str]:
        """The users with a session in a context starting with ``prefix`` (e.g. their
        DMs) active since ``since``, the most recently active first."""
        last = func.max(ConversationSession.last_activity_at)
        async with self._db() as db:
            rows = await db.execute(
                select(ConversationSession.user_id, last)
                .where(
                    ConversationSession.context_id.startswith(prefix, autoescape=True),
                    ConversationSession.last_activity_at >= since,
                )
                .group_by(ConversationSession.user_id)
                .order_by(last.desc())
                .limit(limit)
            )
            return [user_id for user_id, _ in rows]
