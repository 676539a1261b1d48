"""Conversation history that survives a PostgreSQL outage.

Each answered turn is written to its session (``storage.sessions``), from
which the next session's summary is built.  When PostgreSQL can't be reached
the turn goes to a durable, ordered on-disk queue instead — Cortex's outbox
(``cortex/outbox.py``: one fsynced 0600 file per entry, applied strictly in
order) under CLARA_DATA_DIR/session-outbox — and is replayed when PostgreSQL
is back, with the time it was said, so it lands in the session it belongs to.

While anything is queued, newer turns queue behind it and no session is
opened: a session opened "now" would get ahead of the turns said before it.
During an outage the turn path does not touch PostgreSQL at all (a dead
server can cost a connect timeout per call); a background loop probes it and
replays the queue.  The outage is logged once when it starts and once when
it ends, not on every turn.

Replay is idempotent: each queued turn carries an id that is stored with its
rows, and a turn whose rows already exist (a crash between commit and the
queue file's deletion) is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from clara_core.cortex.health import postgres_down
from clara_core.cortex.outbox import Outbox
from clara_core.cortex.types import CortexError
from storage.sessions import SessionInfo, SessionStore

log = logging.getLogger(__name__)

OUTBOX_DIR = "session-outbox"

#: (role, user_id, content, platform_message_id), as ``SessionStore.add_messages`` takes them.
Row = tuple[str, str, str, str | None]


class SessionLog:
    def __init__(
        self,
        store: SessionStore,
        outbox_dir: Path,
        *,
        project: str,
        idle_minutes: float,
        clock: Callable[[], datetime] | None = None,
        retry_interval: float = 2.0,
        max_retry_interval: float = 30.0,
    ) -> None:
        self.store = store
        self.outbox = Outbox(outbox_dir, what="conversation history")
        self.project = project
        self.idle_minutes = idle_minutes
        self.clock = clock or store.clock  # the store's clock: one notion of "now"
        self.retry_interval = retry_interval
        self.max_retry_interval = max_retry_interval
        self._opened = False
        self._open_lock = asyncio.Lock()
        self._down = False  # PostgreSQL was found unreachable and has not answered since
        self._retry: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return self.outbox.pending

    async def start(self) -> None:
        """Replay turns queued before a restart (if any); cheap when there are none."""
        try:
            if await asyncio.to_thread(self.outbox.directory.is_dir):
                await self._open()
                if self.outbox.pending:
                    self._ensure_retry()
        except Exception:
            log.exception("could not read the queue of conversation history")

    async def _open(self) -> None:
        async with self._open_lock:
            if not self._opened:
                await self.outbox.open()
                self._opened = True

    # -- the turn path -------------------------------------------------------

    async def begin(self, user_id: str, context_id: str) -> SessionInfo | None:
        """The session this turn belongs to, or None when it can't be known now (the
        turn is then queued by ``record`` and finds its session on replay)."""
        if self._down:
            return None
        try:
            if not self._opened and await asyncio.to_thread(self.outbox.directory.is_dir):
                await self._open()  # turns queued before a restart
            if self._opened and self.outbox.pending:
                await self.flush()  # earlier turns first
        except Exception:
            # The queue's disk failed: the reply must go on all the same.
            log.exception("could not replay queued conversation history")
        if self._opened and self.outbox.pending:
            return None
        try:
            return await self.store.get_or_start(
                user_id, context_id, project=self.project, idle_minutes=self.idle_minutes
            )
        except Exception as exc:
            if not postgres_down(exc):
                log.warning("could not open a session: %s", exc)
                return None
            self._mark_down(exc)
            return None

    async def record(
        self, session: SessionInfo | None, user_id: str, context_id: str, rows: Sequence[Row]
    ) -> None:
        """Store one turn now, or queue it durably when PostgreSQL can't take it."""
        at = self.clock()
        if session is not None and not self._down and not (self._opened and self.pending):
            try:
                await self.store.add_messages(session.id, rows, at=at)
                return
            except Exception as exc:
                if not postgres_down(exc):
                    log.warning("could not store the conversation: %s", exc)
                    return
                self._mark_down(exc)
        await self._queue(session, user_id, context_id, rows, at)

    async def _queue(
        self,
        session: SessionInfo | None,
        user_id: str,
        context_id: str,
        rows: Sequence[Row],
        at: datetime,
    ) -> None:
        try:
            await self._open()
        except Exception as exc:
            log.error("could not queue a conversation turn: %s", exc)
            return
        op: dict[str, Any] = {
            "op": "turn",
            "id": uuid.uuid4().hex,
            "user_id": user_id,
            "context_id": context_id,
            "session_id": str(session.id) if session is not None else None,
            "at": at.isoformat(),
            "rows": [list(r) for r in rows],
        }
        try:
            await self.outbox.append(op)
        except CortexError as exc:
            # PostgreSQL and the disk both failed: this turn is lost from history.
            log.error("could not queue a conversation turn: %s", exc)
            return
        self._ensure_retry()

    # -- replay --------------------------------------------------------------

    async def flush(self) -> int:
        """Replay queued turns in order; stops (quietly) while PostgreSQL is down."""
        if not self._opened or not self.outbox.pending:
            return 0
        try:
            done = await self.outbox.drain(self._apply)
        except Exception as exc:
            if not postgres_down(exc):
                raise
            self._mark_down(exc)
            return 0
        self._mark_up(done)
        return done

    async def _apply(self, op: dict[str, Any]) -> None:
        try:
            await self._apply_turn(op)
        except Exception as exc:
            if postgres_down(exc):
                raise  # keep it and everything after it for the next try
            # Not an outage: this entry can never apply (e.g. its session was
            # deleted meanwhile).  Retrying it forever would block every later
            # turn behind it, so it is dropped, loudly.
            log.error("a queued conversation turn could not be stored and was dropped: %s", exc)

    async def _apply_turn(self, op: dict[str, Any]) -> None:
        user_id, turn_id = op["user_id"], op["id"]
        at = datetime.fromisoformat(op["at"])
        if await self.store.has_turn(user_id, turn_id):
            return  # applied before a crash, the queue file not yet deleted
        rows = [tuple(r) for r in op["rows"]]
        session_id = uuid.UUID(op["session_id"]) if op.get("session_id") else None
        if session_id is None:
            info = await self.store.get_or_start(
                user_id,
                op["context_id"],
                project=self.project,
                idle_minutes=self.idle_minutes,
                at=at,
            )
            session_id = info.id
        await self.store.add_messages(session_id, rows, at=at, turn_id=turn_id)  # type: ignore[arg-type]

    def _ensure_retry(self) -> None:
        if self._retry is None or self._retry.done():
            self._retry = asyncio.create_task(self._retry_loop(), name="session-log-retry")

    async def _retry_loop(self) -> None:
        delay = self.retry_interval
        while self._down or (self._opened and self.outbox.pending):
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_retry_interval)
            try:
                await self.store.ping()
            except Exception as exc:
                if not postgres_down(exc):
                    log.exception("session history: probing PostgreSQL failed")
                continue
            try:
                await self.flush()
            except Exception:
                # The queue itself failed (its disk): nothing was deleted, retry later.
                log.exception("session history: replaying queued turns failed")
                continue
            if not self.outbox.pending:
                self._mark_up(0)
                delay = self.retry_interval

    def _mark_down(self, exc: BaseException) -> None:
        if not self._down:
            log.warning(
                "PostgreSQL is unreachable (%s): conversation history is queued on disk "
                "and stored when it is back",
                type(exc).__name__,
            )
            self._down = True
        self._ensure_retry()

    def _mark_up(self, replayed: int) -> None:
        if self._down:
            self._down = False
            log.warning("PostgreSQL is reachable again: conversation history is stored again")
        if replayed:
            log.info("stored %d queued conversation turn(s)", replayed)

    # -- privacy and shutdown ------------------------------------------------

    async def purge_user(self, user_id: str) -> int:
        """Drop a user's queued turns (``/clara forget``): their words must not wait
        on disk for PostgreSQL, nor be written back after the forget."""
        if not await asyncio.to_thread(self.outbox.directory.is_dir):
            return 0
        await self._open()
        return await self.outbox.purge_user(user_id)

    async def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            await asyncio.gather(self._retry, return_exceptions=True)
            self._retry = None
