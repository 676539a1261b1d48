"""Cortex hot tier on real Redis with a controllable clock."""

from __future__ import annotations

import pytest

from clara_core.cortex.hot import HotStore
from clara_core.cortex.scoring import working_ttl
from clara_core.cortex.types import CortexError, Memory, MemoryType
from tests.support.clock import Clock

pytestmark = pytest.mark.storage


@pytest.mark.parametrize(
    ("emotion", "ttl"), [(0.0, 1800), (0.5, 11700), (1.0, 21600), (1.7, 21600), (-1, 1800)]
)
def test_working_ttl_follows_emotion_and_is_clamped(emotion, ttl):
    assert working_ttl(emotion) == ttl


async def test_identity_fields_are_json_and_mergeable(redis):
    hot = HotStore(redis, clock=Clock())
    await hot.update_identity(
        "u1", {"name": "Ana", "family": {"sister": "Rita"}, "key_facts": ["night shifts"]}
    )
    await hot.update_identity(
        "u1", {"city": "Porto", "key_facts": ["night shifts", "allergic to peanuts"]}
    )
    await hot.update_identity("u1", {"city": None})
    identity = await hot.get_identity("u1")
    assert identity["name"] == "Ana" and identity["family"] == {"sister": "Rita"}
    assert identity["key_facts"] == ["night shifts", "allergic to peanuts"]
    assert "city" not in identity and identity["updated_at"].startswith("2026-11-22T12:00")


async def test_session_lives_24h_and_each_update_refreshes_it(redis):
    clock = Clock()
    hot = HotStore(redis, clock=clock)
    await hot.update_session(
        "u1", {"current_topic": "memory design", "active_goals": ["write TDD"]}
    )
    key = "cortex:u1:session"
    assert 86_390 <= await redis.ttl(key) <= 86_400
    await redis.expire(key, 100)  # most of the day has passed
    clock.advance(30)
    await hot.update_session("u1", {"emotional_state": "focused"})
    assert await redis.ttl(key) > 86_000
    session = await hot.get_session("u1")
    assert session["active_goals"] == ["write TDD"] and session["last_active"].startswith(
        "2026-11-22T12:30"
    )
    ended = await hot.end_session("u1")
    assert ended["current_topic"] == "memory design" and await hot.get_session("u1") == {}


async def test_working_memory_expires_without_a_read_and_is_pruned(redis):
    clock = Clock()
    hot = HotStore(redis, clock=clock)
    calm = Memory("user mentioned a meeting tomorrow", "u1", emotional_score=0.0)
    big = Memory("user's dog died today", "u1", MemoryType.EPISODIC, emotional_score=1.0)
    await hot.add_working(calm)
    expires = await hot.add_working(big)
    assert expires == clock().timestamp() + 21_600
    # the keys themselves expire with their longest-lived member
    assert 21_590 <= await redis.ttl("cortex:u1:working") <= 21_601

    clock.advance(31)  # the calm memory's 30 minutes are over
    assert [m.content for m in await hot.get_working("u1")] == ["user's dog died today"]
    assert (
        await redis.zcard("cortex:u1:working") == 2
    )  # filtered by score, not by a read-time delete
    assert await hot.cleanup("u1") == 1
    assert (
        await redis.zcard("cortex:u1:working") == 1
        and await redis.hlen("cortex:u1:working:data") == 1
    )

    clock.advance(6 * 60)
    assert await hot.get_working("u1") == []
    restored = Memory.from_json_dict(big.to_json_dict())
    assert restored == big


async def test_recent_buffer_is_capped_newest_first(redis):
    hot = HotStore(redis, clock=Clock())
    for i in range(60):
        await hot.push_recent("u1", f"m{i}")
    assert await hot.get_recent("u1", limit=3) == ["m59", "m58", "m57"]
    assert await redis.llen("cortex:u1:recent") == 50


@pytest.mark.parametrize("bad", ["a:b", "*", "u1:*", "", "x" * 65, "a b"])
async def test_user_ids_cannot_reach_other_keys(redis, bad):
    hot = HotStore(redis, clock=Clock())
    with pytest.raises(CortexError):
        await hot.get_identity(bad)


async def test_delete_user_data_removes_only_that_user(redis):
    hot = HotStore(redis, clock=Clock())
    for user in ("alice", "bob"):
        await hot.update_identity(user, {"name": user})
        await hot.update_session(user, {"topic": "x"})
        await hot.add_working(Memory("note", user))
        await hot.push_recent(user, "m1")
        await hot.update_meta(user, {"messages": 3})
    assert await hot.delete_user_data("alice") == 6
    assert await redis.keys("cortex:alice:*") == []
    assert len(await redis.keys("cortex:bob:*")) == 6
