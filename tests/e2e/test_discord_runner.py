"""DiscordRunner, Clara's connection loop, against the fake Discord and fake LLM.

What it must survive: a gateway that is down at start (REST up), payloads
discord.py cannot parse, and a stop request while it waits to retry; what it
must not retry: a token Discord rejects, a privileged intent that is off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from clara_core.discord_adapter.runner import DiscordRunner
from clara_core.errors import ConfigError
from tests.fakes.fake_discord import FakeDiscord, FakeUser, discord_py_pointed_at
from tests.fakes.fake_llm import FakeLLM, Reply
from tests.support.llm import build_runner, settings_for


@dataclass
class Setup:
    discord: FakeDiscord
    llm: FakeLLM
    settings: Any
    turn_runner: Any
    alice: FakeUser
    channel_id: int
    guild_id: int

    def runner(self, *, attach: bool = True, **kwargs: Any) -> DiscordRunner:
        return DiscordRunner(self.settings, runner=self.turn_runner if attach else None, **kwargs)

    async def ask(self, text: str, answer: str, *, timeout: float = 15) -> None:
        """Mention Clara and wait until her reply reads ``answer``."""
        self.llm.enqueue(Reply(answer))
        await self.discord.send_message(
            self.channel_id, self.alice.id, f"<@{self.discord.bot.id}> {text}"
        )
        await self.discord.wait_until(
            lambda: any(m.content == answer for m in self.discord.bot_messages(self.channel_id)),
            timeout=timeout,
            what=f"the reply {answer!r}",
        )


@asynccontextmanager
async def setup(**overrides: Any) -> AsyncIterator[Setup]:
    async with (
        FakeDiscord(heartbeat_interval_ms=1000) as discord_fake,
        FakeLLM(api_keys={"test-key"}) as llm,
    ):
        alice = discord_fake.add_user("alice", global_name="Alice")
        guild = discord_fake.add_guild("Home", members=[alice.id])
        settings = settings_for(
            llm,
            "openai",
            discord_bot_token=discord_fake.token,
            discord_api_base=discord_fake.api_base,
            discord_gateway_url=discord_fake.gateway_url,
            discord_edit_interval_seconds=0.25,
            **overrides,
        )
        turn_runner, service = build_runner(settings)
        try:
            # run() points discord.py at the settings' endpoints; this restores them after.
            with discord_py_pointed_at(discord_fake):
                yield Setup(
                    discord_fake,
                    llm,
                    settings,
                    turn_runner,
                    alice,
                    guild.text_channels[0].id,
                    guild.id,
                )
        finally:
            await service.aclose()


@asynccontextmanager
async def running(runner: DiscordRunner) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(runner.run(), name="discord-runner")
    try:
        yield task
    finally:
        await runner.close()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)


@pytest.mark.parametrize("payload", ["message_update", "channel_update"])
async def test_a_payload_discord_py_cannot_parse_does_not_end_clara(payload, caplog):
    """The parser's TypeError/KeyError escapes discord.py's Client.connect(); the
    runner must reconnect (fresh IDENTIFY) and keep answering."""
    caplog.set_level(logging.WARNING, logger="clara_core.discord_adapter.runner")
    async with setup() as s:
        runner = s.runner(initial_backoff=0.2)
        async with running(runner) as task:
            await asyncio.wait_for(runner.connected.wait(), 15)
            await s.ask("hello", "First answer.")

            if payload == "message_update":
                assert s.discord.send_malformed_message_update(s.channel_id) == 1
            else:
                assert s.discord.send_malformed_channel_update(s.guild_id) == 1
            await s.discord.wait_until(
                lambda: s.discord.identify_count == 2, timeout=15, what="a new IDENTIFY"
            )
            await s.discord.wait_until(
                lambda: runner.client is not None and runner.client.is_ready(),
                timeout=15,
                what="READY again",
            )
            await s.ask("are you still there?", "Still here.")
            assert not task.done()
            assert runner.attempts == 2
        assert "Discord connection failed unexpectedly" in caplog.text
        assert "First answer." in [m.content for m in s.discord.bot_messages(s.channel_id)]


async def test_gateway_down_at_start_is_retried_until_it_is_back(caplog):
    caplog.set_level(logging.WARNING, logger="clara_core.discord_adapter.runner")
    async with setup() as s:
        s.discord.refuse_gateway()
        runner = s.runner(initial_backoff=0.2, max_backoff=0.5)
        async with running(runner) as task:
            note = await asyncio.wait_for(runner.first_outcome, 15)
            assert note is not None and "not reachable yet" in note
            await s.discord.wait_until(
                lambda: s.discord.gateway_refused_count >= 2, timeout=20, what="a retry"
            )
            assert not task.done()
            assert "cannot reach Discord" in caplog.text

            s.discord.refuse_gateway(False)
            await asyncio.wait_for(runner.connected.wait(), 20)
            await s.ask("hi", "Back online.")
            assert not task.done()


async def test_close_interrupts_the_backoff_at_once():
    async with setup() as s:
        s.discord.refuse_gateway()
        runner = s.runner(initial_backoff=60.0)  # a long wait after the first failure
        task = asyncio.create_task(runner.run())
        try:
            await asyncio.wait_for(runner.first_outcome, 15)  # failed once: now waiting
            await asyncio.sleep(0.2)
            assert not task.done()
            t0 = time.monotonic()
            await runner.close()
            await asyncio.wait_for(task, 5)
            assert time.monotonic() - t0 < 2.0
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    assert runner.attempts == 1


async def test_close_interrupts_a_connect_in_progress():
    """Stop while discord.py itself is between gateway attempts (its own backoff)."""
    async with setup() as s:
        s.discord.refuse_gateway()
        runner = s.runner()
        task = asyncio.create_task(runner.run())
        try:
            await s.discord.wait_until(
                lambda: s.discord.gateway_refused_count >= 1, timeout=15, what="a refused connect"
            )
            t0 = time.monotonic()
            await runner.close()
            await asyncio.wait_for(task, 6)
            assert time.monotonic() - t0 < 4.0
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


async def test_rejected_token_is_fatal_not_retried():
    async with setup() as s:
        bad = s.settings.model_copy(update={"discord_bot_token": SecretStr("not-the-token")})
        runner = DiscordRunner(bad, runner=s.turn_runner)
        with pytest.raises(ConfigError) as raised:
            await asyncio.wait_for(runner.run(), 15)
        assert "DISCORD_BOT_TOKEN was rejected" in raised.value.render()
        assert isinstance(runner.first_outcome.exception(), ConfigError)
        assert runner.attempts == 1 and s.discord.identify_count == 0


async def test_missing_message_content_intent_is_fatal():
    async with setup() as s:
        s.discord.config.privileged_intents = 0  # the portal switch is off
        runner = s.runner()
        with pytest.raises(ConfigError) as raised:
            await asyncio.wait_for(runner.run(), 15)
        assert "Message Content intent" in raised.value.render()
        assert runner.attempts == 1


async def test_messages_before_the_pipeline_is_ready_wait_for_it():
    """Start-up connects to Discord before the pipeline is built; a mention in that
    window is answered once the pipeline arrives, not dropped."""
    async with setup() as s:
        runner = s.runner(attach=False)
        async with running(runner) as task:
            await asyncio.wait_for(runner.connected.wait(), 15)
            s.llm.enqueue(Reply("Worth the wait."))
            await s.discord.send_message(
                s.channel_id, s.alice.id, f"<@{s.discord.bot.id}> are you up?"
            )
            await asyncio.sleep(0.5)
            assert s.discord.bot_messages(s.channel_id) == []  # nothing to answer with yet
            # The slash commands are registered with the pipeline, not before.
            assert not [r for r in s.discord.requests_for("commands") if r.method == "PUT"]
            runner.attach(s.turn_runner)
            await s.discord.wait_until(
                lambda: any(
                    m.content == "Worth the wait." for m in s.discord.bot_messages(s.channel_id)
                ),
                timeout=15,
                what="the late answer",
            )
            assert not task.done()
            await s.discord.wait_until(
                lambda: [r for r in s.discord.requests_for("commands") if r.method == "PUT"],
                what="the slash commands registered",
            )


async def test_a_slash_command_before_the_pipeline_is_ready_is_answered():
    """Commands registered by an earlier run exist on Discord while the new start-up
    has no command tree yet: the user gets a plain "still starting", not silence."""
    async with setup() as s:
        first = s.runner()
        async with running(first):
            await s.discord.wait_until(
                lambda: any(c.name == "clara" for c in s.discord.state.commands.values()),
                what="the commands registered by the first run",
            )
        runner = s.runner(attach=False)
        async with running(runner):
            await asyncio.wait_for(runner.connected.wait(), 15)
            early = await s.discord.send_slash_command(
                s.channel_id, s.alice.id, "clara", [{"name": "status", "type": 1, "options": []}]
            )
            await s.discord.wait_until(lambda: early.acknowledged, what="the early answer")
            assert early.callback is not None and early.callback.data is not None
            assert "still starting" in early.callback.data["content"]
            assert early.callback.data["flags"] & 64  # ephemeral: only the caller sees it

            runner.attach(s.turn_runner)
            later = await s.discord.send_slash_command(
                s.channel_id, s.alice.id, "clara", [{"name": "status", "type": 1, "options": []}]
            )
            await s.discord.wait_until(lambda: later.acknowledged, what="the status answer")
            assert "**Clara** — up" in later.callback.data["content"]
