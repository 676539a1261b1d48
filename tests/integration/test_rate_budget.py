"""The shared Discord budget's Lua scripts on a real Redis: grant, hold until a
window after the response, lease expiry of a crashed holder, the process count.

Times are passed explicitly (``now_ms``) so the semantics are checked exactly;
in production the scripts read Redis's own clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clara_core.discord_adapter.pacing import GlobalBudget, Priority
from storage.embedded import EmbeddedRedis
from storage.rate_budget import RedisRateBudget, budget_key
from storage.redis import create_redis

KEY = budget_key("Bot-token-for-tests")
LIMIT, WINDOW, LEASE = 3, 1000, 15000


@pytest.fixture
async def port(redis_url: str):
    client = create_redis(redis_url)
    await client.flushdb()
    budget = RedisRateBudget(client, timeout=2.0)
    yield budget
    await client.flushdb()
    await budget.aclose()


async def acquire(port: RedisRateBudget, token: str, now: int) -> tuple[bool, int]:
    return await port.try_acquire(
        KEY, token, limit=LIMIT, window_ms=WINDOW, lease_ms=LEASE, now_ms=now
    )


def test_the_key_is_a_hash_never_the_token():
    key = budget_key("MTIz.secret-token")
    assert "secret" not in key and "MTIz" not in key
    assert key == budget_key("MTIz.secret-token") != budget_key("another-token")


async def test_grants_up_to_the_limit_then_holds_until_a_window_after_release(port):
    assert [await acquire(port, t, 0) for t in "abc"] == [(True, 0)] * 3
    # All three in flight: refused, and asked to retry soon (a release may come).
    granted, retry = await acquire(port, "d", 10)
    assert not granted and 1 <= retry <= 20
    await port.release(KEY, "a", window_ms=WINDOW, now_ms=100)
    # Released at 100: its place counts until 1100, not from the grant at 0.
    assert (await acquire(port, "d", 600))[0] is False
    await port.release(KEY, "b", window_ms=WINDOW, now_ms=600)
    await port.release(KEY, "c", window_ms=WINDOW, now_ms=600)
    granted, retry = await acquire(port, "d", 1099)
    assert not granted and retry == 1  # 'a' leaves the window at 1100
    assert await acquire(port, "d", 1100) == (True, 0)
    # 'b' and 'c' still count (answered at 600) with 'd' in flight.
    assert (await acquire(port, "e", 1200))[0] is False
    assert await acquire(port, "e", 1600) == (True, 0)


async def test_a_crashed_holders_places_expire_with_their_lease(port):
    for t in "abc":
        assert (await acquire(port, t, 0))[0]
    # The holder dies: no release ever comes.  The places stay taken until the lease...
    assert (await acquire(port, "x", LEASE - 1))[0] is False
    # ...and are free once it ran out.
    assert await acquire(port, "x", LEASE) == (True, 0)


async def test_an_unused_place_given_back_with_a_full_window_counts_no_longer(port):
    for t in "abc":
        await acquire(port, t, 0)
    await port.release(KEY, "a", window_ms=WINDOW, age_ms=WINDOW, now_ms=50)
    assert await acquire(port, "d", 50) == (True, 0)


async def test_places_handed_over_with_their_age_count_for_the_rest_of_their_window(port):
    # A process answered three requests 400 ms ago while Redis was away.
    for t in "abc":
        await port.release(KEY, t, window_ms=WINDOW, age_ms=400, now_ms=5000)
    assert (await acquire(port, "d", 5000))[0] is False
    granted, retry = await acquire(port, "d", 5599)
    assert not granted and retry == 1
    assert (await acquire(port, "d", 5600))[0] is True


async def test_two_clients_share_one_budget(port, redis_url):
    other_client = create_redis(redis_url)
    other = RedisRateBudget(other_client, timeout=2.0)
    try:
        assert (await acquire(port, "a", 0))[0]
        assert (await acquire(other, "b", 0))[0]
        assert (await acquire(port, "c", 0))[0]
        assert (await acquire(other, "d", 0))[0] is False
        # Another token's budget is another key.
        assert (
            await other.try_acquire(
                budget_key("other"), "d", limit=LIMIT, window_ms=WINDOW, lease_ms=LEASE, now_ms=0
            )
        )[0]
    finally:
        await other.aclose()


async def test_heartbeats_count_the_processes_seen_recently(port):
    assert await port.heartbeat(KEY, "p1", ttl_ms=5000, now_ms=0) == 1
    assert await port.heartbeat(KEY, "p2", ttl_ms=5000, now_ms=1000) == 2
    assert await port.heartbeat(KEY, "p1", ttl_ms=5000, now_ms=2000) == 2
    # p2 stopped beating: gone after the ttl.
    assert await port.heartbeat(KEY, "p1", ttl_ms=5000, now_ms=6001) == 1


async def test_redis_s_own_clock_is_used_when_no_time_is_given(port):
    for t in "abc":
        assert (await port.try_acquire(KEY, t, limit=LIMIT, window_ms=WINDOW, lease_ms=LEASE))[0]
    granted, _ = await port.try_acquire(KEY, "d", limit=LIMIT, window_ms=WINDOW, lease_ms=LEASE)
    assert not granted
    await port.release(KEY, "a", window_ms=WINDOW, age_ms=WINDOW)
    assert (await port.try_acquire(KEY, "d", limit=LIMIT, window_ms=WINDOW, lease_ms=LEASE))[0]


# -- GlobalBudget on the shared budget: the hand-overs when Redis leaves and comes back


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedRedis, str]]:
    server = EmbeddedRedis(tmp_path / "redisdata")
    url = await server.start()
    try:
        yield server, url
    finally:
        await server.stop()


async def grant_times(budget: GlobalBudget, n: int) -> list[float]:
    """Ask for ``n`` places at once, answering each at once; when each was granted."""
    t0 = time.monotonic()

    async def one() -> float:
        grant = await budget.acquire(Priority.FIRST_MESSAGE)
        at = time.monotonic() - t0
        grant.release()
        return at

    return sorted(await asyncio.gather(*(one() for _ in range(n))))


async def test_a_process_losing_redis_takes_the_window_as_full_then_uses_its_share(own_redis):
    server, url = own_redis
    window = 0.5
    others = RedisRateBudget.from_url(url, timeout=2.0)
    key = budget_key("token")
    for member in ("p2", "p3"):  # two more processes on the token
        await others.heartbeat(key, member, ttl_ms=60_000)
    budget = GlobalBudget(12, window=window, shared=RedisRateBudget.from_url(url), key=key)
    try:
        assert await grant_times(budget, 1) and budget.shared
        assert budget.processes == 3
        await others.aclose()
        await server.stop()
        # The others may have spent the whole window just before Redis went:
        # nothing for a window, then this process's share (6 // 3) per window
        # (12 requests per second: 6 per half-second window).
        times = await grant_times(budget, 4)
        assert budget.fallback and budget.local_limit == 2
        assert times[0] >= window * 0.9
        assert times[2] - times[0] >= window * 0.9
    finally:
        await budget.aclose()


async def test_back_on_redis_a_process_leaves_the_others_their_shares_for_a_while(own_redis):
    server, url = own_redis
    key = budget_key("token")
    others = RedisRateBudget.from_url(url, timeout=2.0)
    for member in ("p2", "p3"):
        await others.heartbeat(key, member, ttl_ms=60_000)
    await others.aclose()
    budget = GlobalBudget(12, window=0.5, shared=RedisRateBudget.from_url(url), key=key)
    try:
        await grant_times(budget, 1)
        await server.stop()
        await grant_times(budget, 1)
        assert budget.fallback
        await server.start()
        deadline = time.monotonic() + 10
        while not budget.shared:
            assert time.monotonic() < deadline, "never back on the shared budget"
            await asyncio.sleep(0.05)
        # The others may still grant their share on their own until their next
        # heartbeat: 6 - 2 * (6 // 3) places at first, not the whole budget.
        times = await grant_times(budget, 4)
        assert sum(t < 0.3 for t in times) == 2
    finally:
        await budget.aclose()


async def test_places_taken_while_redis_was_away_are_handed_over_when_it_answers(own_redis):
    server, url = own_redis
    key = budget_key("token")
    window = 2.0
    budget = GlobalBudget(3, window=window, shared=RedisRateBudget.from_url(url), key=key)
    others = RedisRateBudget.from_url(url, timeout=2.0)
    try:
        await grant_times(budget, 1)
        await server.stop()
        await grant_times(budget, 2)  # on its own, a window after Redis went
        assert budget.fallback
        await server.start()
        deadline = time.monotonic() + 10
        while not budget.shared:
            assert time.monotonic() < deadline, "never back on the shared budget"
            await asyncio.sleep(0.05)
        # The two answered on its own still count for the other processes.
        granted, retry_ms = await others.try_acquire(
            key, "x", limit=2, window_ms=int(window * 1000), lease_ms=15_000
        )
        assert not granted and 0 < retry_ms <= window * 1000
        assert (
            await others.try_acquire(
                key, "x", limit=3, window_ms=int(window * 1000), lease_ms=15_000
            )
        )[0]
    finally:
        await others.aclose()
        await budget.aclose()


async def test_closing_lets_the_last_releases_reach_redis(redis_url, redis):
    key = budget_key("token")
    budget = GlobalBudget(5, shared=RedisRateBudget.from_url(redis_url), key=key)
    grants = [await budget.acquire() for _ in range(3)]
    for grant in grants:
        grant.release()
    await budget.aclose()  # right after the responses: their releases still go out
    assert await redis.zcard(f"{key}:inflight") == 0
    assert await redis.zcard(f"{key}:finished") == 3


# -- per-route buckets ----------------------------------------------------------------

ROUTE = "POST channels/{major}/messages"
EDIT = "PATCH channels/{major}/messages/{id}"


async def test_a_route_bucket_is_found_out_once_then_shared(port):
    # Unknown: one request (any process) goes to find the bucket out, the rest wait.
    assert await port.route_take(KEY, ROUTE, "1", now_ms=0) == 0
    assert await port.route_take(KEY, ROUTE, "1", now_ms=5) > 0
    # Its answer: 5 per 2 s, 4 left, resetting in 2 s.
    await port.route_seen(
        KEY, ROUTE, "1", bucket="h", limit=5, remaining=4, reset_after_ms=2000, now_ms=10
    )
    # Edits share the bucket once one of their answers named it.
    assert await port.route_take(KEY, EDIT, "1", now_ms=11) == 0  # finds it out
    await port.route_seen(
        KEY, EDIT, "1", bucket="h", limit=5, remaining=3, reset_after_ms=1990, now_ms=20
    )
    taken = [await port.route_take(KEY, r, "1", now_ms=30) for r in (ROUTE, EDIT, ROUTE, EDIT)]
    assert taken[:3] == [0, 0, 0] and taken[3] == 2010 - 30  # wait for the reset
    # A late header with more left than we counted does not give places back.
    await port.route_seen(
        KEY, ROUTE, "1", bucket="h", limit=5, remaining=2, reset_after_ms=1970, now_ms=40
    )
    assert await port.route_take(KEY, ROUTE, "1", now_ms=50) > 0
    # Another channel is another bucket; after the reset a new window opens.
    assert await port.route_take(KEY, ROUTE, "2", now_ms=60) == 0
    assert await port.route_take(KEY, ROUTE, "1", now_ms=2011) == 0
    assert [await port.route_take(KEY, ROUTE, "1", now_ms=2012) for _ in range(5)] == [
        0,
        0,
        0,
        0,
        2011 + 2000 - 2012,
    ]


async def test_a_route_without_a_bucket_is_never_held_back(port):
    route = "GET users/@me"
    assert await port.route_take(KEY, route, "", now_ms=0) == 0
    # An error page without headers says nothing: the next request finds out again.
    await port.route_seen(KEY, route, "", bucket=None, now_ms=5)
    assert await port.route_take(KEY, route, "", now_ms=6) == 0
    await port.route_seen(KEY, route, "", bucket=None, unlimited=True, now_ms=7)
    assert [await port.route_take(KEY, route, "", now_ms=8) for _ in range(3)] == [0, 0, 0]
