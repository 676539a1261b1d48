"""CORTEX_WORKER_QUEUE: sweeps queue per-user jobs on Redis and a real
``python discord_bot.py worker`` process runs them, against real PostgreSQL and
Redis and the fake LLM server."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select

from clara_core.config import load_settings
from clara_core.cortex.consolidation import ConsolidationLedger, ConsolidationRunner
from clara_core.cortex.hot import HotStore
from clara_core.cortex.warm import WarmStore
from clara_core.worker import WorkQueue
from clara_core.worker_health import BEACON_EVERY_S, HEALTH_FILE
from storage.models.cortex import ConsolidationLog
from storage.work_queue import backlog
from tests.fakes.fake_llm import FakeLLM, Reply
from tests.support.clara_process import clara_env, run_clara
from tests.support.cortex import local_embedder, text_model_for
from tests.support.llm import KEY
from tests.support.worker_process import (
    WorkerProcess,
    logged,
    queue_one,
    worker_env,
    worker_health,
)

pytestmark = pytest.mark.storage


async def test_a_sweep_is_queued_and_a_worker_process_runs_it(
    engine, database_url, redis, redis_url, tmp_path
):
    async with FakeLLM(api_keys={KEY}, default=Reply("[]")) as fake:
        model, service = text_model_for(fake)
        settings = load_settings(env_file=None)
        runner = ConsolidationRunner(
            WarmStore(engine),
            HotStore(redis),
            ConsolidationLedger(engine),
            model,
            local_embedder(),
            settings,
        )
        runner.queue = queue = await WorkQueue.open(redis_url)
        try:
            summary = await runner.run_all(["ana", "bo", "ana"])
            compaction = await runner.compact_all(["cy"])
        finally:
            await queue.close()
            await service.aclose()
        # Queued, not run here: no report, no log row, three jobs waiting.
        assert (summary.queued, summary.users, summary.reports) == (2, 0, [])
        assert compaction.queued == 1
        assert await logged(engine, summary.run_id) == []
        assert await backlog(redis_url) == {"waiting": 3, "running": 0}

        env = worker_env(tmp_path, fake, DATABASE_URL=database_url, REDIS_URL=redis_url)
        # Not started: the healthcheck says so.
        code, out = await worker_health(env)
        assert code == 1 and "has not started" in out, out
        worker = await WorkerProcess.start(env, tmp_path)
        try:

            async def all_ran() -> bool:
                return (
                    await logged(engine, summary.run_id)
                    == [("ana", "consolidation"), ("bo", "consolidation")]
                    and len(await logged(engine, compaction.run_id)) == 1
                )

            for _ in range(600):  # the worker loads the embedder first (~2 s)
                if await all_ran() or worker.proc.returncode is not None:
                    break
                await asyncio.sleep(0.1)
            assert worker.proc.returncode is None, "the worker exited early"
            assert await logged(engine, compaction.run_id) == [("cy", "compaction")]
            assert await all_ran()
            # Acknowledged after it ran: nothing left waiting or held.
            await asyncio.sleep(0.3)
            assert await backlog(redis_url) == {"waiting": 0, "running": 0}
            # Running and its Redis answering: healthy (the first beacon comes at start).
            code, out = await worker_health(env)
            assert code == 0 and "healthy" in out, out
        finally:
            await worker.stop()
        assert worker.proc.returncode == 0, worker.log
        assert "worker ready" in worker.log and "Traceback" not in worker.log
        # Stopped: no beacon left behind to read as healthy.
        code, out = await worker_health(env)
        assert code == 1 and "unhealthy" in out, out
        # Each job ran once: one log row per user, however many times it was listed.
        async with engine.connect() as conn:
            total = await conn.scalar(select(func.count()).select_from(ConsolidationLog))
        assert total == 3


def test_a_worker_without_shared_storage_refuses(tmp_path):
    """On the embedded default with no Clara running there is no queue to share."""
    env = clara_env(tmp_path, OPENROUTER_API_KEY="k")
    result = run_clara("worker", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "set DATABASE_URL and REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_worker_needs_an_llm_key(tmp_path):
    result = run_clara("worker", env=clara_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "OPENROUTER_API_KEY" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
async def test_a_worker_attaches_to_the_running_claras_embedded_servers(tmp_path):
    """One machine, the embedded default: Clara runs (here: waiting for a Discord
    that does not answer), a worker on the same CLARA_DATA_DIR uses her servers."""
    from storage.datadir import read_endpoints
    from storage.db import create_engine

    async with FakeLLM(api_keys={KEY}, default=Reply("[]")) as fake:
        env = worker_env(
            tmp_path,
            fake,
            DISCORD_BOT_TOKEN="test-token",
            DISCORD_API_BASE="http://127.0.0.1:9/api/v10",
            DISCORD_GATEWAY_URL="ws://127.0.0.1:9/",
            CORTEX_WORKER_QUEUE="true",
        )
        started = await asyncio.to_thread(run_clara, "--daemon", env=env, cwd=tmp_path)
        worker = None
        try:
            assert started.returncode == 0, started.stderr
            running = read_endpoints(tmp_path / "data")
            assert running is not None and running.redis_url and running.database_url
            worker = await WorkerProcess.start(env, tmp_path)
            await worker.ready()
            await queue_one(running.redis_url, "dee")
            engine = create_engine(running.database_url, pool_size=1)
            try:
                for _ in range(300):
                    async with engine.connect() as conn:
                        users = list(await conn.scalars(select(ConsolidationLog.user_id)))
                    if users:
                        break
                    await asyncio.sleep(0.1)
            finally:
                await engine.dispose()
            assert users == ["dee"]
        finally:
            if worker is not None:
                await worker.stop()
            await asyncio.to_thread(run_clara, "--stop", env=env, cwd=tmp_path)
        assert worker.proc.returncode == 0, worker.log


async def test_the_worker_rides_out_a_redis_outage(engine, database_url, tmp_path):
    """Redis goes away under a running worker: one line says so (no traceback, no
    busy loop), and once Redis is back the worker takes jobs again."""
    from storage.embedded import EmbeddedRedis

    rd = EmbeddedRedis(tmp_path / "redis")
    redis_url = await rd.start()
    async with FakeLLM(api_keys={KEY}, default=Reply("[]")) as fake:
        env = worker_env(tmp_path, fake, DATABASE_URL=database_url, REDIS_URL=redis_url)
        worker = await WorkerProcess.start(env, tmp_path)
        beacon = tmp_path / "data" / HEALTH_FILE
        try:
            await worker.ready()
            for _ in range(100):
                if beacon.exists():
                    break
                await asyncio.sleep(0.1)
            last = beacon.read_text()
            await rd.stop()
            before = len(worker.lines)
            # Past the next beacon: a worker that cannot reach its queue's Redis
            # writes none, so its healthcheck turns unhealthy.
            await worker.read_for(BEACON_EVERY_S + 1.5)
            assert beacon.read_text() == last, "a beacon was written with Redis down"
            during = worker.lines[before:]
            assert any("Redis" in line and "retry" in line for line in during), during
            assert len(during) <= 3, "".join(during)  # no busy loop of errors
            assert not any("Traceback" in line for line in during), "".join(during)

            await rd.start()
            run_id = await queue_one(redis_url, "eve")
            for _ in range(400):
                if await logged(engine, run_id):
                    break
                await asyncio.sleep(0.1)
            assert await logged(engine, run_id) == [("eve", "consolidation")], worker.log
        finally:
            await worker.stop()
            await rd.stop()
        assert worker.proc.returncode == 0, worker.log


async def test_a_sweep_with_the_queue_away_says_so_and_queues_nothing(engine, redis, caplog):
    """Clara starts with CORTEX_WORKER_QUEUE even if Redis is away at that moment;
    a sweep then queues nothing, says so in one line, and the next sweep tries again."""
    settings = load_settings(env_file=None)
    runner = ConsolidationRunner(
        WarmStore(engine),
        HotStore(redis),
        ConsolidationLedger(engine),
        model=None,  # type: ignore[arg-type]  # never called: nothing runs here
        embedder=local_embedder(),
        settings=settings,
    )
    runner.queue = queue = await WorkQueue.open("redis://127.0.0.1:1/0")
    try:
        with caplog.at_level("WARNING", logger="clara_core.cortex.consolidation.runner"):
            summary = await runner.run_all(["ana", "bo"])
    finally:
        await queue.close()
    assert (summary.queued, summary.users) == (0, 0)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "work queue is unreachable" in warnings[0], warnings
    assert "0 of 2 users queued" in warnings[0]
    assert await logged(engine, summary.run_id) == []  # and nothing ran here either


async def test_doctor_shows_the_work_queue(database_url, redis_url, tmp_path):
    queue = await WorkQueue.open(redis_url)
    try:
        for user in ("ana", "bo"):
            await queue.consolidate(user, run_id=str(uuid.uuid4()), compact=None)
    finally:
        await queue.close()
    env = clara_env(
        tmp_path,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        OPENROUTER_API_KEY="k",
        CORTEX_WORKER_QUEUE="true",
    )
    result = await asyncio.to_thread(run_clara, "doctor", env=env, cwd=tmp_path)
    line = next(x for x in result.stdout.splitlines() if "worker queue" in x)
    assert "2 job(s) waiting" in line and "0 running" in line, result.stdout
    assert "Traceback" not in result.stderr
