"""Scheduled jobs run once across Clara processes that share one PostgreSQL.

Every process keeps its own APScheduler trigger (so a lone process behaves as it
always did, and any process can take over when another stops); when a trigger
fires, ``JobClaims.slot`` decides whether *this* process does the work:

1. ``pg_try_advisory_lock`` on a connection held for the whole run: a run still
   going in another process (a consolidation longer than its interval) is never
   overlapped.  A session lock, not a lease column, because PostgreSQL drops it
   the moment the holder's connection ends (a crash, a kill -9): no lease to
   guess, nothing to wait out after a crash, however long a healthy run takes.
2. One conditional upsert on ``scheduled_job_runs``: the slot is taken only when
   the last start is at least ``SLOT_SHARE`` of the interval old, measured by the
   database's ``now()`` (process clocks may disagree; the database's does not).
   Of several processes whose triggers fire near the same time, exactly one moves
   ``last_started_at``; the others find the slot taken and skip.  ``SLOT_SHARE``
   below 1 keeps a process's own next tick (a little early by timer jitter)
   from finding its own slot still "fresh".

Why not APScheduler's shared job store: APScheduler 3 does not support several
schedulers on one job store (each would run every due job), and its SQLAlchemy
store is synchronous (blocking calls on the event loop); 4.x, which coordinates
schedulers, is still a pre-release.
Why not leader election: a leader that dies mid-run must be detected by a lease
anyway; the per-job lock needs no detection and spreads the jobs over processes.

PostgreSQL unreachable when a job is due: one warning line, the tick is skipped,
the next tick tries again (the job would have needed the database anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clara_core.errors import one_line

log = logging.getLogger(__name__)

#: A slot is free once the last start is this share of the interval old.
SLOT_SHARE = 0.9
#: The first key of the two-key advisory lock: Clara's jobs ('Clar'), so they
#: cannot collide with another application's locks on the same database.
LOCK_SPACE = 0x436C6172
#: Claiming is three short statements; longer means PostgreSQL is in trouble.
CLAIM_TIMEOUT_S = 10.0
#: Errors that mean PostgreSQL is unreachable, not that a statement was wrong.
_DOWN = (OperationalError, InterfaceError, OSError, TimeoutError)

_LOCK = text("SELECT pg_try_advisory_lock(:space, hashtext(:job))")
_UNLOCK = text("SELECT pg_advisory_unlock(:space, hashtext(:job))")
_CLAIM = text(
    """
    INSERT INTO scheduled_job_runs AS r (job, last_started_at, holder)
    VALUES (:job, now(), :holder)
    ON CONFLICT (job) DO UPDATE
        SET last_started_at = now(), last_finished_at = NULL, holder = EXCLUDED.holder
        WHERE r.last_started_at <= now() - make_interval(secs => :slot)
    RETURNING r.job
    """
)
_FINISH = text("UPDATE scheduled_job_runs SET last_finished_at = now() WHERE job = :job")


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


class JobClaims:
    def __init__(self, engine: AsyncEngine, *, holder: str | None = None) -> None:
        self.engine = engine
        self.holder = holder or default_holder()

    @contextlib.asynccontextmanager
    async def slot(self, job: str, every: timedelta) -> AsyncIterator[bool]:
        """``True`` inside: this process runs ``job``'s current slot (the lock is held
        until the block ends); ``False``: another process has it, or runs it still,
        or PostgreSQL is unreachable; skip this tick."""
        conn = await self._acquire(job, every)
        if conn is None:
            yield False
            return
        try:
            yield True
        finally:
            await self._release(conn, job)

    async def _acquire(self, job: str, every: timedelta) -> AsyncConnection | None:
        params = {"space": LOCK_SPACE, "job": job}
        conn: AsyncConnection | None = None
        try:
            async with asyncio.timeout(CLAIM_TIMEOUT_S):
                conn = await self.engine.connect()
                locked = bool(await conn.scalar(_LOCK, params))
                await conn.commit()
                if not locked:
                    log.info("scheduled job %s: still running in another process; skipped", job)
                    await conn.close()
                    return None
                claimed = (
                    await conn.execute(
                        _CLAIM,
                        {
                            "job": job,
                            "holder": self.holder,
                            "slot": every.total_seconds() * SLOT_SHARE,
                        },
                    )
                ).first()
                await conn.commit()
                if claimed is None:
                    log.debug("scheduled job %s: this slot ran in another process", job)
                    await conn.execute(_UNLOCK, params)
                    await conn.commit()
                    await conn.close()
                    return None
                return conn
        except BaseException as exc:
            if conn is not None:
                # The lock (if taken) dies with the connection, never back into the pool.
                with contextlib.suppress(Exception):
                    await conn.invalidate()
            if isinstance(exc, _DOWN) or (
                isinstance(exc, DBAPIError) and exc.connection_invalidated
            ):
                log.warning(
                    "scheduled job %s skipped: PostgreSQL is unreachable (%s); "
                    "the next tick tries again",
                    job,
                    one_line(exc),
                )
                return None
            raise

    async def _release(self, conn: AsyncConnection, job: str) -> None:
        try:
            async with asyncio.timeout(CLAIM_TIMEOUT_S):
                await conn.execute(_FINISH, {"job": job})
                await conn.execute(_UNLOCK, {"space": LOCK_SPACE, "job": job})
                await conn.commit()
                await conn.close()
        except BaseException as exc:
            # Closing the connection releases the lock all the same.
            with contextlib.suppress(Exception):
                await conn.invalidate()
            if not isinstance(exc, Exception):
                raise
            log.warning("scheduled job %s: could not record its end (%s)", job, one_line(exc))
