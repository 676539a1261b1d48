"""A consolidation sweep in the shard process vs. on a worker (CORTEX_WORKER_QUEUE).

BENCH_WORKER_USERS users (default 40) with BENCH_WORKER_MEMORIES episodic
memories each (default 60, spread over the last 60 days) on real PostgreSQL +
pgvector and Redis (bench/_cortex_env.py); the fake LLM runs in its own process
and answers every consolidation question with three patterns, so each user's
run reads its memories, embeds and stores patterns and compacts (compact=True).

The "shard" is this process's event loop with a 10 ms ticker: its lateness is
the event-loop lag a gateway heartbeat and the replies would see.  Printed for
two runs of the same sweep:

1. in-process: ``run_all`` consolidates here (CORTEX_WORKER_QUEUE=false);
2. queued: ``run_all`` queues one job per user and a real
   ``python discord_bot.py worker`` process runs them; the sweep is over when
   every user's log row is written.

For each: lag p50/p99/max while the sweep runs, and its wall time.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # also when run directly: python bench/worker.py

from sqlalchemy import func, select  # noqa: E402

from bench._cortex_data import distinct_texts  # noqa: E402
from bench._cortex_env import make_manager, services  # noqa: E402
from bench.common import percentile  # noqa: E402
from clara_core.config import load_settings  # noqa: E402
from clara_core.cortex.consolidation import ConsolidationRunner  # noqa: E402
from clara_core.cortex.embedding.local_onnx import LocalOnnxEmbedder  # noqa: E402
from clara_core.cortex.manager import NewMemory  # noqa: E402
from clara_core.llm.service import LLMService  # noqa: E402
from clara_core.pipeline.memory import ServiceTextModel  # noqa: E402
from clara_core.worker import WorkQueue  # noqa: E402
from storage.models.cortex import ConsolidationLog  # noqa: E402

USERS = int(os.environ.get("BENCH_WORKER_USERS", "40"))
MEMORIES = int(os.environ.get("BENCH_WORKER_MEMORIES", "60"))
#: Memories span this many days: the older half is past CORTEX_COMPACT_AFTER_DAYS
#: (compacted), the newer one inside the pattern lookback.
DAYS = 60
TICK = 0.010
KEY = "bench-key"


class LagProbe:
    """A 10 ms ticker; records how late each tick fires."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(TICK)
            self.lags.append(time.perf_counter() - t0 - TICK)

    def __enter__(self) -> LagProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def line(self) -> str:
        ms = [x * 1000 for x in self.lags]
        return (
            f"event-loop lag p50 {percentile(ms, 0.5):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
            f"max {max(ms):.1f} ms ({len(ms)} ticks)"
        )


async def _seed(mm, prefix: str, seed: int) -> list[str]:
    import random

    rng = random.Random(seed)
    now = datetime.now(UTC)
    users = [f"{prefix}_{i}" for i in range(USERS)]
    for user in users:
        texts = distinct_texts(rng, MEMORIES)
        items = [
            NewMemory(content=t, created_at=now - timedelta(days=DAYS * (n + 1) / MEMORIES))
            for n, t in enumerate(texts)
        ]
        await mm.store_many(user, items, to_hot=False)
    return users


async def _logged(engine, run_id: str) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                select(func.count())
                .select_from(ConsolidationLog)
                .where(ConsolidationLog.run_id == uuid.UUID(run_id))
            )
        )


async def _start_fake_llm() -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "_fake_llm_server.py"),
        "patterns",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    port = int((await proc.stdout.readline()).decode().strip())
    return proc, port


async def _start_worker(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "discord_bot.py"),
        "worker",
        env=env,
        cwd=cwd,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    while True:
        line = (await proc.stderr.readline()).decode()
        if not line:
            raise RuntimeError("the worker exited before it was ready")
        if "worker ready" in line:
            break

    async def drain() -> None:  # keep the pipe from filling up
        assert proc.stderr is not None
        while await proc.stderr.readline():
            pass

    asyncio.get_running_loop().create_task(drain())
    return proc


async def main() -> None:
    llm_proc, port = await _start_fake_llm()
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        async with services() as svc:
            embedder = LocalOnnxEmbedder()
            mm = make_manager(svc, embedder)
            t = time.perf_counter()
            # Two sets of the same size: a sweep changes what the next one finds to do.
            users = await _seed(mm, "here", 7)
            users_queued = await _seed(mm, "queued", 8)
            print(
                f"seeded 2 x {USERS} users x {MEMORIES} memories in {time.perf_counter() - t:.1f}s"
            )
            settings = load_settings(
                env_file=None,
                llm_provider="openai",
                custom_openai_api_key=KEY,
                custom_openai_base_url=base_url,
            )
            llm = LLMService(settings)
            runner = ConsolidationRunner(
                mm.warm, mm.hot, mm.ledger, ServiceTextModel(llm), embedder, settings
            )
            try:
                with LagProbe() as probe:
                    t = time.perf_counter()
                    summary = await runner.run_all(users, compact=True)
                    took = time.perf_counter() - t
                print(
                    f"in-process sweep: {summary.users} users in {took:.1f}s "
                    f"({summary.failed} failed); {probe.line()}"
                )

                env = {
                    k: v for k, v in os.environ.items() if not k.startswith(("CLARA_", "CORTEX_"))
                }
                env.update(
                    DATABASE_URL=svc.database_url,
                    REDIS_URL=svc.redis_url,
                    LLM_PROVIDER="openai",
                    CUSTOM_OPENAI_API_KEY=KEY,
                    CUSTOM_OPENAI_BASE_URL=base_url,
                    CLARA_DATA_DIR=str(svc.workdir / "worker"),
                )
                worker = await _start_worker(env, svc.workdir)
                runner.queue = queue = await WorkQueue.open(svc.redis_url)
                try:
                    with LagProbe() as probe:
                        t = time.perf_counter()
                        summary = await runner.run_all(users_queued, compact=True)
                        queued = time.perf_counter() - t
                        # The worker writes the log rows: polled, there is no event to wait on.
                        while await _logged(svc.engine, summary.run_id) < len(users_queued):  # noqa: ASYNC110
                            await asyncio.sleep(0.1)
                        took = time.perf_counter() - t
                    print(
                        f"queued sweep: {summary.queued} users queued in {queued * 1000:.0f} ms, "
                        f"run by the worker in {took:.1f}s; {probe.line()}"
                    )
                finally:
                    await queue.close()
                    worker.terminate()
                    await worker.wait()
            finally:
                await llm.aclose()
                await mm.close()
                await embedder.aclose()
    finally:
        llm_proc.terminate()
        await llm_proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
