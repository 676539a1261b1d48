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
from redis.asyncio import Redis

from clara_core.discord_adapter.runner import ClaraDiscordClient, DiscordRunner
from storage.embedded import EmbeddedRedis
from storage.rate_budget import budget_key
from tests.fakes.fake_discord import FakeDiscord, FakeUser, discord_py_pointed_at
from tests.fakes.fake_llm import FakeLLM, RecordedRequest, Reply
from tests.support.discord_app import clara_client_on
from tests.support.llm import build_runner, settings_for

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

    # The whole answer: a streamed reply's last edit may follow its first words by
    # DISCORD_EDIT_INTERVAL_SECONDS.
    await fake.wait_until(
        lambda: all(replies(c) == [f"noted {t}"] for c, t in tags.items()),
        timeout=60,
        what="every channel's whole answer",
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


async def test_reconnects_keep_one_budget_member_and_close_its_redis_on_shutdown(own_redis):
    """A DiscordRunner builds a new client on every reconnect; the shared budget is
    the process's, not the client's: after several reconnects the token's budget
    still counts this process once (not once per attempt within the heartbeat
    TTL, which would shrink every process's fallback share), and its Redis
    connection goes away when the runner stops."""
    _server, url = own_redis
    async with (
        FakeDiscord(heartbeat_interval_ms=1000) as fake,
        FakeLLM(api_keys={"test-key"}, default=echo) as llm,
    ):
        alice = fake.add_user("alice", global_name="Alice")
        channel = fake.add_guild("Home", members=[alice.id]).text_channels[0].id
        settings = settings_for(
            llm,
            "openai",
            discord_bot_token=fake.token,
            discord_api_base=fake.api_base,
            discord_gateway_url=fake.gateway_url,
            redis_url=url,
        )
        turn_runner, service = build_runner(settings)
        probe = Redis.from_url(url, decode_responses=True)
        processes_key = f"{budget_key(fake.token)}:processes"
        try:
            with discord_py_pointed_at(fake):
                # The gateway is down (REST up): every attempt logs in through the
                # budget, fails to connect, and the runner builds a fresh client.
                fake.refuse_gateway()
                runner = DiscordRunner(
                    settings, runner=turn_runner, initial_backoff=0.05, max_backoff=0.1
                )
                task = asyncio.create_task(runner.run())
                try:
                    await fake.wait_until(
                        lambda: runner.attempts >= 4 and fake.gateway_refused_count >= 4,
                        timeout=30,
                        what="four connection attempts",
                    )
                    fake.refuse_gateway(False)
                    await asyncio.wait_for(runner.connected.wait(), 20)
                    tags = await burst(fake, alice, [channel], "r")
                    await answered_once(fake, tags, {})
                    # Every attempt's heartbeat is within the TTL: one member means
                    # one identity for the whole process.
                    assert await probe.zcard(processes_key) == 1
                    budget = runner.client.request_budget  # type: ignore[union-attr]
                    assert budget is not None and budget.shared and budget.processes == 1
                    assert runner.attempts >= 5
                finally:
                    await runner.close()
                    await asyncio.wait_for(task, 10)
            # Only the probe is left connected: the budget's client was closed (the
            # server notices a closed socket a moment later, hence the wait).
            for _ in range(50):
                if len(await probe.client_list()) == 1:
                    break
                await asyncio.sleep(0.1)
            assert len(await probe.client_list()) == 1
            assert runner.request_budget is None
        finally:
            await probe.aclose()
            await service.aclose()


# -- per-route buckets --------------------------------------------------------------


@asynccontextmanager
async def two_senders(fake: FakeDiscord, redis_url: str | None):
    """Two processes' REST sides: each its own discord.py HTTPClient and budget
    (and, with ``redis_url``, its own Redis connection to the shared one)."""
    from discord.http import HTTPClient

    from clara_core.discord_adapter.pacing import GlobalBudget
    from storage.rate_budget import RedisRateBudget

    key = budget_key(fake.token)
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            shared = RedisRateBudget.from_url(redis_url, timeout=0.5) if redis_url else None
            budget = GlobalBudget(50, shared=shared, key=key)
            stack.push_async_callback(budget.aclose)
            http = HTTPClient(asyncio.get_running_loop(), http_trace=budget.trace_config())
            await http.static_login(fake.token)
            stack.push_async_callback(http.close)
            clients.append(http)
        yield clients


async def _send_all(clients, channel_id: int, per_client: int) -> None:
    from discord.http import handle_message_parameters

    async def send(http, text: str) -> None:
        with handle_message_parameters(content=text) as params:
            await http.send_message(channel_id, params=params)

    await asyncio.gather(
        *(send(http, f"p{i}-m{n}") for i, http in enumerate(clients) for n in range(per_client))
    )


@pytest.mark.parametrize("shared", [True, False], ids=["shared-buckets", "per-process"])
async def test_two_processes_share_a_channels_route_bucket(redis_url, shared):
    """Both processes post into one channel (the log channel every shard mirrors
    into, a proactive message): Discord's bucket for that channel is per bot token,
    so with the shared state the pair earns no 429; each on its own, it does."""
    async with FakeDiscord(message_rate_limit=5, message_rate_window=2.0) as fake:
        channel = fake.add_guild("G").text_channels[0].id
        with discord_py_pointed_at(fake):
            async with two_senders(fake, redis_url if shared else None) as clients:
                await _send_all(clients, channel, per_client=8)
        texts = sorted(m.content for m in fake.bot_messages(channel))
        assert texts == sorted(f"p{i}-m{n}" for i in range(2) for n in range(8))
        if shared:
            assert fake.rate_limited_count.earned == 0
        else:  # what the shared buckets prevent (discord.py retries each 429)
            assert fake.rate_limited_count.earned > 0
