"""The mood's Redis cache on real servers: two processes share one mood; Redis
going down costs speed only (this process's LRU and PostgreSQL answer, logged
once) and its return never serves a copy older than PostgreSQL's; forgetting a
user reaches what Redis holds, also when it was down at the time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clara_core.companion.hormones import HormoneModel
from clara_core.pipeline.mood import MoodService
from storage.companion import CompanionStore
from storage.companion_cache import MoodCache, MoodCacheDown
from storage.db import create_engine
from storage.embedded import EmbeddedRedis
from storage.redis import create_redis
from tests.support.clock import Clock

pytestmark = pytest.mark.storage

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
MODEL = HormoneModel("Europe/Berlin")


async def _until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedRedis, str]]:
    server = EmbeddedRedis(tmp_path / "redisdata")
    url = await server.start()
    try:
        yield server, url
    finally:
        await server.stop()


async def test_a_second_process_sees_the_first_ones_mood_change(database_url, redis_url):
    """Two processes: their own Redis clients, engines and services; one clock."""
    clock = Clock(T0)
    engines = [create_engine(database_url, pool_size=2) for _ in range(2)]
    clients = [create_redis(redis_url) for _ in range(2)]
    await clients[0].flushdb()
    first, second = (
        MoodService(MODEL, CompanionStore(e), clock, cache=MoodCache(r))
        for e, r in zip(engines, clients, strict=True)
    )
    try:
        at_rest = await second.current("channel:1")
        await first.on_message("channel:1", "Thank you Clara, amazing!", user_id="a", owner=None)
        seen = await second.current("channel:1")
        assert seen.levels == (await first.current("channel:1")).levels != at_rest.levels
        # Again: the second process must not answer from a copy of its own.
        clock.advance(seconds=20)
        await first.on_message("channel:1", "you are useless, shut up", user_id="b", owner=None)
        assert (await second.current("channel:1")).levels == (
            await first.current("channel:1")
        ).levels
        # ...and the other way round, the second process's change moving the first.
        clock.advance(seconds=20)
        await second.on_reply("channel:1")
        assert (await first.current("channel:1")).last_clara_at == clock()
        await asyncio.gather(first.flush(), second.flush())
        assert await CompanionStore(engines[0]).load("channel:1") is not None  # the record
    finally:
        for client in clients:
            await client.aclose()
        for engine in engines:
            await engine.dispose()


async def test_redis_down_degrades_to_memory_logs_once_and_recovers_fresh(
    engine, own_redis, caplog
):
    server, url = own_redis
    clock = Clock(T0)
    store = CompanionStore(engine)
    client = create_redis(url)
    cache = MoodCache(client, probe_interval=0.05)
    service = MoodService(MODEL, store, clock, cache=cache)
    try:
        await service.on_message("channel:1", "Thanks Clara, wonderful!", user_id="a", owner=None)
        assert await cache.get("channel:1") is not None  # in Redis while it is up
        await server.stop()

        with caplog.at_level(logging.WARNING, logger="storage.companion_cache"):
            for text in ("this is awful", "shut up", "useless!!"):
                clock.advance(seconds=30)
                state = await service.on_message("channel:1", text, user_id="a", owner=None)
            during = await service.current("channel:1")
            assert during.levels == state.levels  # this process's copy answers
            down_logs = [r for r in caplog.records if "unreachable" in r.getMessage()]
            assert len(down_logs) == 1  # once, not per call
            await service.flush()  # PostgreSQL has every change meanwhile

            await server.start()  # the same data: the pre-outage copy is still in it
            await _until(lambda: cache.up)
        assert sum("reachable again" in r.getMessage() for r in caplog.records) == 1
        # The copy Redis kept from before the outage is older than PostgreSQL's: dropped.
        after = await service.current("channel:1")
        assert after.levels == during.levels
        assert await cache.get("channel:1") is not None  # refilled from PostgreSQL
        # A fresh process (empty memory) reads the same from Redis.
        other = MoodService(MODEL, CompanionStore(engine), clock, cache=MoodCache(client))
        assert (await other.current("channel:1")).levels == during.levels
    finally:
        await cache.close()
        await client.aclose()


async def test_forget_reaches_the_cached_dm_mood_and_keeps_a_shared_channels(engine, redis):
    clock = Clock(T0)
    cache = MoodCache(redis)
    service = MoodService(MODEL, CompanionStore(engine), clock, cache=cache)
    await service.on_message("channel:dm-a", "hi", user_id="alice", owner="alice")
    await service.on_message("channel:guild", "hi all", user_id="alice", owner=None)
    await service.on_message("channel:dm-b", "hi", user_id="bob", owner="bob")
    assert await redis.exists("mood:channel:dm-a", "mood:owner:alice") == 2
    await service.delete_user_data("alice")
    assert await redis.exists("mood:channel:dm-a", "mood:owner:alice") == 0
    assert await cache.get("channel:guild") is not None  # the channel's mood names nobody
    assert await cache.get("channel:dm-b") is not None
    assert (await service.current("channel:dm-a")).levels == MODEL.baseline(clock())


async def test_forget_while_redis_is_down_says_so_and_finishes_when_it_returns(engine, own_redis):
    server, url = own_redis
    clock = Clock(T0)
    client = create_redis(url)
    cache = MoodCache(client, probe_interval=0.05)
    service = MoodService(MODEL, CompanionStore(engine), clock, cache=cache)
    try:
        await service.on_message("channel:dm-a", "hi", user_id="alice", owner="alice")
        await service.flush()
        await server.stop()
        with pytest.raises(MoodCacheDown, match="as soon as Redis is back"):
            await service.delete_user_data("alice")
        assert await CompanionStore(engine).load("channel:dm-a") is None  # PostgreSQL: gone
        await server.start()
        await _until(lambda: cache.up)
        assert await client.exists("mood:channel:dm-a", "mood:owner:alice") == 0
        assert (await service.current("channel:dm-a")).levels == MODEL.baseline(clock())
    finally:
        await cache.close()
        await client.aclose()
