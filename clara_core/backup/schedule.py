"""The optional scheduled backup inside the running bot (BACKUP_INTERVAL_HOURS > 0).

Every interval, and once shortly after start, it runs the same ``Backups.run`` as
``backup run``: respawn protection (RESPAWN_PROTECTION_HOURS) decides whether a
backup is due, so a bot restarted ten times a day still backs up once, and one
that restarts every night before its interval elapsed still backs up at all.
pg_dump runs as a child process and boto3 in a worker thread: the event loop
keeps answering Discord while a backup runs.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from storage.job_claims import JobClaims

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from .service import Backups

log = logging.getLogger(__name__)

JOB_ID = "database-backup"


class BackupSchedule:
    def __init__(
        self,
        backups: Backups,
        database_url: str,
        engine: AsyncEngine,
        *,
        interval_hours: float,
        first_delay: timedelta = timedelta(minutes=2),
    ) -> None:
        self.backups = backups
        self.database_url = database_url
        self.engine = engine
        self.interval = timedelta(hours=interval_hours)
        # Not at once: start-up (model loading, the first answers) comes first.
        self.first_delay = first_delay
        self.scheduler: AsyncIOScheduler | None = None
        self._task: asyncio.Task | None = None
        # Several Clara processes on one database: one of them backs up per interval.
        self.claims = JobClaims(engine)

    def start(self) -> None:
        """Schedule the job on the running event loop (call from async code)."""
        if self.scheduler is not None:
            return
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.add_job(
            self.run_once,
            IntervalTrigger(seconds=self.interval.total_seconds(), timezone=UTC),
            id=JOB_ID,
            name=JOB_ID,
            next_run_time=datetime.now(UTC) + self.first_delay,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        scheduler.start()
        self.scheduler = scheduler
        log.info("database backup scheduled every %s", self.interval)

    async def run_once(self) -> None:
        self._task = asyncio.current_task()
        try:
            async with self.claims.slot(JOB_ID, self.interval) as mine:
                if not mine:
                    return
                result = await self.backups.run(self.database_url, self.engine, force=False)
        except Exception as exc:  # e.g. S3 down after the retries: the next tick tries again
            log.error("scheduled backup failed: %s", exc)
            return
        finally:
            self._task = None
        if result.skipped:
            log.info("scheduled backup skipped: %s", result.skipped)
        elif result.entry is not None:
            log.info(
                "scheduled backup stored: %s (%d bytes; %d old deleted)",
                result.entry.location,
                result.entry.size,
                len(result.deleted),
            )

    async def stop(self) -> None:
        """Stop scheduling and cancel a backup in flight: pg_dump is killed and its
        partial file removed, so shutdown does not wait minutes for a big dump."""
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down in a call_soon callback
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
