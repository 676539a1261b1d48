"""The Redis client against a real server: types, TTLs, isolation per test."""

from __future__ import annotations

import asyncio
import warnings

import pytest

pytestmark = pytest.mark.storage


async def test_hash_list_zset_and_ttl(redis):
    await redis.hset("cortex:u1:identity", mapping={"name": '"Ana"', "city": '"Lisbon"'})
    assert await redis.hgetall("cortex:u1:identity") == {"name": '"Ana"', "city": '"Lisbon"'}
    await redis.rpush("cortex:u1:recent", *[str(i) for i in range(60)])
    await redis.ltrim("cortex:u1:recent", -50, -1)
    assert await redis.llen("cortex:u1:recent") == 50
    await redis.zadd("cortex:u1:working", {"m1": 100.0, "m2": 200.0})
    assert await redis.zrangebyscore("cortex:u1:working", 150, "+inf") == ["m2"]
    await redis.set("short", "lived", px=150)
    assert await redis.get("short") == "lived"
    await asyncio.sleep(0.3)
    assert await redis.get("short") is None


async def test_each_test_gets_an_empty_database(redis):
    assert await redis.dbsize() == 0
    await redis.set("leftover", "1")


async def test_and_this_one_too(redis):
    assert await redis.get("leftover") is None


async def test_creating_the_client_emits_no_warning(redis_url):
    # redis-py warns (UserWarning) when the asyncio client is given the synchronous Retry.
    from storage.redis import create_redis

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        client = create_redis(redis_url)
        try:
            assert await client.ping()
        finally:
            await client.aclose()
