"""Companion state on real PostgreSQL: a restart keeps the mood, history for charts,
per-user deletion, and an outage costs persistence only."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from clara_core.companion.hormones import DOPAMINE, HORMONES, HormoneModel
from clara_core.pipeline.mood import MoodService
from storage.companion import CompanionStore, StoredMood
from storage.db import create_engine
from storage.models import CompanionHistory, CompanionState
from tests.support.clock import Clock

pytestmark = pytest.mark.storage

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
MODEL = HormoneModel("Europe/Berlin")


async def rows(engine, model) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


async def test_a_restart_keeps_the_mood(engine):
    clock = Clock(T0)
    before = MoodService(MODEL, CompanionStore(engine), clock)
    for text in ("Thank you Clara, that was amazing!", "you're the best!"):
        await before.on_message("channel:1", text, user_id="alice", owner=None)
        clock.advance(seconds=30)
    await before.on_reply("channel:1")
    clock.advance(minutes=20)
    expected = await before.current("channel:1")
    await before.flush()  # writes go to the database in the background
    assert expected.levels[DOPAMINE] > MODEL.baseline(clock())[DOPAMINE] + 0.05

    # A new process: nothing in memory, the same database and the same clock.
    after = MoodService(MODEL, CompanionStore(engine), clock)
    restored = await after.current("channel:1")
    assert all(
        math.isclose(a, b, abs_tol=1e-12)
        for a, b in zip(restored.levels, expected.levels, strict=True)
    )
    assert restored.last_clara_at == expected.last_clara_at
    # Another channel was never touched: at rest.
    assert (await after.current("channel:2")).levels == MODEL.baseline(clock())


async def test_every_change_leaves_a_history_row_for_the_chart(engine):
    store = CompanionStore(engine)
    clock = Clock(T0 - timedelta(hours=30))
    service = MoodService(MODEL, store, clock)
    for _ in range(3):  # one old change, outside the 24 h window
        await service.on_message("channel:1", "hello", user_id="alice", owner=None)
        clock.advance(minutes=60 * 10)
    await service.on_reply("channel:1")
    await service.on_message("channel:9", "hello", user_id="bob", owner=None)
    await service.flush()
    assert await rows(engine, CompanionHistory) == 5

    points = await store.history("channel:1", clock() - timedelta(hours=24))
    # The last change before the window (where the chart starts from), then the window's.
    assert [p.at for p in points] == [
        T0 - timedelta(hours=30),
        T0 - timedelta(hours=20),
        T0 - timedelta(hours=10),
        T0,
    ]
    assert set(points[0].levels) == set(HORMONES)


async def test_history_older_than_the_retention_goes_with_the_next_change(engine):
    store = CompanionStore(engine, keep_history=timedelta(hours=12))
    clock = Clock(T0)
    service = MoodService(MODEL, store, clock)
    for _ in range(4):  # at 0, 10, 20, 30 hours
        await service.on_message("channel:1", "hello", user_id="alice", owner=None)
        await service.on_message("channel:2", "hello", user_id="alice", owner=None)
        await service.flush()  # in order, as in production (chained writes)
        clock.advance(minutes=60 * 10)
    points = await store.history("channel:1", T0 - timedelta(days=30))
    # The change at 30 h keeps 20 h and 30 h; the earlier ones went.
    assert [p.at for p in points] == [T0 + timedelta(hours=20), T0 + timedelta(hours=30)]
    assert await rows(engine, CompanionHistory) == 4  # the same in channel 2


async def test_forget_deletes_the_users_dm_mood_and_history_but_not_a_shared_channel(engine):
    store = CompanionStore(engine)
    clock = Clock(T0)
    service = MoodService(MODEL, store, clock)
    await service.on_message("channel:dm-a", "hi", user_id="alice", owner="alice")
    await service.on_reply("channel:dm-a")
    await service.on_message("channel:guild", "hi all", user_id="alice", owner=None)
    await service.on_message("channel:guild", "hey", user_id="bob", owner=None)
    await service.on_reply("channel:guild")
    await service.on_message("channel:dm-b", "hi", user_id="bob", owner="bob")

    deleted = await service.delete_user_data("alice")
    assert deleted == 4  # two DM history rows + her guild message's row + the DM state
    assert await store.load("channel:dm-a") is None
    assert await store.load("channel:guild") is not None  # the channel's mood names nobody
    assert await store.load("channel:dm-b") is not None
    async with engine.connect() as conn:
        users = (await conn.execute(select(CompanionHistory.user_id))).scalars().all()
    assert "alice" not in users and users.count("bob") == 2
    # The in-memory copy is gone too: the DM starts again from rest.
    assert (await service.current("channel:dm-a")).levels == MODEL.baseline(clock())


async def test_a_database_outage_costs_persistence_only():
    # An engine pointed at a port nobody listens on: every call fails.
    dead = create_engine("postgresql://clara:x@127.0.0.1:9/clara", pool_size=1)
    try:
        clock = Clock(T0)
        service = MoodService(MODEL, CompanionStore(dead), clock)
        calm = await service.current("channel:1")
        state = await service.on_message("channel:1", "shut up, useless", user_id="a", owner=None)
        assert state.levels != calm.levels  # the mood still moves, in memory
        clock.advance(minutes=1)
        assert (await service.current("channel:1")).levels != calm.levels
        await service.flush()  # the failed writes were only logged
    finally:
        await dead.dispose()


async def test_store_round_trips_and_upserts(engine):
    store = CompanionStore(engine)
    levels = dict.fromkeys(HORMONES, 0.5)
    await store.save("channel:1", StoredMood(levels, T0), cause="message", user_id="a")
    await store.save(
        "channel:1",
        StoredMood({**levels, "cortisol": 0.9}, T0 + timedelta(minutes=1), T0, None, None),
        cause="message",
        user_id="a",
    )
    got = await store.load("channel:1")
    assert got is not None and got.levels["cortisol"] == 0.9 and got.last_user_at == T0
    assert await rows(engine, CompanionState) == 1
    assert await rows(engine, CompanionHistory) == 2


async def test_forget_everything_clears_the_mood_and_survives_a_failing_store(engine):
    """/clara forget's path: the mood service is one of the further stores, and one
    store that fails is reported without stopping the others."""
    from clara_core.privacy import forget_everything

    class Broken:
        async def delete_user_data(self, user_id: str) -> int:
            raise OSError("disk gone")

    store = CompanionStore(engine)
    service = MoodService(MODEL, store, Clock(T0))
    await service.on_message("dm:42", "thank you so much!", user_id="alice", owner="alice")
    await service.on_message("channel:1", "hi all", user_id="bob", owner=None)
    await service.flush()
    assert await rows(engine, CompanionState) == 2

    report = await forget_everything(
        "alice",
        memory=None,
        engine=None,
        files=None,
        others={"Sandbox workspace": Broken(), "Mood of your DMs": service},
    )
    assert report.others["Mood of your DMs"] >= 2  # the DM's state and its history rows
    assert report.failed == ["Sandbox workspace"] and not report.complete
    assert await rows(engine, CompanionState) == 1  # bob's shared channel stays
    # Nothing of alice's DM is written back from memory by the next change elsewhere.
    await service.on_message("channel:1", "still here", user_id="bob", owner=None)
    await service.flush()
    async with engine.connect() as conn:
        scopes = set((await conn.execute(select(CompanionState.scope))).scalars())
    assert scopes == {"channel:1"}
