"""Clara's real process against the loopback fake Discord."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_llm import FakeLLM, Reply
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


async def test_gateway_down_at_boot_is_retried_then_clara_answers(tmp_path):
    """REST up, gateway refusing (a blip at boot): Clara stays up, retries with
    backoff, connects when the gateway is back, and answers."""
    async with (
        FakeDiscord(heartbeat_interval_ms=1000) as fake,
        FakeLLM(api_keys={"k"}, default=Reply("I made it.")) as llm,
    ):
        alice = fake.add_user("alice")
        channel = fake.add_guild("Home", members=[alice.id]).text_channels[0]
        fake.refuse_gateway()
        env = _env(
            tmp_path,
            fake,
            LLM_PROVIDER="openai",
            CUSTOM_OPENAI_API_KEY="k",
            CUSTOM_OPENAI_BASE_URL=llm.openai_base_url,
            DISCORD_MONITOR_ENABLED="false",
            CORTEX_EXTRACTION_ENABLED="false",
        )
        log = tmp_path / "data" / "clara.log"
        try:
            started = await asyncio.to_thread(run_clara, "--daemon", env=env, cwd=tmp_path)
            # Started, and the launcher says Discord is not reachable yet.
            assert started.returncode == 0, started.stderr
            assert "Discord is not reachable yet" in started.stderr
            await fake.wait_until(
                lambda: fake.gateway_refused_count >= 2, timeout=30, what="a second attempt"
            )
            assert "cannot reach Discord (WSServerHandshakeError: 503" in log.read_text()
            assert "Traceback" not in log.read_text()  # a network blip is one line, not a dump
            status = await asyncio.to_thread(run_clara, "--status", env=env, cwd=tmp_path)
            assert status.returncode == 0, "Clara died while the gateway was down"

            fake.refuse_gateway(False)
            await fake.wait_until(
                lambda: "connected to Discord as Clara" in log.read_text(),
                timeout=30,
                what="the connection once the gateway is back",
            )
            await fake.send_message(channel.id, alice.id, f"<@{fake.bot.id}> hello?")
            await fake.wait_until(
                lambda: any(m.content == "I made it." for m in fake.bot_messages(channel.id)),
                timeout=30,
                what="the answer",
            )
        finally:
            stopped = await asyncio.to_thread(run_clara, "--stop", env=env, cwd=tmp_path)
        assert stopped.returncode == 0 and "killed" not in stopped.stdout
        assert "Traceback" not in started.stderr
