"""Run Clara's real entry point (``discord_bot.py``) as a separate process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from clara_core.config import env_names
from clara_core.proc import pid_alive  # noqa: F401  (re-exported for tests)

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
