"""Sharding: DISCORD_SHARD_COUNT / DISCORD_SHARD_IDS against a sharded fake Discord.

The fake routes each guild's events to shard ``(guild_id >> 22) % count`` and DMs
to shard 0, as Discord does; so two Clara clients that run different shards of
one bot must each answer exactly the mentions in their own guilds, and a DM once.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import discord
import pytest

from clara_core.discord_adapter.runner import DiscordRunner
from clara_core.errors import ConfigError
from tests.fakes.fake_discord import (
    FakeDiscord,
    FakeGuild,
    FakeUser,
    discord_py_pointed_at,
    running_client,
)
from tests.fakes.fake_llm import FakeLLM, RecordedRequest, Reply
from tests.support.clara_process import clara_env, run_clara
from tests.support.discord_app import clara_client_on
from tests.support.llm import build_runner, settings_for

TAG = re.compile(r"tag-[0-9a-z]+")


def echo_as(name: str):
    """An LLM that answers ``<name> saw tag-…`` for the tag in the last user turn, so a
    reply tells which client (each has its own LLM) answered which message."""

    def respond(request: RecordedRequest) -> Reply:
        users = [m for m in request.body.get("messages", []) if m.get("role") == "user"]
        found = TAG.findall(json.dumps(users[-1] if users else {}))
        return Reply(f"{name} saw {found[-1] if found else 'nothing'}")

    return respond


def add_guilds(fake: FakeDiscord, per_shard: dict[int, int], count: int, alice: FakeUser):
    """``per_shard[shard]`` guilds owned by each shard, alice a member of all."""
    guilds: dict[int, list[FakeGuild]] = {}
    for shard, n in per_shard.items():
        for i in range(n):
            gid = fake.guild_id_for_shard(shard, count)
            assert fake.shard_for_guild(gid, count) == shard
            guilds.setdefault(shard, []).append(
                fake.add_guild(f"S{shard}-{i}", guild_id=gid, members=[alice.id])
            )
    return guilds


async def mention_everywhere(fake: FakeDiscord, alice: FakeUser, guilds: list[FakeGuild]):
    tags = {}
    for n, guild in enumerate(guilds):
        tag = f"tag-{n}x{guild.id % 997}"
        channel = guild.text_channels[0].id
        await fake.send_message(channel, alice.id, f"<@{fake.bot.id}> please note {tag}")
        tags[channel] = tag
    return tags


async def wait_replies(fake: FakeDiscord, channels: list[int], timeout: float = 20) -> None:
    await fake.wait_until(
        lambda: all(fake.bot_messages(c) for c in channels), timeout=timeout, what="every reply"
    )
    # Give a second client the time to (wrongly) answer too before counting.
    await asyncio.sleep(0.7)
    await fake.flush()


def replies(fake: FakeDiscord, channel_id: int) -> list[str]:
    return [m.content for m in fake.bot_messages(channel_id)]


@asynccontextmanager
async def two_llms() -> AsyncIterator[tuple[FakeLLM, FakeLLM]]:
    async with (
        FakeLLM(api_keys={"test-key"}, default=echo_as("shard0")) as llm0,
        FakeLLM(api_keys={"test-key"}, default=echo_as("shard1")) as llm1,
    ):
        yield llm0, llm1


async def test_two_clients_each_answer_the_guilds_of_their_own_shard():
    async with (
        FakeDiscord(heartbeat_interval_ms=1000, shard_count=2, identify_max_concurrency=2) as fake,
        two_llms() as (llm0, llm1),
    ):
        alice = fake.add_user("alice", global_name="Alice")
        guilds = add_guilds(fake, {0: 2, 1: 2}, 2, alice)
        dm = fake.add_dm_channel(alice.id)
        with discord_py_pointed_at(fake):
            async with (
                clara_client_on(fake, llm0, discord_shard_count=2, discord_shard_ids="0") as c0,
                clara_client_on(fake, llm1, discord_shard_count=2, discord_shard_ids="1") as c1,
            ):
                # Each IDENTIFY carried [id, 2]; each client holds only its shard's guilds.
                identifies = [f.data["shard"] for f in fake.gateway.received if f.op == 2]
                assert sorted(identifies) == [[0, 2], [1, 2]]
                assert [s["id"] for s in c0.shard_status()] == [0]
                assert [s["id"] for s in c1.shard_status()] == [1]
                assert {g.id for g in c0.guilds} == {g.id for g in guilds[0]}
                assert {g.id for g in c1.guilds} == {g.id for g in guilds[1]}

                tags = await mention_everywhere(fake, alice, guilds[0] + guilds[1])
                await fake.send_message(dm.id, alice.id, "a private tag-dm1")
                await wait_replies(fake, [*tags, dm.id])

                for shard, owned in guilds.items():
                    for guild in owned:
                        channel = guild.text_channels[0].id
                        assert replies(fake, channel) == [f"shard{shard} saw {tags[channel]}"]
                assert replies(fake, dm.id) == ["shard0 saw tag-dm1"]  # DMs: shard 0 only
        fake.assert_clean()
    # Each LLM saw only its own shard's turns (plus the DM for shard 0).
    assert len(llm0.requests) == 3 and len(llm1.requests) == 2


async def test_default_runs_every_recommended_shard_in_one_process():
    async with (
        FakeDiscord(
            heartbeat_interval_ms=300, recommended_shards=3, identify_max_concurrency=3
        ) as fake,
        FakeLLM(api_keys={"test-key"}, default=echo_as("clara")) as llm,
    ):
        alice = fake.add_user("alice", global_name="Alice")
        guilds = add_guilds(fake, {0: 1, 1: 1, 2: 1}, 3, alice)
        with discord_py_pointed_at(fake):
            async with clara_client_on(fake, llm) as client:
                assert client.shard_count == 3
                assert [s.shard for s in fake.gateway.live_sessions()] == [(0, 3), (1, 3), (2, 3)]
                everywhere = [g for owned in guilds.values() for g in owned]
                tags = await mention_everywhere(fake, alice, everywhere)
                await wait_replies(fake, list(tags))
                for channel, tag in tags.items():
                    assert replies(fake, channel) == [f"clara saw {tag}"]
                # Every shard heartbeats on its own websocket: a latency per shard.
                await fake.wait_until(
                    lambda: all(s["latency_ms"] is not None for s in client.shard_status()),
                    timeout=5,
                    what="a heartbeat ACK on every shard",
                )
                status = client.shard_status()
                assert [(s["id"], s["count"], s["open"], s["guilds"]) for s in status] == [
                    (0, 3, True, 1),
                    (1, 3, True, 1),
                    (2, 3, True, 1),
                ]
        fake.assert_clean()


async def test_a_shard_count_discord_does_not_accept_is_a_configuration_error():
    """Discord closes an IDENTIFY whose shard count it rejects with 4010: no retry fixes
    that, so the runner stops with a configuration error naming the setting."""
    async with (
        FakeDiscord(heartbeat_interval_ms=1000, shard_count=2) as fake,
        FakeLLM(api_keys={"test-key"}) as llm,
    ):
        fake.add_guild("Home")
        settings = settings_for(
            llm,
            "openai",
            discord_bot_token=fake.token,
            discord_api_base=fake.api_base,
            discord_gateway_url=fake.gateway_url,
            discord_shard_count=3,
        )
        turn_runner, service = build_runner(settings)
        try:
            with discord_py_pointed_at(fake):
                runner = DiscordRunner(settings, runner=turn_runner)
                with pytest.raises(ConfigError) as raised:
                    await asyncio.wait_for(runner.run(), 15)
        finally:
            await service.aclose()
        assert "DISCORD_SHARD_COUNT" in raised.value.render()
        assert [c.close_code for c in fake.gateway_connections][:1] == [4010]
        assert runner.attempts == 1


async def test_fake_requires_sharding_when_told_to():
    """An unsharded IDENTIFY (plain discord.Client) to a bot that must shard: 4011."""
    async with FakeDiscord(heartbeat_interval_ms=1000, shard_count=2) as fake:
        intents = discord.Intents.default()
        with discord_py_pointed_at(fake):
            client = discord.Client(intents=intents, guild_ready_timeout=0.05)
            with pytest.raises(discord.ConnectionClosed) as closed:
                async with running_client(fake, client):
                    pass
        assert closed.value.code == 4011
        # /gateway/bot recommends the required count.
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"{fake.api_base}/gateway/bot", headers={"Authorization": f"Bot {fake.token}"}
            ) as response,
        ):
            body = await response.json()
        assert body["shards"] == 2
        assert body["session_start_limit"]["max_concurrency"] == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env", "field", "words"),
    [
        ({"DISCORD_SHARD_IDS": "0"}, "DISCORD_SHARD_IDS", "needs DISCORD_SHARD_COUNT"),
        (
            {"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "0,2"},
            "DISCORD_SHARD_IDS",
            "0 to 1",
        ),
        ({"DISCORD_SHARD_COUNT": "0"}, "DISCORD_SHARD_COUNT", "greater than or equal to 1"),
    ],
)
async def test_bad_shard_settings_exit_2_naming_the_field(tmp_path, env, field, words):
    full = clara_env(tmp_path, DISCORD_BOT_TOKEN="x" * 59, OPENROUTER_API_KEY="test-key", **env)
    result = await asyncio.to_thread(run_clara, env=full, cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert field in result.stderr and words in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
async def test_status_shows_this_process_shards_and_their_latency(tmp_path):
    """A real daemon running shards 0 and 1 of 2: ``--status`` lists both, connected,
    with a heartbeat latency and its servers; after ``--stop`` the file is gone."""
    async with FakeDiscord(heartbeat_interval_ms=300, shard_count=2) as fake:
        fake.add_guild("Zero", guild_id=fake.guild_id_for_shard(0, 2))
        fake.add_guild("One", guild_id=fake.guild_id_for_shard(1, 2))
        env = clara_env(
            tmp_path,
            DISCORD_BOT_TOKEN=fake.token,
            OPENROUTER_API_KEY="test-key",
            DISCORD_API_BASE=fake.api_base,
            DISCORD_GATEWAY_URL=fake.gateway_url,
            DISCORD_MONITOR_ENABLED="false",
            DISCORD_SHARD_COUNT="2",
        )
        status_file = tmp_path / "data" / "discord-shards.json"
        try:
            started = await asyncio.to_thread(run_clara, "--daemon", env=env, cwd=tmp_path)
            assert started.returncode == 0, started.stderr
            await fake.wait_until(
                lambda: (
                    status_file.exists()
                    and '"latency_ms": null' not in status_file.read_text()
                    and '"open": true' in status_file.read_text()
                ),
                timeout=60,
                what="the shard status file with latencies",
            )
            status = await asyncio.to_thread(run_clara, "--status", env=env, cwd=tmp_path)
            assert status.returncode == 0
            assert "Discord shards 0, 1 of 2:" in status.stdout
            assert re.search(r"shard 0: connected, latency \d+ ms, 1 server", status.stdout)
            assert re.search(r"shard 1: connected, latency \d+ ms, 1 server", status.stdout)
        finally:
            stopped = await asyncio.to_thread(run_clara, "--stop", env=env, cwd=tmp_path)
        assert stopped.returncode == 0
        assert not status_file.exists()
