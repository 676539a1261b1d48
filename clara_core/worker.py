"""Heavy background work off the shard processes: ``python discord_bot.py worker``.

With CORTEX_WORKER_QUEUE=true a Clara process does not consolidate memories
itself: its scheduled sweeps put one job per user on the work queue (a Redis
Stream, see ``storage/work_queue.py``) and return at once, and worker processes
run them.  Consolidation is the heavy part of Clara's background work (model
calls, embeddings of every pattern and compacted week, reading hundreds of
memories per user); moving it keeps a shard's event loop, and with it the
gateway heartbeat and the replies, free while a sweep over thousands of users
runs (bench/worker.py measures the difference).

A worker needs the PostgreSQL and Redis Clara uses: external ones
(DATABASE_URL and REDIS_URL) or, on one machine, the embedded servers of the
Clara running on the same CLARA_DATA_DIR, which it attaches to.  Any number of
workers may run; each job goes to one of them and is acknowledged only after
it ran, so a worker killed mid-job leaves it to another, which takes it over
after CORTEX_WORKER_REDELIVER_SECONDS (``storage/work_queue.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, one_line
from .worker_health import BEACON_EVERY_S, HEALTH_FILE

if TYPE_CHECKING:
    from taskiq_redis import RedisStreamBroker

    from .config import Settings
    from .cortex.consolidation import ConsolidationRunner

log = logging.getLogger(__name__)

TASK_CONSOLIDATE = "cortex.consolidate_user"
TASK_COMPACT = "cortex.compact_user"


class WorkQueue:
    """The producer side, owned by a Clara process: queue one user's job."""

    def __init__(self, broker: RedisStreamBroker) -> None:
        self.broker = broker
        self._started = False

    @classmethod
    async def open(cls, redis_url: str) -> WorkQueue:
        """Nothing is sent yet: a Redis that is away now must not stop Clara's start;
        the first job creates the stream and the group."""
        from storage.work_queue import build_broker

        # Producers never take jobs over: the redelivery time matters to workers only.
        return cls(build_broker(redis_url))

    async def _put(self, task: str, **kwargs: Any) -> None:
        from storage.work_queue import enqueue

        if not self._started:
            await self.broker.startup()  # the stream and its group, if they are new
            self._started = True
        await enqueue(self.broker, task, **kwargs)

    async def consolidate(self, user_id: str, *, run_id: str, compact: bool | None) -> None:
        await self._put(TASK_CONSOLIDATE, user_id=user_id, run_id=run_id, compact=compact)

    async def compact(self, user_id: str, *, run_id: str) -> None:
        await self._put(TASK_COMPACT, user_id=user_id, run_id=run_id)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.broker.shutdown()


#: Waits between attempts while the queue's Redis does not answer.
RETRY_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)


async def _receive(broker: RedisStreamBroker, at_once: int, stop: asyncio.Event) -> None:
    """Take jobs until ``stop``; through a Redis outage, retry with back-off and say
    so once (taskiq's own loop would retry at once, a traceback each time)."""
    from taskiq.acks import AcknowledgeType
    from taskiq.receiver import Receiver

    from storage.work_queue import QuietOutages, is_outage

    quiet = QuietOutages()
    for name in ("taskiq.receiver.receiver", "taskiq.receiver"):
        logging.getLogger(name).addFilter(quiet)
    failures = 0
    while not stop.is_set():
        try:
            if failures:
                # Declares the stream's group again too: a Redis that came back
                # empty (no persistence) would otherwise answer every read NOGROUP.
                await broker.startup()
                log.warning("worker: the queue's Redis answers again; taking jobs")
                failures = 0
            receiver = Receiver(
                broker,
                run_startup=False,
                max_async_tasks=at_once,
                # Acknowledged once it ran: a worker that dies mid-job leaves it pending.
                ack_type=AcknowledgeType.WHEN_EXECUTED,
            )
            await receiver.listen(asyncio.Event())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an ExceptionGroup too: anyio groups the receiver's errors
            delay = RETRY_DELAYS_S[min(failures, len(RETRY_DELAYS_S) - 1)]
            if failures == 0:
                if is_outage(exc):
                    log.warning(
                        "worker: the queue's Redis does not answer (%s); retrying every "
                        "%.0f-%.0f s",
                        one_line(exc),
                        RETRY_DELAYS_S[0],
                        RETRY_DELAYS_S[-1],
                    )
                else:
                    log.error("worker: taking jobs failed; retrying", exc_info=exc)
            failures += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)


#: The longest a stopping worker waits for its tasks, then for its connections.
STOP_WAIT_S = 10.0


async def _beacon(broker: Any, path: Path) -> None:
    """Until cancelled: every BEACON_EVERY_S, when the queue's Redis answers, write
    the time to ``path``.  The container's healthcheck reads it: a worker is healthy
    while its loop runs and it can take jobs, which a process check cannot tell."""
    while True:
        try:
            await broker.ping()
        except Exception as exc:
            log.debug("worker: health beacon: the queue's Redis does not answer: %r", exc)
        else:
            try:
                await asyncio.to_thread(_write_beacon, path)
            except OSError as exc:  # a full or read-only disk: unhealthy, said once a beat
                log.warning("worker: could not write the health beacon %s: %s", path, exc)
        await asyncio.sleep(BEACON_EVERY_S)


def _write_beacon(path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{time.time():.3f}\n")
    os.replace(tmp, path)  # a reader never sees half a file


def register_jobs(broker: RedisStreamBroker, runner: ConsolidationRunner) -> None:
    """The jobs a worker runs, by the names the producers queue them under."""

    async def consolidate_user(user_id: str, run_id: str, compact: bool | None = None) -> bool:
        report = await runner.run_for_user(user_id, compact=compact, run_id=run_id)
        return report.ok

    async def compact_user(user_id: str, run_id: str) -> bool:
        report = await runner.compact_user(user_id, run_id=run_id)
        return report.ok

    broker.register_task(consolidate_user, task_name=TASK_CONSOLIDATE)
    broker.register_task(compact_user, task_name=TASK_COMPACT)


async def run_worker(settings: Settings) -> int:
    """Run jobs until SIGTERM/SIGINT; 0 after a clean stop."""
    from storage.work_queue import build_broker

    from .cortex.consolidation import ConsolidationRunner
    from .cortex_cli.session import CortexSession
    from .llm.service import LLMService
    from .pipeline.memory import ServiceTextModel

    problems = settings.missing_llm_keys()
    if problems:
        raise ConfigError(problems, headline="The worker consolidates memories with the LLM:")
    if settings.database_url is None or settings.redis_url is None:
        # Embedded servers are shared only by attaching to a running Clara's: a
        # worker with servers of its own would wait on a queue nobody fills.
        from storage.datadir import read_endpoints

        if await asyncio.to_thread(read_endpoints, settings.clara_data_dir) is None:
            raise ConfigError(
                [
                    "no running Clara on CLARA_DATA_DIR to share PostgreSQL and Redis with: "
                    "set DATABASE_URL and REDIS_URL to the servers Clara uses, or start Clara "
                    "first on this CLARA_DATA_DIR"
                ],
                headline="The worker needs Clara's PostgreSQL and Redis:",
            )
    session = await CortexSession.open(settings)
    llm = LLMService(settings)
    broker: Any = None
    try:
        memory = session.memory
        runner = ConsolidationRunner(
            memory.warm, memory.hot, memory.ledger, ServiceTextModel(llm), memory.embedder, settings
        )
        broker = build_broker(
            session.storage.redis_url,
            redeliver_after_s=settings.cortex_worker_redeliver_seconds,
        )
        register_jobs(broker, runner)
        await broker.startup()
        # The jobs this worker holds stay fresh while it lives: only a dead (or hung)
        # worker's jobs go idle and are taken over by another.
        keeper = asyncio.create_task(broker.keep_held_fresh(), name="worker-keep-held")
        # Unhealthy until this run's first beacon: a file left by an earlier run says
        # nothing about this one.
        beacon_path = settings.clara_data_dir / HEALTH_FILE
        await asyncio.to_thread(beacon_path.unlink, missing_ok=True)
        beacon = asyncio.create_task(_beacon(broker, beacon_path), name="worker-beacon")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        receiver = asyncio.create_task(
            _receive(broker, settings.cortex_max_concurrent_users, stop), name="worker-receiver"
        )
        log.info(
            "worker ready: consolidation jobs, %d at once; a stopped worker's jobs are "
            "taken over after %.0f s (CORTEX_WORKER_REDELIVER_SECONDS)",
            settings.cortex_max_concurrent_users,
            settings.cortex_worker_redeliver_seconds,
        )
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({receiver, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        tasks = {receiver, keeper, beacon}
        for task in tasks:
            task.cancel()
        # Bounded: a stop must end the process (compose SIGKILLs after its grace
        # period anyway, and a held job goes to another worker either way); say
        # what did not stop instead of hanging on it.
        _, pending = await asyncio.wait(tasks, timeout=STOP_WAIT_S)
        if pending:
            log.warning(
                "worker: %s did not stop within %.0f s of the stop; exiting anyway",
                ", ".join(sorted(t.get_name() for t in pending)),
                STOP_WAIT_S,
            )
        with contextlib.suppress(OSError):
            await asyncio.to_thread(beacon_path.unlink, missing_ok=True)
        log.info("worker stopped")
        return 0
    finally:
        if broker is not None:
            try:
                await asyncio.wait_for(broker.shutdown(), STOP_WAIT_S)
            except TimeoutError:
                log.warning("worker: closing the queue's connections took over %.0f s", STOP_WAIT_S)
            except Exception as exc:
                log.debug("worker: closing the queue: %r", exc)
        await llm.aclose()
        await session.close()
