"""Clara's Discord client + pipeline against the fake Discord and fake LLM."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from clara_core.discord_adapter.runner import ClaraDiscordClient
from storage.channel_summaries import ChannelSummaryStore
from storage.preferences import Preferences
from storage.sessions import SessionStore
from tests.fakes.fake_discord import FakeDiscord, FakeUser, discord_py_pointed_at, running_client
from tests.fakes.fake_llm import FakeLLM
from tests.support.llm import build_runner, settings_for
from tools.registry import ToolRegistry

if TYPE_CHECKING:
    from clara_core.cortex.manager import MemoryManager


@dataclass
class World:
    discord: FakeDiscord
    llm: FakeLLM
    client: ClaraDiscordClient
    channel_id: int
    guild_id: int
    alice: FakeUser
    bob: FakeUser
    log_channel_id: int | None = None

    @property
    def bot_id(self) -> int:
        return self.discord.bot.id

    async def say(self, author: FakeUser, text: str, *, channel_id: int | None = None, **kw: Any):
        return await self.discord.send_message(channel_id or self.channel_id, author.id, text, **kw)

    async def mention(self, author: FakeUser, text: str, **kw: Any):
        return await self.say(author, f"<@{self.bot_id}> {text}", **kw)

    def replies(self, channel_id: int | None = None):
        return self.discord.bot_messages(channel_id or self.channel_id)

    async def wait_reply_text(
        self, text: str, *, channel_id: int | None = None, timeout: float = 15
    ):
        await self.discord.wait_until(
            lambda: any(m.content == text for m in self.replies(channel_id)),
            timeout=timeout,
            what=f"a reply reading {text[:40]!r}",
        )
        return next(m for m in self.replies(channel_id) if m.content == text)


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("clara_core", "storage", "tools")):
            self.records.append(f"{record.name}: {record.getMessage()}\n{record.exc_text or ''}")


@asynccontextmanager
async def clara_on_discord(
    *,
    tools: ToolRegistry | None = None,
    provider: str = "openai",
    preferences: Preferences | None = None,
    sessions: SessionStore | None = None,
    channel_summaries: ChannelSummaryStore | None = None,
    log_channel: bool = False,
    memory: MemoryManager | None = None,
    engine: AsyncEngine | None = None,
    forget_confirm_timeout: float = 60.0,
    voice: bool = False,
    **overrides: Any,
) -> AsyncIterator[World]:
    """``voice=True``: the client trusts the fake voice server's TLS certificate
    (discord.py always opens the voice gateway with ``wss://``)."""
    async with (
        FakeDiscord(heartbeat_interval_ms=1000) as discord_fake,
        FakeLLM(api_keys={"test-key"}) as llm,
    ):
        alice = discord_fake.add_user("alice", global_name="Alice")
        bob = discord_fake.add_user("bob", global_name="Bob")
        guild = discord_fake.add_guild("Home", members=[alice.id, bob.id])
        channel = guild.text_channels[0]
        log_channel_id = (
            discord_fake.add_channel(guild.id, "clara-logs").id if log_channel else None
        )
        if log_channel_id is not None:
            overrides["discord_log_channel_id"] = log_channel_id
        values = {
            "discord_bot_token": discord_fake.token,
            "discord_api_base": discord_fake.api_base,
            "discord_gateway_url": discord_fake.gateway_url,
            "discord_edit_interval_seconds": 0.25,
            **overrides,
        }
        settings = settings_for(llm, provider, **values)
        runner, service = build_runner(settings, tools)
        client = ClaraDiscordClient(
            runner=runner,
            settings=settings,
            preferences=preferences,
            sessions=sessions,
            channel_summaries=channel_summaries,
            memory=memory,
            engine=engine,
            forget_confirm_timeout=forget_confirm_timeout,
            guild_ready_timeout=0.05,
            **(
                {"connector": aiohttp.TCPConnector(ssl=discord_fake.voice.client_ssl_context)}
                if voice
                else {}
            ),
        )
        errors = _ErrorCollector()
        logging.getLogger().addHandler(errors)
        try:
            with discord_py_pointed_at(discord_fake):
                async with running_client(discord_fake, client):
                    yield World(
                        discord_fake, llm, client, channel.id, guild.id, alice, bob, log_channel_id
                    )
        finally:
            logging.getLogger().removeHandler(errors)
            await service.aclose()
        # A job that fails after the reply is visible (e.g. storing it) is only
        # logged by the queue; a test must not pass over it.
        assert not errors.records, "Clara logged errors:\n" + "\n".join(errors.records)


@asynccontextmanager
async def clara_client_on(
    discord_fake: FakeDiscord,
    llm: FakeLLM,
    *,
    ready_timeout: float = 15.0,
    sessions: SessionStore | None = None,
    **overrides: Any,
) -> AsyncIterator[ClaraDiscordClient]:
    """One more Clara client (its own pipeline and LLM) on an already running fake
    Discord, e.g. one per shard; the caller points discord.py at the fake
    (``discord_py_pointed_at``).  ``overrides`` are settings (``discord_shard_ids``...)."""
    settings = settings_for(
        llm,
        "openai",
        discord_bot_token=discord_fake.token,
        discord_api_base=discord_fake.api_base,
        discord_gateway_url=discord_fake.gateway_url,
        discord_edit_interval_seconds=0.25,
        **overrides,
    )
    runner, service = build_runner(settings)
    client = ClaraDiscordClient(
        runner=runner, settings=settings, sessions=sessions, guild_ready_timeout=0.05
    )
    try:
        async with running_client(discord_fake, client, ready_timeout=ready_timeout):
            yield client
    finally:
        await service.aclose()
