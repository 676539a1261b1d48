"""A real ``python discord_bot.py worker`` process for tests, and the small
pieces the worker tests share: its environment, queueing one job as a Clara
process would, and the consolidation log rows a run leaves."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clara_core.worker import WorkQueue
from storage.models.cortex import ConsolidationLog
from tests.fakes.fake_llm import FakeLLM
from tests.support.clara_process import ENTRY, clara_env
from tests.support.llm import KEY


async def logged(engine: AsyncEngine, run_id: str) -> list[tuple[str, str]]:
    """(user, job) of every consolidation log row of ``run_id``: one per job run."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(ConsolidationLog.user_id, ConsolidationLog.job).where(
                ConsolidationLog.run_id == uuid.UUID(run_id)
            )
        )
        return sorted((r.user_id, r.job) for r in rows)


def worker_env(tmp_path: Path, fake: FakeLLM, **settings: str) -> dict[str, str]:
    """A worker's environment: the fake LLM, and ``settings`` (where its servers are)."""
    return clara_env(
        tmp_path,
        LLM_PROVIDER="openai",
        CUSTOM_OPENAI_API_KEY=KEY,
        CUSTOM_OPENAI_BASE_URL=fake.openai_base_url,
        **settings,
    )


async def queue_one(redis_url: str, user_id: str) -> str:
    """Queue one consolidation as a Clara process would; returns its run id."""
    run_id = str(uuid.uuid4())
    queue = await WorkQueue.open(redis_url)
    try:
        await queue.consolidate(user_id, run_id=run_id, compact=None)
    finally:
        await queue.close()
    return run_id


async def worker_health(env: dict[str, str]) -> tuple[int, str]:
    """The container's healthcheck command, run as compose runs it: exit code, output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clara_core.worker_health",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode()


class WorkerProcess:
    """A real ``python discord_bot.py worker``, its log (stderr) read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @classmethod
    async def start(cls, env: dict[str, str], cwd: Path) -> WorkerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ENTRY), "worker", env=env, cwd=cwd, stderr=asyncio.subprocess.PIPE
        )
        return cls(proc)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    async def read_for(self, seconds: float) -> None:
        assert self.proc.stderr is not None
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            try:
                line = await asyncio.wait_for(self.proc.stderr.readline(), left)
            except TimeoutError:
                return
            if not line:
                return
            self.lines.append(line.decode())

    async def ready(self, timeout: float = 60) -> None:
        """Until it logs "worker ready" (it loads the embedder first, ~2 s)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not any("worker ready" in line for line in self.lines):
            assert loop.time() < end and self.proc.returncode is None, self.log
            await self.read_for(1)

    async def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as a crash or the OOM killer ends it."""
        assert self.proc.stderr is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.proc.wait(), 30)
        self.lines.append((await asyncio.wait_for(self.proc.stderr.read(), 30)).decode())

    async def stop(self) -> None:
        """SIGTERM, as an operator stops it; the rest of its log is read."""
        assert self.proc.stderr is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rest = await asyncio.wait_for(self.proc.stderr.read(), 30)
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            alive = self.proc.returncode is None
            self.proc.kill()
            raise AssertionError(
                f"the worker did not end within 30 s of SIGTERM (process "
                f"{'still running' if alive else 'ended, its stderr still open'}); "
                f"its log so far:\n{self.log[-4000:]}"
            ) from None
        self.lines.append(rest.decode())
