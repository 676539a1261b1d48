"""Clara's real process against the loopback fake Discord."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.fakes.fake_discord import FakeDiscord
from tests.support.clara_process import clara_env, run_clara

pytestmark = pytest.mark.slow


def _env(tmp_path, fake: FakeDiscord, **extra: str) -> dict[str, str]:
    settings = {
        "DISCORD_BOT_TOKEN": fake.token,
        "OPENROUTER_API_KEY": "test-key",
        "DISCORD_API_BASE": fake.api_base,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
    }
    return clara_env(tmp_path, **{**settings, **extra})


async def test_daemon_connects_resumes_and_stops(tmp_path):
    async with FakeDiscord(heartbeat_interval_ms=500) as fake:
        fake.add_guild("Clara's Home")
        env = _env(tmp_path, fake)
        log = tmp_path / "data" / "clara.log"
        try:
            started = await asyncio.to_thread(run_clara, "--daemon", env=env, cwd=tmp_path)
            assert started.returncode == 0, started.stderr
            await fake.wait_until(lambda: fake.identify_count == 1, timeout=30, what="IDENTIFY")
            await fake.wait_until(
                lambda: "connected to Discord as Clara" in log.read_text(),
                timeout=30,
                what="ready log",
            )
            assert re.search(r"in 1 server\(s\)", log.read_text())

            await fake.disconnect_all(code=4000)
            await fake.wait_until(lambda: fake.resume_count == 1, timeout=30, what="RESUME")
            assert fake.identify_count == 1  # resumed, not re-identified

            status = await asyncio.to_thread(run_clara, "--status", env=env, cwd=tmp_path)
            assert status.returncode == 0
        finally:
            stopped = await asyncio.to_thread(run_clara, "--stop", env=env, cwd=tmp_path)
        assert stopped.returncode == 0
        await fake.wait_until(
            lambda: not any(c.open for c in fake.gateway_connections),
            timeout=10,
            what="gateway closed",
        )
        assert fake.token not in log.read_text()
        assert not fake.unknown_routes, fake.unknown_routes


async def test_rejected_token_is_a_configuration_error(tmp_path):
    async with FakeDiscord() as fake:
        env = _env(tmp_path, fake, DISCORD_BOT_TOKEN="not-the-token")
        result = await asyncio.to_thread(run_clara, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "DISCORD_BOT_TOKEN was rejected by Discord" in result.stderr
    assert "not-the-token" not in result.stderr
    assert "Traceback" not in result.stderr
