"""Run Clara's real entry point (``discord_bot.py``) as a separate process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from clara_core.config import env_names
from clara_core.proc import pid_alive  # noqa: F401  (re-exported for tests)

if TYPE_CHECKING:
    from tests.fakes.fake_discord import FakeDiscord
    from tests.fakes.fake_llm import FakeLLM

REPO = Path(__file__).resolve().parents[2]
ENTRY = REPO / "discord_bot.py"


def clara_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A clean environment: no Clara variable leaks in from the outside."""
    clara_vars = set(env_names().values()) | {"PROACTIVE_ENABLED"}
    env = {k: v for k, v in os.environ.items() if k not in clara_vars}
    env["CLARA_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def fakes_env(discord: FakeDiscord, llm: FakeLLM, api_key: str = "k") -> dict[str, str]:
    """The settings that point Clara at the fake Discord and the fake LLM (OpenAI
    wire), as an operator's .env names the real ones."""
    return {
        "DISCORD_BOT_TOKEN": discord.token,
        "DISCORD_API_BASE": discord.api_base,
        "DISCORD_GATEWAY_URL": discord.gateway_url,
        "LLM_PROVIDER": "openai",
        "CUSTOM_OPENAI_API_KEY": api_key,
        "CUSTOM_OPENAI_BASE_URL": llm.openai_base_url,
    }


def shard_env(
    root: Path,
    *,
    discord: FakeDiscord,
    llm: FakeLLM,
    shard: int,
    count: int,
    api_key: str,
    database_url: str,
    redis_url: str,
    **overrides: str,
) -> dict[str, str]:
    """One shard process of a deployment on shared servers, as an operator runs it:
    its own CLARA_DATA_DIR (<root>/data), DISCORD_SHARD_IDS, no embedded servers,
    the monitor on a free port (several processes on one host)."""
    return clara_env(
        root,
        **fakes_env(discord, llm, api_key),
        DISCORD_SHARD_COUNT=str(count),
        DISCORD_SHARD_IDS=str(shard),
        DISCORD_MONITOR_PORT="0",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        **overrides,
    )


def run_clara(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    # cwd is the test's tmp dir, so no developer .env is picked up.
    return subprocess.run(
        [sys.executable, str(ENTRY), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM, as an operator stops Clara, then SIGKILL if it outlives ``timeout``;
    nothing to do for a process that already ended (or never started)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(proc.wait, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait, 10)


def wait_for(predicate, timeout: float = 30, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class ClaraProcess:
    """``python discord_bot.py`` (the Discord bot, as each shard process of a deployment
    runs it) started in ``root`` with ``env``, its output in a file under ``root``."""

    def __init__(self, root: Path, env: dict[str, str], name: str = "clara") -> None:
        self.root = root
        self.env = env
        self.name = name
        self.log = root / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start (or start again: each later run has its own log, ``NAME-runK.log``)."""
        self.starts += 1
        if self.starts > 1:
            self.log = self.root / f"{self.name}-run{self.starts}.log"
        with self.log.open("wb") as out:
            # cwd is the process's own directory: no developer .env is read.
            self.proc = subprocess.Popen(
                [sys.executable, str(ENTRY)],
                env=self.env,
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as a crash or the OOM killer ends it."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    async def stop(self) -> None:
        if self.proc is not None:
            await stop_process(self.proc)
