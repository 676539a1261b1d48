"""A worker that dies mid-job: another worker takes the job over and runs it to
the end once (CORTEX_WORKER_REDELIVER_SECONDS), with real ``discord_bot.py
worker`` processes, a real SIGKILL, real PostgreSQL and Redis, and the fake LLM.

The job is a consolidation of a user with one memory and
CORTEX_PATTERN_MIN_MEMORIES=1, so it makes exactly one model call (pattern
extraction); the fake LLM holds that call to keep the job running as long as
the test needs.  One consolidation log row is one run that reached its end.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from storage.work_queue import GROUP, STREAM
from tests.fakes.fake_llm import FakeLLM, Hang, RecordedRequest, Reply
from tests.support.cortex import remember_one
from tests.support.llm import KEY
from tests.support.worker_process import WorkerProcess, logged, queue_one, worker_env

pytestmark = pytest.mark.storage

#: The idle time after which a stopped worker's job is taken over, in these tests.
REDELIVER_S = 2
#: The pattern model's answer: no patterns (the run still completes and logs its row).
NO_PATTERNS = Reply(json.dumps({"patterns": []}))


def env_for(tmp_path, fake, database_url: str, redis_url: str) -> dict[str, str]:
    return worker_env(
        tmp_path,
        fake,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CORTEX_PATTERN_MIN_MEMORIES="1",
        CORTEX_WORKER_REDELIVER_SECONDS=str(REDELIVER_S),
    )


async def polled(condition, timeout: float) -> bool:
    """Whether ``condition()`` came true within ``timeout`` s (asked every 0.2 s)."""
    for _ in range(max(1, int(timeout / 0.2))):
        if await condition():
            return True
        await asyncio.sleep(0.2)
    return bool(await condition())


async def pending_owners(redis) -> list[str]:
    """The consumer (worker) holding each unacknowledged job."""
    return [p["consumer"] for p in await redis.xpending_range(STREAM, GROUP, "-", "+", 100)]


async def wait_logged(engine, run_id: str, workers: list[WorkerProcess], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await logged(engine, run_id) and loop.time() < end:
        assert all(w.proc.returncode is None for w in workers), "a worker exited early"
        await asyncio.sleep(0.2)


async def test_a_killed_workers_job_is_taken_over_and_runs_once(
    engine, database_url, redis, redis_url, tmp_path
):
    await remember_one(engine, "fay")
    async with FakeLLM(api_keys={KEY}, default=NO_PATTERNS) as fake:
        # The first worker's model call never gets an answer: it is mid-job when killed.
        fake.enqueue(Hang())
        env = env_for(tmp_path, fake, database_url, redis_url)
        first = await WorkerProcess.start(env, tmp_path)
        second = None
        try:
            await first.ready()
            run_id = await queue_one(redis_url, "fay")
            await fake.wait_for_requests(1, timeout=60)
            # It is running: its model call is in flight, the job is held by it alone
            # and not finished.
            owners = await pending_owners(redis)
            assert len(owners) == 1 and owners[0].endswith(f"-{first.proc.pid}"), owners
            assert await logged(engine, run_id) == []

            await first.kill()
            # No new job is queued after the kill: the take-over must not wait for one.
            second = await WorkerProcess.start(env, tmp_path)
            await second.ready()
            await wait_logged(engine, run_id, [second], timeout=30)
            assert await logged(engine, run_id) == [("fay", "consolidation")], second.log

            await asyncio.sleep(REDELIVER_S * 2)  # time for a wrong second run to show
            assert await logged(engine, run_id) == [("fay", "consolidation")]
            assert len(fake.requests) == 2  # the killed attempt, and the one that finished
            # Acknowledged: nothing is pending any more.
            assert (await redis.xpending(STREAM, GROUP))["pending"] == 0
        finally:
            for worker in (first, second):
                if worker is not None:
                    await worker.stop()
        assert "took over job" in second.log, second.log
        assert "Traceback" not in second.log, second.log


async def test_a_long_job_on_a_live_worker_is_not_taken_over(
    engine, database_url, redis, redis_url, tmp_path
):
    """The job runs for several idle periods while a second worker waits: the
    first keeps it fresh, so it runs once, where it started."""
    await remember_one(engine, "gus")
    release = asyncio.Event()

    async def slow(_request: RecordedRequest) -> Reply:
        await release.wait()
        return NO_PATTERNS

    async with FakeLLM(api_keys={KEY}, default=NO_PATTERNS) as fake:
        fake.enqueue(slow)
        env = env_for(tmp_path, fake, database_url, redis_url)
        first = await WorkerProcess.start(env, tmp_path)
        second = None
        try:
            await first.ready()
            run_id = await queue_one(redis_url, "gus")
            await fake.wait_for_requests(1, timeout=60)
            second = await WorkerProcess.start(env, tmp_path)
            await second.ready()
            # Three idle periods with a second worker looking for idle jobs.
            await asyncio.sleep(REDELIVER_S * 3)
            owners = await pending_owners(redis)
            assert len(owners) == 1 and owners[0].endswith(f"-{first.proc.pid}"), owners
            release.set()
            await wait_logged(engine, run_id, [first, second], timeout=30)
            await asyncio.sleep(1)
            assert await logged(engine, run_id) == [("gus", "consolidation")]
            assert len(fake.requests) == 1
            assert (await redis.xpending(STREAM, GROUP))["pending"] == 0
        finally:
            release.set()
            for worker in (first, second):
                if worker is not None:
                    await worker.stop()
        assert "took over job" not in second.log, second.log


async def test_a_busy_worker_leaves_the_next_job_to_an_idle_one(
    engine, database_url, redis, redis_url, tmp_path
):
    """Two workers, one job at a time each, two jobs that run long: each worker runs
    one.  (Reading 100 jobs at once, taskiq-redis's default, the first worker
    took both and ran the second only after the first, while the other idled.)"""
    for user in ("hal", "ivy"):
        await remember_one(engine, user)
    release = asyncio.Event()

    async def slow(_request: RecordedRequest) -> Reply:
        await release.wait()
        return NO_PATTERNS

    async with FakeLLM(api_keys={KEY}, default=slow) as fake:
        env = env_for(tmp_path, fake, database_url, redis_url)
        env["CORTEX_MAX_CONCURRENT_USERS"] = "1"
        # Both jobs wait in the stream before any worker reads it (a sweep queues
        # all its users at once): the first worker to read must not take both.
        run_ids = [await queue_one(redis_url, user) for user in ("hal", "ivy")]
        workers = [await WorkerProcess.start(env, tmp_path) for _ in range(2)]
        try:
            for worker in workers:
                await worker.ready()
            await fake.wait_for_requests(2, timeout=30)
            owners = sorted(await pending_owners(redis))
            pids = sorted(f"-{w.proc.pid}" for w in workers)
            assert [o[o.rindex("-") :] for o in owners] == pids, owners
            release.set()
            for run_id in run_ids:
                await wait_logged(engine, run_id, workers, timeout=30)
            assert [await logged(engine, r) for r in run_ids] == [
                [("hal", "consolidation")],
                [("ivy", "consolidation")],
            ]
        finally:
            release.set()
            for worker in workers:
                await worker.stop()


async def test_a_stopped_workers_name_is_forgotten_once_it_holds_nothing(
    engine, database_url, redis, redis_url, tmp_path
):
    """Every worker process registers its own consumer name; a killed worker that
    held no job must not stay in the group for ever (a deployment restarts its
    workers often).  One that holds a job keeps its name until the job is taken."""
    async with FakeLLM(api_keys={KEY}, default=NO_PATTERNS) as fake:
        env = env_for(tmp_path, fake, database_url, redis_url)
        first = await WorkerProcess.start(env, tmp_path)
        second = None
        try:
            await first.ready()
            await queue_one(redis_url, "nobody")  # creates the group; the worker reads it
            gone = f"-{first.proc.pid}"

            async def names() -> list[str]:
                return [c["name"] for c in await redis.xinfo_consumers(STREAM, GROUP)]

            async def registered() -> bool:
                return any(n.endswith(gone) for n in await names())

            async def holds_nothing() -> bool:
                return (await redis.xpending(STREAM, GROUP))["pending"] == 0

            assert await polled(registered, 30), await names()
            assert await polled(holds_nothing, 30)  # its one job done
            await first.kill()

            second = await WorkerProcess.start(env, tmp_path)
            await second.ready()

            async def forgotten() -> bool:
                return not await registered()

            await polled(forgotten, REDELIVER_S * 4)
            left = await names()
            assert not any(n.endswith(gone) for n in left), left
        finally:
            for worker in (first, second):
                if worker is not None:
                    await worker.stop()
        assert "forgot stopped worker" in second.log, second.log
