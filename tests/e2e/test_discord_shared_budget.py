"""One Discord request budget per bot token: three Clara processes (one shard each)
on one fake Discord and one Redis, a burst of mentions in every guild.

The fake enforces Discord's global limit at exactly Clara's budget, so any
request one process sends on a place another already spent shows up as a global
429.  Each client stands for a process: its own HTTP session, budget and Redis
connection."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

from clara_core.discord_adapter.runner import ClaraDiscordClient
from storage.embedded import EmbeddedRedis
from tests.fakes.fake_discord import FakeDiscord, FakeUser, discord_py_pointed_at
from tests.fakes.fake_llm import FakeLLM, RecordedRequest, Reply
from tests.support.discord_app import clara_client_on

pytestmark = pytest.mark.slow

BUDGET = 6  # requests per second for the bot token: each client's setting and the fake's
PROCESSES = 3
GUILDS_PER_SHARD = 4
EXEMPT = {"interaction", "followup"}  # not signed with the bot token, not counted
TAG = re.compile(r"tag-[0-9a-z]+")


def echo(request: RecordedRequest) -> Reply:
    users = [m for m in request.body.get("messages", []) if m.get("role") == "user"]
    found = TAG.findall(json.dumps(users[-1] if users else {}))
    return Reply(f"noted {found[-1] if found else 'nothing'}")


def busiest_second(fake: FakeDiscord, since: float) -> int:
    stamps = sorted(r.at for r in fake.requests if r.at >= since and r.route_kind not in EXEMPT)
    return max(
        (sum(1 for t in stamps[i:] if t < s + 0.999) for i, s in enumerate(stamps)), default=0
    )


@asynccontextmanager
async def three_processes(
    redis_url: str | None, **overrides
) -> AsyncIterator[tuple[FakeDiscord, FakeUser, list[int], list[ClaraDiscordClient]]]:
    async with (
        FakeDiscord(
            heartbeat_interval_ms=1000, shard_count=PROCESSES, identify_max_concurrency=PROCESSES
        ) as fake,
        FakeLLM(api_keys={"test-key"}, default=echo) as llm,
    ):
        alice = fake.add_user("alice", global_name="Alice")
        channels = []
        for shard in range(PROCESSES):
            for i in range(GUILDS_PER_SHARD):
                gid = fake.guild_id_for_shard(shard, PROCESSES)
                guild = fake.add_guild(f"S{shard}-{i}", guild_id=gid, members=[alice.id])
                channels.append(guild.text_channels[0].id)
        settings = {"redis_url": redis_url} if redis_url else {"discord_shared_budget": False}
        with discord_py_pointed_at(fake):
            async with AsyncExitStack() as stack:
                clients = [
                    await stack.enter_async_context(
                        clara_client_on(
                            fake,
                            llm,
                            discord_shard_count=PROCESSES,
                            discord_shard_ids=str(shard),
                            discord_global_requests_per_second=BUDGET,
                            **settings,
                            **overrides,
                        )
                    )
                    for shard in range(PROCESSES)
                ]
                yield fake, alice, channels, clients


async def burst(fake: FakeDiscord, alice: FakeUser, channels: list[int], round_: str) -> dict:
    tags = {c: f"tag-{round_}{n}" for n, c in enumerate(channels)}
    await asyncio.gather(
        *(
            fake.send_message(c, alice.id, f"<@{fake.bot.id}> please note {tag}")
            for c, tag in tags.items()
        )
    )
    return tags


async def answered_once(fake: FakeDiscord, tags: dict[int, str], before: dict[int, int]):
    def replies(c: int) -> list[str]:
        return [m.content for m in fake.bot_messages(c)][before.get(c, 0) :]

    await fake.wait_until(
        lambda: all(replies(c) for c in tags), timeout=60, what="every channel's answer"
    )
    await asyncio.sleep(0.5)  # time for a wrong second answer
    await fake.flush()
    assert {c: replies(c) for c in tags} == {c: [f"noted {t}"] for c, t in tags.items()}


async def start_burst(fake: FakeDiscord) -> float:
    await asyncio.sleep(1.1)  # start-up requests out of the window
    fake.config.global_rate_limit = BUDGET
    return time.monotonic()


async def test_processes_on_one_token_share_one_budget(redis_url):
    async with three_processes(redis_url) as (fake, alice, channels, clients):
        assert all(c.request_budget is not None and c.request_budget.shared for c in clients)
        since = await start_burst(fake)
        tags = await burst(fake, alice, channels, "a")
        await answered_once(fake, tags, {})
        assert fake.rate_limited_count.earned_global == 0
        assert busiest_second(fake, since) <= BUDGET
        # Each process sent part of the burst: the budget was shared, not one's alone.
        assert all(c.request_budget.processes == PROCESSES for c in clients)  # type: ignore[union-attr]
        fake.assert_clean()


async def test_without_the_shared_budget_the_same_burst_earns_global_429s():
    # What the shared budget prevents: each process spends the whole budget.
    async with three_processes(None) as (fake, alice, channels, clients):
        assert all(not c.request_budget.shared for c in clients)  # type: ignore[union-attr]
        since = await start_burst(fake)
        tags = await burst(fake, alice, channels, "a")
        await answered_once(fake, tags, {})  # discord.py retries after each 429
        assert fake.rate_limited_count.earned_global > 0
        assert busiest_second(fake, since) > BUDGET


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedRedis, str]]:
    server = EmbeddedRedis(tmp_path / "redisdata")
    url = await server.start()
    try:
        yield server, url
    finally:
        await server.stop()


async def test_redis_stopped_mid_burst_falls_back_to_a_share_then_comes_back(own_redis, caplog):
    server, url = own_redis
    caplog.set_level(logging.INFO, logger="clara_core.discord_adapter.pacing")
    async with three_processes(url) as (fake, alice, channels, clients):
        budgets = [c.request_budget for c in clients]
        assert all(b is not None and b.shared for b in budgets)
        since = await start_burst(fake)
        tags = await burst(fake, alice, channels, "a")
        await fake.wait_until(
            lambda: sum(bool(fake.bot_messages(c)) for c in channels) >= 2,
            timeout=30,
            what="the first answers",
        )
        await server.stop()
        await fake.wait_until(
            lambda: all(b.fallback for b in budgets),  # type: ignore[union-attr]
            timeout=10,
            what="every process on its own share",
        )
        assert [b.local_limit for b in budgets] == [BUDGET // PROCESSES] * PROCESSES  # type: ignore[union-attr]
        await answered_once(fake, tags, {})
        assert fake.rate_limited_count.earned_global == 0
        assert busiest_second(fake, since) <= BUDGET

        # Redis answers again: back to the shared budget, and a second burst is clean.
        await server.start()
        await fake.wait_until(
            lambda: all(b.shared for b in budgets),  # type: ignore[union-attr]
            timeout=10,
            what="every process back on the shared budget",
        )
        before = {c: len(fake.bot_messages(c)) for c in channels}
        tags = await burst(fake, alice, channels, "b")
        await answered_once(fake, tags, before)
        assert fake.rate_limited_count.earned_global == 0
        assert busiest_second(fake, since) <= BUDGET
        fake.assert_clean()
    messages = [r.getMessage() for r in caplog.records]
    # One warning per process for the outage (not one per request), one notice back.
    assert sum("does not answer" in m for m in messages) == PROCESSES
    assert sum("answers again" in m for m in messages) == PROCESSES
