"""The consolidation runner: per-user runs, all-user sweeps, and the schedule (spec 8.6).

A run for one user does patterns → contradictions → compaction (when due) →
hot cleanup.  Each step's failure is recorded and the next step still runs:
contradiction detection does not need pattern extraction to have worked.  Every
run writes one ``consolidation_logs`` row, failures included, and one user's
failure never stops the sweep over the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from storage.job_claims import JobClaims

from ..hot import PREFIX
from ..types import check_user_id
from .compaction import CompactionJob
from .contradictions import ContradictionDetector
from .patterns import PatternExtractor
from .records import JOB_CLEANUP, JOB_COMPACTION, JOB_CONSOLIDATION, RunReport, RunSummary

if TYPE_CHECKING:
    from clara_core.config import Settings

    from ..hot import HotStore
    from ..ports import Embedder, TextModel
    from ..warm import WarmStore
    from .ledger import ConsolidationLedger

log = logging.getLogger(__name__)

JOB_IDS = ("cortex_consolidation", "cortex_cleanup", "cortex_compaction")


class WorkQueue(Protocol):
    """Where sweeps put per-user jobs for worker processes (clara_core.worker)."""

    async def consolidate(self, user_id: str, *, run_id: str, compact: bool | None) -> None: ...

    async def compact(self, user_id: str, *, run_id: str) -> None: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


async def working_memory_users(hot: HotStore) -> list[str]:
    """Users with a working-memory key in Redis.

    SCAN, not KEYS: KEYS blocks Redis for the whole keyspace walk."""
    users: set[str] = set()
    async for key in hot.redis.scan_iter(match=f"{PREFIX}:*:working", count=500):
        name = key.decode() if isinstance(key, bytes) else str(key)
        parts = name.split(":")
        if len(parts) == 3:  # user ids cannot contain ':' (check_user_id)
            users.add(parts[1])
    return sorted(users)


class ConsolidationRunner:
    def __init__(
        self,
        warm: WarmStore,
        hot: HotStore,
        ledger: ConsolidationLedger,
        model: TextModel,
        embedder: Embedder,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = _now,
        claims: JobClaims | None = None,
    ) -> None:
        self.warm = warm
        self.hot = hot
        self.ledger = ledger
        self.model = model
        self.embedder = embedder
        self.settings = settings
        self.clock = clock
        self.patterns = PatternExtractor(warm, hot, model, embedder, settings, clock=clock)
        self.contradictions = ContradictionDetector(warm, ledger, model, settings)
        self.compaction = CompactionJob(warm, model, embedder, settings, clock=clock)
        self.scheduler: AsyncIOScheduler | None = None
        #: Set (CORTEX_WORKER_QUEUE): sweeps queue one job per user for the worker
        #: processes instead of consolidating here (clara_core.worker).
        self.queue: WorkQueue | None = None
        #: Several Clara processes on one database: each scheduled slot runs in one.
        self.claims = claims or JobClaims(warm.engine)
        self._job_tasks: set[asyncio.Task[Any]] = set()

    # -- one user -------------------------------------------------------------

    async def run_for_user(
        self, user_id: str, *, compact: bool | None = None, run_id: str | None = None
    ) -> RunReport:
        """Consolidate one user; ``compact``: True always, False never, None when due.

        Never raises for a step's failure: it is in ``report.error`` and the log row.
        ``run_id`` groups the rows of one sweep."""
        check_user_id(user_id)
        report = RunReport(user_id=user_id, job=JOB_CONSOLIDATION, started_at=self.clock())
        if run_id is not None:
            report.run_id = run_id
        started = time.monotonic()
        errors: list[str] = []

        async def step(name: str, fn: Callable[[], Awaitable[None]]) -> None:
            try:
                await fn()
            except Exception as exc:
                log.warning("consolidation of %s: %s failed: %r", user_id, name, exc)
                errors.append(f"{name}: {_error_text(exc)}")

        async def patterns() -> None:
            found = await self.patterns.run(user_id)
            report.memories_processed += found.memories_read
            report.patterns_found = found.found
            report.identities_updated = found.identities_updated
            report.details["patterns"] = {"applied": found.applied, "stored": found.stored}
            if not found.parsed:
                errors.append("patterns: unreadable model answer")

        async def contradictions() -> None:
            found = await self.contradictions.run(user_id)
            report.memories_processed += found.facts_read
            report.contradictions_found = found.flagged
            report.details["contradictions"] = {
                "clusters_checked": found.clusters_checked,
                "clusters_skipped": found.clusters_skipped,
            }
            if found.failures:
                errors.append("contradictions: " + "; ".join(found.failures))

        async def compaction() -> None:
            if not await self._compaction_due(user_id, compact):
                return
            found = await self.compaction.run(user_id)
            report.memories_processed += found.memories_read
            report.memories_compacted = found.memories_compacted
            report.details["compaction"] = True
            report.details["weeks_compacted"] = found.weeks_compacted
            if found.failures:
                errors.append("compaction: " + "; ".join(found.failures))

        async def cleanup() -> None:
            report.details["working_expired"] = await self.hot.cleanup(user_id)

        await step("patterns", patterns)
        await step("contradictions", contradictions)
        await step("compaction", compaction)
        await step("cleanup", cleanup)
        self._finish(report, started, errors)
        await self._log(report)
        return report

    async def compact_user(self, user_id: str, *, run_id: str | None = None) -> RunReport:
        """Compaction alone (the weekly job), logged as a ``compaction`` run."""
        check_user_id(user_id)
        report = RunReport(user_id=user_id, job=JOB_COMPACTION, started_at=self.clock())
        if run_id is not None:
            report.run_id = run_id
        started = time.monotonic()
        errors: list[str] = []
        try:
            found = await self.compaction.run(user_id)
            report.memories_processed = found.memories_read
            report.memories_compacted = found.memories_compacted
            report.details["compaction"] = True  # it ran (see ledger.last_compaction)
            report.details["weeks_compacted"] = found.weeks_compacted
            errors += [f"compaction: {f}" for f in found.failures]
        except Exception as exc:
            log.warning("compaction of %s failed: %r", user_id, exc)
            errors.append(f"compaction: {_error_text(exc)}")
        self._finish(report, started, errors)
        await self._log(report)
        return report

    async def _compaction_due(self, user_id: str, compact: bool | None) -> bool:
        if compact is not None:
            return compact
        last = await self.ledger.last_compaction(user_id)
        interval = timedelta(hours=self.settings.cortex_compaction_interval_hours)
        return last is None or self.clock() - last >= interval

    def _finish(self, report: RunReport, started: float, errors: list[str]) -> None:
        report.duration_ms = int((time.monotonic() - started) * 1000)
        report.completed_at = report.started_at + timedelta(milliseconds=report.duration_ms)
        report.error = "\n".join(errors) or None

    async def _log(self, report: RunReport) -> None:
        try:
            await self.ledger.log_run(report)
        except Exception as exc:  # the run happened; a lost log row must not undo it
            log.error("could not log the %s run of %s: %r", report.job, report.user_id, exc)
            report.details["log_error"] = _error_text(exc)

    # -- all users ------------------------------------------------------------

    async def run_all(
        self, users: Sequence[str] | None = None, *, compact: bool | None = None
    ) -> RunSummary:
        """Consolidate ``users`` (default: those with memories in the lookback window),
        at most ``cortex_max_concurrent_users`` at once."""
        if users is None:
            since = self.clock() - timedelta(days=self.settings.cortex_pattern_lookback_days)
            users = await self.warm.user_ids(active_since=since)
        if self.queue is not None:
            queue = self.queue
            return await self._enqueue(
                users, lambda u, run_id: queue.consolidate(u, run_id=run_id, compact=compact)
            )
        return await self._sweep(
            users, lambda u, run_id: self.run_for_user(u, compact=compact, run_id=run_id)
        )

    async def compact_all(self, users: Sequence[str] | None = None) -> RunSummary:
        """Compact every user's old episodes.  All users, not only recent ones:
        the people whose episodes are old are often the ones who went quiet."""
        if users is None:
            users = await self.warm.user_ids()
        if self.queue is not None:
            queue = self.queue
            return await self._enqueue(users, lambda u, run_id: queue.compact(u, run_id=run_id))
        return await self._sweep(users, lambda u, run_id: self.compact_user(u, run_id=run_id))

    async def _enqueue(
        self, users: Sequence[str], put: Callable[[str, str], Awaitable[None]]
    ) -> RunSummary:
        """One job per user on the work queue; the workers write the log rows.  If
        the queue cannot be reached the rest waits for the next scheduled sweep
        (the users already queued are not queued twice by this one)."""
        summary = RunSummary(run_id=str(uuid.uuid4()))
        for user_id in dict.fromkeys(users):
            try:
                await put(user_id, summary.run_id)
            except Exception as exc:
                log.warning(
                    "consolidation: the work queue is unreachable (%s); %d of %d users "
                    "queued, the rest wait for the next sweep",
                    _error_text(exc),
                    summary.queued,
                    len(users),
                )
                break
            summary.queued += 1
        log.info("consolidation sweep: %d users queued for the workers", summary.queued)
        return summary

    async def _sweep(
        self, users: Sequence[str], run: Callable[[str, str], Awaitable[RunReport]]
    ) -> RunSummary:
        summary = RunSummary(run_id=str(uuid.uuid4()))
        limit = asyncio.Semaphore(self.settings.cortex_max_concurrent_users)

        async def one(user_id: str) -> RunReport:
            async with limit:
                try:
                    return await run(user_id, summary.run_id)
                except Exception as exc:
                    # run_for_user records its own failures; this is the unexpected rest.
                    log.exception("consolidation of %s failed", user_id)
                    report = RunReport(
                        user_id=user_id,
                        job=JOB_CONSOLIDATION,
                        started_at=self.clock(),
                        run_id=summary.run_id,
                        error=_error_text(exc),
                    )
                    await self._log(report)
                    return report

        for report in await asyncio.gather(*(one(u) for u in dict.fromkeys(users))):
            summary.add(report)
        log.info(
            "consolidation sweep: %d users, %d failed, %d patterns, %d contradictions, "
            "%d compacted",
            summary.users,
            summary.failed,
            summary.patterns_found,
            summary.contradictions_found,
            summary.memories_compacted,
        )
        return summary

    async def cleanup_all(self) -> RunReport:
        """Drop expired working memories of every user found in Redis (one log row)."""
        report = RunReport(user_id=None, job=JOB_CLEANUP, started_at=self.clock())
        started = time.monotonic()
        errors: list[str] = []
        removed = users = 0
        try:
            for user_id in await working_memory_users(self.hot):
                users += 1
                try:
                    removed += await self.hot.cleanup(user_id)
                except Exception as exc:
                    errors.append(f"{user_id}: {_error_text(exc)}")
        except Exception as exc:
            errors.append(f"scan: {_error_text(exc)}")
        report.memories_processed = removed
        report.details = {"users": users, "removed": removed}
        self._finish(report, started, errors)
        await self._log(report)
        return report

    # -- schedule -------------------------------------------------------------

    def start(self) -> None:
        """Schedule the three jobs on the running event loop (call from async code)."""
        if self.scheduler is not None:
            return
        s = self.settings
        scheduler = AsyncIOScheduler(timezone=UTC)
        jobs: list[tuple[str, float, Callable[[], Awaitable[Any]]]] = [
            (JOB_IDS[0], s.cortex_consolidation_interval_hours, self.run_all),
            (JOB_IDS[1], s.cortex_cleanup_interval_hours, self.cleanup_all),
            (JOB_IDS[2], s.cortex_compaction_interval_hours, self.compact_all),
        ]
        for job_id, hours, fn in jobs:
            scheduler.add_job(
                self.scheduled(job_id, timedelta(hours=hours), fn),
                IntervalTrigger(seconds=hours * 3600, timezone=UTC),
                id=job_id,
                name=job_id,
                # One run at a time; a run missed while the loop was busy (or the
                # machine asleep) happens once, late, instead of piling up.
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
                replace_existing=True,
            )
        scheduler.start()
        self.scheduler = scheduler
        log.info("consolidation scheduled: %s", ", ".join(JOB_IDS))

    def scheduled(
        self, job_id: str, every: timedelta, fn: Callable[[], Awaitable[Any]]
    ) -> Callable[[], Awaitable[None]]:
        """What the trigger calls: ``fn`` when this process wins the job's slot
        (storage/job_claims.py), else nothing (another process runs it)."""

        async def job() -> None:
            task = asyncio.current_task()
            if task is not None:
                self._job_tasks.add(task)
            try:
                async with self.claims.slot(job_id, every) as mine:
                    if mine:
                        await fn()
            except Exception:  # the scheduler would only log it less clearly
                log.exception("scheduled job %s failed", job_id)
            finally:
                if task is not None:
                    self._job_tasks.discard(task)

        return job

    async def stop(self) -> None:
        """Stop scheduling and cancel a job still running; returns when none is left."""
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
            # AsyncIOScheduler shuts down in a call_soon callback: let it run, so no
            # job can start after the cancellations below.
            await asyncio.sleep(0)
        tasks = [t for t in self._job_tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._job_tasks.clear()
