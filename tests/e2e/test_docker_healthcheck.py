"""The Dockerfile's HEALTHCHECK, run for real against a running Clara.

No image registry is reachable here, so the image itself is not built; the
health command is taken verbatim from the Dockerfile and executed the way
Docker would (exec form, the image's environment), against the real process.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys

import pytest

from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_llm import FakeLLM
from tests.support.clara_process import REPO, clara_env, run_clara

pytestmark = pytest.mark.slow


def _healthcheck_argv() -> list[str]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, re.MULTILINE)
    assert match, "Dockerfile has no exec-form HEALTHCHECK"
    argv = json.loads(match.group(1))
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


def _health(port: int) -> int:
    env = {"PATH": "/usr/bin:/bin", "DISCORD_MONITOR_PORT": str(port)}
    return subprocess.run(_healthcheck_argv(), env=env, capture_output=True, timeout=30).returncode


async def test_healthcheck_reports_a_connected_clara_and_fails_without_one(tmp_path):
    async with FakeDiscord(heartbeat_interval_ms=1000) as discord_fake, FakeLLM() as llm:
        env = clara_env(
            tmp_path,
            DISCORD_BOT_TOKEN=discord_fake.token,
            DISCORD_API_BASE=discord_fake.api_base,
            DISCORD_GATEWAY_URL=discord_fake.gateway_url,
            LLM_PROVIDER="openai",
            CUSTOM_OPENAI_API_KEY="k",
            CUSTOM_OPENAI_BASE_URL=llm.openai_base_url,
            DISCORD_MONITOR_ENABLED="true",
            DISCORD_MONITOR_PORT="0",
        )
        log = tmp_path / "data" / "clara.log"
        try:
            started = await asyncio.to_thread(run_clara, "--daemon", env=env, cwd=tmp_path)
            assert started.returncode == 0, started.stderr
            await discord_fake.wait_until(
                lambda: "connected to Discord" in log.read_text(), timeout=30
            )
            port = int(
                re.search(r"monitor listening on http://127.0.0.1:(\d+)/", log.read_text()).group(1)
            )
            assert await asyncio.to_thread(_health, port) == 0
        finally:
            await asyncio.to_thread(run_clara, "--stop", env=env, cwd=tmp_path)
        # Clara gone: the same command must report the container unhealthy.
        assert await asyncio.to_thread(_health, port) != 0
