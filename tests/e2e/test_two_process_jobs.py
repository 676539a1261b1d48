"""Two real Clara processes on one PostgreSQL + Redis: a scheduled job runs once
per slot across both (issue 15, "exactly once"), and either process can run it.

Both are ``python discord_bot.py`` shard processes (shard 0 and 1 of 2, on the
fake Discord), each with its own CLARA_DATA_DIR: the Discord bot is what runs
the scheduled jobs (``worker`` processes only run queued ones).  The
consolidation interval is 3 s.  Each process has its own API key on the fake
LLM, so every model call says which process made it; a consolidation of the one
seeded user makes exactly one call (pattern extraction) and one log row.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import text

from clara_core.cortex.consolidation.records import JOB_CONSOLIDATION
from storage.job_claims import SLOT_SHARE
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_llm import FakeLLM, RecordedRequest, Reply
from tests.support.clara_process import ClaraProcess, shard_env
from tests.support.cortex import remember_one

pytestmark = [pytest.mark.slow, pytest.mark.storage]

INTERVAL_S = 3.0
KEYS = ("key-process-0", "key-process-1")
JOB = "cortex_consolidation"
#: What a process that tried a slot and lost the claim logs (the second is a debug line).
SKIPPED = re.compile(
    rf"scheduled job {JOB}: (this slot ran in another process|still running in another process)"
)
START_TIMEOUT = 90  # two cold Clara start-ups on a shared 2-core machine


def process_of(request: RecordedRequest) -> int:
    return KEYS.index(request.headers["authorization"].removeprefix("Bearer "))


def pattern_calls(llm: FakeLLM) -> list[int]:
    """Which process made each pattern-extraction call, in order."""
    return [process_of(r) for r in llm.requests if "report_patterns" in json.dumps(r.json)]


async def consolidation_runs(engine) -> list[tuple[float, str]]:
    """(start, run id) of every consolidation run that reached its end."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT extract(epoch FROM started_at), run_id::text "
                "FROM consolidation_logs WHERE job = :job ORDER BY started_at"
            ),
            {"job": JOB_CONSOLIDATION},
        )
        return [(float(started), run_id) for started, run_id in rows]


def envs(tmp_path: Path, fake: FakeDiscord, llm: FakeLLM, database_url: str, redis_url: str):
    for n, key in enumerate(KEYS):
        root = tmp_path / f"p{n}"
        root.mkdir()
        yield ClaraProcess(
            root,
            shard_env(
                root,
                discord=fake,
                llm=llm,
                shard=n,
                count=2,
                api_key=key,
                database_url=database_url,
                redis_url=redis_url,
                CORTEX_CONSOLIDATION_INTERVAL_HOURS=str(INTERVAL_S / 3600),
                CORTEX_PATTERN_MIN_MEMORIES="1",
                # The claim's "another process has this slot" line is a debug line.
                LOG_LEVEL="DEBUG",
            ),
        )


async def test_two_clara_processes_run_each_scheduled_slot_once(
    tmp_path, engine, database_url, redis_url
):
    await remember_one(engine, "ida")
    async with (
        FakeDiscord(heartbeat_interval_ms=1000, shard_count=2, identify_max_concurrency=2) as fake,
        FakeLLM(api_keys=set(KEYS), default=Reply(json.dumps({"patterns": []}))) as llm,
    ):
        procs = list(envs(tmp_path, fake, llm, database_url, redis_url))
        try:
            for p in procs:
                p.start()
            await fake.wait_until(
                lambda: all(p.running() and "consolidation scheduled" in p.output() for p in procs),
                timeout=START_TIMEOUT,
                what="both processes scheduling consolidation",
            )
            # Both processes' triggers fire every interval: ~4 slots with both eligible.
            await asyncio.sleep(4 * INTERVAL_S)
            # Then, right after a run has finished (its row is written), the process
            # that has been running the slots dies without a goodbye; the other, until
            # now skipping them, must take the next ones.
            seen = len(pattern_calls(llm))
            await fake.wait_until(
                lambda: len(pattern_calls(llm)) > seen, timeout=2 * INTERVAL_S, what="a run"
            )
            for _ in range(50):
                if len(await consolidation_runs(engine)) == len(pattern_calls(llm)):
                    break
                await asyncio.sleep(0.05)
            both = pattern_calls(llm)
            winner = both[-1]
            survivor = 1 - winner
            procs[winner].kill()
            killed_at = len(both)
            await fake.wait_until(
                lambda: survivor in pattern_calls(llm)[killed_at:],
                timeout=3 * INTERVAL_S,
                what="the surviving process running a slot",
            )
            await asyncio.sleep(INTERVAL_S)
        finally:
            await asyncio.gather(*(p.stop() for p in procs))
        logs = [p.output() for p in procs]

    calls = pattern_calls(llm)
    runs = await consolidation_runs(engine)
    # Every run made its one model call and reached its end: the effect counted once
    # per run, each run its own sweep.
    assert len(runs) == len(calls), (runs, calls)
    assert len({run_id for _, run_id in runs}) == len(runs)
    # One run per slot: consecutive starts at least a slot apart.  Without the claim
    # both processes run every tick, some starts less than half an interval apart.
    starts = [t for t, _ in runs]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= SLOT_SHARE * INTERVAL_S - 0.3, gaps
    # Both processes were eligible: the one that ran the slots, and the other, which
    # tried them (its log says each was taken or still running elsewhere) and ran
    # the next ones alone once the first was gone.
    assert SKIPPED.search(logs[survivor]), logs[survivor][-3000:]
    assert set(calls[killed_at:]) == {survivor}, (calls, killed_at)
    async with engine.connect() as conn:
        holder = await conn.scalar(
            text("SELECT holder FROM scheduled_job_runs WHERE job = :job"), {"job": JOB}
        )
    assert holder is not None and holder.endswith(f":{procs[survivor].proc.pid}"), holder
    for log in logs:
        assert "Traceback" not in log, log[-3000:]
