"""The Organic Response System's storage: each user's patterns and schedule,
notes, assessments and proactive messages.

Two guarantees live here, because only the database can give them across
processes:

- ``claim`` moves a due user's ``next_check_at`` forward with one conditional
  UPDATE: of two runners on one database exactly one gets the user.
- ``record_speak`` writes the message (``pending``) and moves
  ``last_proactive_at`` in one transaction, under the user's row lock and
  after re-checking the gap: a restart or a second process finds the send
  already recorded and never sends it again.  The Discord send happens after
  the commit; a crash in between leaves a ``pending`` row and no message
  (at most once is the right failure for an unsolicited message).  ``mark_lost``
  later turns such a row into ``lost`` (logged and counted for the operator),
  never into a second attempt.  The send itself happens while its row is locked
  (``send_locked``), and ``mark_lost`` skips locked rows: a send still in flight
  in a live process (however slow, whatever its clock says) is never called
  lost; a dead process's lock ends with its connection.
- ``claim_idle_summaries`` stamps ``summary_at`` before the model is asked, in
  one statement that skips rows another runner is stamping: of several
  processes exactly one summarises a conversation.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from .db import session_factory
from .models import (
    ConversationSession,
    Message,
    ProactiveAssessment,
    ProactiveMessage,
    ProactiveNote,
    UserInteractionPattern,
)


@dataclass(frozen=True)
class StoredPattern:
    user_id: str
    opted_in: bool | None
    talked_in_dm: bool
    last_channel_id: str | None
    last_user_message_at: datetime | None
    last_proactive_at: datetime | None
    unanswered: int
    proactive_sent: int
    proactive_answered: int
    active_hours: dict[str, int]
    #: ``{"text": ..., optional "not_before"/"not_after" "HH:MM", "days_off" [0-6]}``
    #: (companion/boundaries.py reads them; a boundary stored as a bare string is words only).
    boundaries: list[dict[str, Any]]
    last_summary: str | None
    open_threads: list[str]
    summary_at: datetime | None
    next_check_at: datetime


@dataclass(frozen=True)
class StoredNote:
    id: int
    kind: str
    text: str
    relevance: float
    created_at: datetime
    expires_at: datetime | None
    not_before: datetime | None
    source_message_ids: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class StoredProactive:
    id: int
    user_id: str
    at: datetime
    content: str
    reason: str
    channel_id: str | None
    status: str


def _boundary(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {"text": str(value)}


#: Called inside ``record_speak`` between the locked read and the write (a test seam:
#: the send-once test holds two runners there to force the race deterministically).
RecordHook = Callable[[str], Awaitable[None]]


def _pattern(row: UserInteractionPattern) -> StoredPattern:
    return StoredPattern(
        row.user_id,
        row.opted_in,
        row.talked_in_dm,
        row.last_channel_id,
        row.last_user_message_at,
        row.last_proactive_at,
        row.unanswered,
        row.proactive_sent,
        row.proactive_answered,
        {str(k): int(v) for k, v in (row.active_hours or {}).items()},
        [_boundary(b) for b in row.boundaries or ()],
        row.last_summary,
        [str(t) for t in row.open_threads or ()],
        row.summary_at,
        row.next_check_at,
    )


def _new_pattern(user_id: str, next_check_at: datetime, **values: Any) -> dict[str, Any]:
    """A user's first row: never chose, never wrote, nothing sent (``values`` override)."""
    return {
        "user_id": user_id,
        "talked_in_dm": False,
        "unanswered": 0,
        "proactive_sent": 0,
        "proactive_answered": 0,
        "active_hours": {},
        "boundaries": [],
        "open_threads": [],
        "next_check_at": next_check_at,
        **values,
    }


class ProactiveStore:
    def __init__(self, engine: AsyncEngine, *, record_hook: RecordHook | None = None) -> None:
        self._db = session_factory(engine)
        self._record_hook = record_hook

    # -- what the conversation tells ORS -------------------------------------
    async def saw_message(
        self,
        user_id: str,
        at: datetime,
        *,
        channel_id: str | None,
        is_dm: bool,
        local_hour: int,
        first_check_at: datetime,
    ) -> None:
        """The user wrote: activity, active hours, and an answer to any pending
        proactive message (the back-off resets)."""
        hour = str(local_hour)
        new = _new_pattern(
            user_id,
            first_check_at,
            talked_in_dm=is_dm,
            last_channel_id=channel_id,
            last_user_message_at=at,
            active_hours={hour: 1},
        )
        t = UserInteractionPattern.__table__.c
        stmt = insert(UserInteractionPattern).values(**new)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.user_id],
            set_={
                "talked_in_dm": t.talked_in_dm | stmt.excluded.talked_in_dm,
                "last_channel_id": func.coalesce(stmt.excluded.last_channel_id, t.last_channel_id),
                "last_user_message_at": stmt.excluded.last_user_message_at,
                "proactive_answered": t.proactive_answered
                + func.least(t.unanswered, 1),  # one answer per reply, not per message sent
                "unanswered": 0,
                "active_hours": t.active_hours.op("||")(
                    func.jsonb_build_object(
                        hour, func.coalesce((t.active_hours[hour]).as_integer(), 0) + 1
                    )
                ),
            },
        )
        async with self._db() as db:
            await db.execute(stmt)
            await db.execute(
                update(ProactiveMessage)
                .where(
                    ProactiveMessage.user_id == user_id,
                    ProactiveMessage.answered_at.is_(None),
                    ProactiveMessage.at <= at,
                )
                .values(answered_at=at)
            )
            await db.commit()

    async def set_opt_in(self, user_id: str, on: bool, now: datetime) -> None:
        t = UserInteractionPattern.__table__.c
        stmt = insert(UserInteractionPattern).values(**_new_pattern(user_id, now, opted_in=on))
        stmt = stmt.on_conflict_do_update(index_elements=[t.user_id], set_={"opted_in": on})
        async with self._db() as db:
            await db.execute(stmt)
            await db.commit()

    async def set_summary(
        self, user_id: str, summary: str | None, open_threads: list[str], at: datetime
    ) -> None:
        """``summary`` None: looked at, nothing new (the last summary stays)."""
        values: dict[str, object] = {"summary_at": at}
        if summary is not None:
            values.update(last_summary=summary, open_threads=list(open_threads))
        async with self._db() as db:
            await db.execute(
                update(UserInteractionPattern)
                .where(UserInteractionPattern.user_id == user_id)
                .values(**values)
            )
            await db.commit()

    async def claim_idle_summaries(
        self, now: datetime, idle: timedelta, limit: int
    ) -> list[tuple[str, datetime | None]]:
        """Users silent for ``idle`` whose last conversation ORS has not summarised yet,
        claimed: ``summary_at`` becomes ``now`` in the same
        statement (rows another runner is claiming are skipped), so no other runner
        picks these users.  Returns ``(user_id, the summary_at before)``; hand the
        latter to ``release_summary`` when the summary could not be made."""
        p = UserInteractionPattern
        due = (p.last_user_message_at < now - idle) & (
            (p.summary_at.is_(None)) | (p.summary_at < p.last_user_message_at)
        )
        picked = (
            select(p.user_id, p.summary_at.label("previous"))
            .where(due)
            .order_by(p.last_user_message_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("picked")
        )
        async with self._db() as db:
            rows = (
                await db.execute(
                    update(p)
                    .where(p.user_id == picked.c.user_id, due)
                    .values(summary_at=now)
                    .returning(p.user_id, picked.c.previous)
                    .execution_options(synchronize_session=False)
                )
            ).all()
            await db.commit()
        return sorted(((u, prev) for u, prev in rows), key=lambda r: r[0])

    async def release_summary(
        self, user_id: str, claimed_at: datetime, previous: datetime | None
    ) -> None:
        """Undo ``claim_idle_summaries`` for one user (the model was away): the next
        pass tries again.  Only if nothing was stored since (``summary_at`` is still
        the claim's)."""
        p = UserInteractionPattern
        async with self._db() as db:
            await db.execute(
                update(p)
                .where(p.user_id == user_id, p.summary_at == claimed_at)
                .values(summary_at=previous)
            )
            await db.commit()

    async def recent_messages(self, user_id: str, limit: int = 30) -> list[tuple[int, str, str]]:
        """``(id, role, content)`` of the user's latest conversation turns, oldest first:
        the rows of the user's sessions, so Clara's answers (stored under her own
        name) and her proactive messages are part of the conversation summarised."""
        mine = select(ConversationSession.id).where(ConversationSession.user_id == user_id)
        async with self._db() as db:
            rows = await db.execute(
                select(Message.id, Message.role, Message.content)
                .where((Message.user_id == user_id) | Message.session_id.in_(mine))
                .order_by(Message.id.desc())
                .limit(limit)
            )
            return [(i, r, c) for i, r, c in rows.all()][::-1]

    async def _ensure_pattern(self, db, user_id: str, now: datetime) -> UserInteractionPattern:
        """The user's row, locked; created (never chose, never wrote) when missing."""
        await db.execute(
            insert(UserInteractionPattern)
            .values(**_new_pattern(user_id, now))
            .on_conflict_do_nothing(index_elements=[UserInteractionPattern.user_id])
        )
        return (
            await db.execute(
                select(UserInteractionPattern)
                .where(UserInteractionPattern.user_id == user_id)
                .with_for_update()
            )
        ).scalar_one()

    async def add_boundary(
        self, user_id: str, boundary: dict[str, Any] | str, now: datetime, *, limit: int = 10
    ) -> list[dict[str, Any]]:
        """Append a boundary (the same words again replace the old entry); at most
        ``limit`` are kept, the oldest dropped.  Returns the user's boundaries."""
        item = _boundary(boundary)
        same = str(item.get("text", "")).casefold()
        async with self._db() as db:
            row = await self._ensure_pattern(db, user_id, now)
            kept = [
                b
                for b in (_boundary(x) for x in row.boundaries or ())
                if str(b.get("text", "")).casefold() != same
            ]
            result = [*kept, item][-limit:]
            row.boundaries = result
            await db.commit()
            return result

    async def remove_boundary(self, user_id: str, index: int | None) -> list[dict[str, Any]]:
        """Drop the ``index``-th boundary (0-based), or all of them (``None``).
        Returns what is left."""
        async with self._db() as db:
            row = (
                await db.execute(
                    select(UserInteractionPattern)
                    .where(UserInteractionPattern.user_id == user_id)
                    .with_for_update()
                )
            ).scalar_one_or_none()
            if row is None:
                return []
            items = [_boundary(b) for b in row.boundaries or ()]
            if index is None:
                items = []
            elif 0 <= index < len(items):
                del items[index]
            row.boundaries = items
            await db.commit()
            return items

    async def latest_session_summary(self, user_id: str) -> tuple[uuid.UUID, str] | None:
        """The user's most recent summarised conversation (storage/sessions.py writes it)."""
        async with self._db() as db:
            row = (
                await db.execute(
                    select(ConversationSession.id, ConversationSession.session_summary)
                    .where(
                        ConversationSession.user_id == user_id,
                        ConversationSession.session_summary.is_not(None),
                    )
                    .order_by(ConversationSession.last_activity_at.desc())
                    .limit(1)
                )
            ).first()
        return (row[0], row[1]) if row is not None else None

    # -- the runner ------------------------------------------------------------
    async def due_users(self, now: datetime, limit: int) -> list[str]:
        async with self._db() as db:
            rows = await db.scalars(
                select(UserInteractionPattern.user_id)
                .where(UserInteractionPattern.next_check_at <= now)
                .order_by(UserInteractionPattern.next_check_at)
                .limit(limit)
            )
            return list(rows)

    async def claim_due(self, now: datetime, lease: timedelta, limit: int) -> list[StoredPattern]:
        """Take every due user (up to ``limit``) for this pass in one statement: rows
        another runner is claiming right now are skipped, not waited for, and the
        condition is re-checked under the row lock, so no user goes to two runners."""
        p = UserInteractionPattern
        due = (
            select(p.user_id)
            .where(p.next_check_at <= now)
            .order_by(p.next_check_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        async with self._db() as db:
            rows = (
                await db.execute(
                    update(p)
                    .where(p.user_id.in_(due), p.next_check_at <= now)
                    .values(next_check_at=now + lease)
                    .returning(p)
                    .execution_options(synchronize_session=False)
                )
            ).scalars()
            claimed = [_pattern(r) for r in rows]
            await db.commit()
        return sorted(claimed, key=lambda c: c.user_id)

    async def pattern(self, user_id: str) -> StoredPattern | None:
        async with self._db() as db:
            row = await db.get(UserInteractionPattern, user_id)
            return _pattern(row) if row is not None else None

    async def notes(self, user_id: str, now: datetime) -> list[StoredNote]:
        """Unused, unexpired notes."""
        async with self._db() as db:
            rows = await db.scalars(
                select(ProactiveNote)
                .where(
                    ProactiveNote.user_id == user_id,
                    ProactiveNote.used_at.is_(None),
                    (ProactiveNote.expires_at.is_(None)) | (ProactiveNote.expires_at > now),
                )
                .order_by(ProactiveNote.created_at)
            )
            return [
                StoredNote(
                    n.id,
                    n.kind,
                    n.text,
                    n.relevance,
                    n.created_at,
                    n.expires_at,
                    n.not_before,
                    tuple(str(s) for s in n.source_message_ids or ()),
                )
                for n in rows
            ]

    async def add_note(
        self,
        user_id: str,
        *,
        kind: str,
        text: str,
        relevance: float,
        created_at: datetime,
        expires_at: datetime | None = None,
        not_before: datetime | None = None,
        source_message_ids: tuple[str, ...] = (),
    ) -> int:
        async with self._db() as db:
            note = ProactiveNote(
                user_id=user_id,
                kind=kind[:32],
                text=text,
                relevance=max(0.0, min(1.0, relevance)),
                created_at=created_at,
                expires_at=expires_at,
                not_before=not_before,
                source_message_ids=list(source_message_ids),
            )
            db.add(note)
            await db.commit()
            return note.id

    async def finish(
        self,
        user_id: str,
        now: datetime,
        *,
        action: str,
        reason: str,
        next_check_at: datetime,
    ) -> None:
        """The assessment's record and the next look, in one transaction."""
        async with self._db() as db:
            db.add(
                ProactiveAssessment(
                    user_id=user_id,
                    at=now,
                    action=action,
                    reason=reason,
                    next_check_at=next_check_at,
                )
            )
            await db.execute(
                update(UserInteractionPattern)
                .where(UserInteractionPattern.user_id == user_id)
                .values(next_check_at=next_check_at)
            )
            await db.commit()

    async def record_speak(
        self,
        user_id: str,
        now: datetime,
        *,
        content: str,
        reason: str,
        channel_id: str | None,
        min_gap: timedelta,
        used_note_ids: tuple[int, ...] = (),
    ) -> int | None:
        """Record the message before it is sent; ``None`` when, under the row lock,
        a message went out less than ``min_gap`` ago (another runner, a replay)."""
        async with self._db() as db:
            row = (
                await db.execute(
                    select(UserInteractionPattern)
                    .where(UserInteractionPattern.user_id == user_id)
                    .with_for_update()
                )
            ).scalar_one_or_none()
            if self._record_hook is not None:
                await self._record_hook(user_id)
            if row is None or (
                row.last_proactive_at is not None and now - row.last_proactive_at < min_gap
            ):
                await db.rollback()
                return None
            message = ProactiveMessage(
                user_id=user_id,
                at=now,
                content=content,
                reason=reason,
                channel_id=channel_id,
                status="pending",
            )
            db.add(message)
            row.last_proactive_at = now
            row.unanswered = row.unanswered + 1
            row.proactive_sent = row.proactive_sent + 1
            if used_note_ids:
                await db.execute(
                    update(ProactiveNote)
                    .where(ProactiveNote.id.in_(used_note_ids))
                    .values(used_at=now)
                )
            await db.commit()
            return message.id

    async def send_locked(self, message_id: int, send: Callable[[], Awaitable[bool]]) -> bool:
        """Run ``send`` while the recorded message's row is locked, then store its
        outcome (``sent`` or ``failed``) in the same transaction.  The lock tells
        ``mark_lost`` in every process that this send is in flight; PostgreSQL
        drops it with the connection if this process dies.  ``send`` raising
        leaves the row ``failed`` (never retried: never sent twice); cancelled
        mid-send (shutdown), whether it went out is unknown: it stays ``pending``
        and the sweep calls it lost later, as after a crash."""
        m = ProactiveMessage
        async with self._db() as db:
            await db.execute(select(m.id).where(m.id == message_id).with_for_update())
            try:
                ok = await send()
            except Exception:
                await db.execute(update(m).where(m.id == message_id).values(status="failed"))
                await db.commit()
                raise
            # (Cancelled: nothing written; the session's end rolls back and unlocks.)
            await db.execute(
                update(m).where(m.id == message_id).values(status="sent" if ok else "failed")
            )
            await db.commit()
        return ok

    async def mark_lost(self, now: datetime, older_than: timedelta) -> list[StoredProactive]:
        """Sends recorded more than ``older_than`` ago and never confirmed: the process
        died between the record and the post (or during the post).  They become
        ``lost`` and are returned for the log; re-sending them blindly could post a
        message twice, which the send-once promise forbids (the rules let Clara speak
        again later if there is still a reason)."""
        m = ProactiveMessage
        stale = (m.status == "pending") & (m.at < now - older_than)
        # A row locked by ``send_locked`` is a send in flight in a live process: skipped.
        unlocked = select(m.id).where(stale).with_for_update(skip_locked=True).scalar_subquery()
        async with self._db() as db:
            rows = (
                await db.execute(
                    update(ProactiveMessage)
                    .where(ProactiveMessage.id.in_(unlocked), stale)
                    .values(status="lost")
                    .returning(ProactiveMessage)
                    .execution_options(synchronize_session=False)
                )
            ).scalars()
            lost = [
                StoredProactive(m.id, m.user_id, m.at, m.content, m.reason, m.channel_id, m.status)
                for m in rows
            ]
            await db.commit()
        return lost

    async def status_counts(self) -> dict[str, int]:
        """Proactive messages by status (sent, failed, pending, lost): for the monitor
        and ``doctor``."""
        async with self._db() as db:
            rows = await db.execute(
                select(ProactiveMessage.status, func.count()).group_by(ProactiveMessage.status)
            )
            return {status: int(n) for status, n in rows.all()}

    async def messages(self, user_id: str | None = None) -> list[StoredProactive]:
        async with self._db() as db:
            stmt = select(ProactiveMessage).order_by(ProactiveMessage.at, ProactiveMessage.id)
            if user_id is not None:
                stmt = stmt.where(ProactiveMessage.user_id == user_id)
            rows = await db.scalars(stmt)
            return [
                StoredProactive(m.id, m.user_id, m.at, m.content, m.reason, m.channel_id, m.status)
                for m in rows
            ]

    async def assessments(self, user_id: str) -> list[tuple[datetime, str, str]]:
        async with self._db() as db:
            rows = await db.execute(
                select(
                    ProactiveAssessment.at, ProactiveAssessment.action, ProactiveAssessment.reason
                )
                .where(ProactiveAssessment.user_id == user_id)
                .order_by(ProactiveAssessment.at, ProactiveAssessment.id)
            )
            return [(a, b, c) for a, b, c in rows.all()]

    async def delete_user_data(self, user_id: str) -> int:
        """``/clara forget``: everything ORS holds about the user."""
        count = 0
        async with self._db() as db:
            for model in (ProactiveMessage, ProactiveAssessment, ProactiveNote):
                result = await db.execute(delete(model).where(model.user_id == user_id))
                count += result.rowcount
            result = await db.execute(
                delete(UserInteractionPattern).where(UserInteractionPattern.user_id == user_id)
            )
            count += result.rowcount
            await db.commit()
        return count
