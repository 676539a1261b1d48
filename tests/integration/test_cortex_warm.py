"""Cortex warm tier: filtered vector search returns full result sets, per user only."""

from __future__ import annotations

import math
import random

import pytest
from sqlalchemy import text

from clara_core.cortex.types import Memory, MemoryType
from clara_core.cortex.warm import WarmStore
from storage.models import EMBEDDING_DIMS

pytestmark = pytest.mark.storage


def _vec(rng: random.Random) -> list[float]:
    v = [rng.gauss(0, 1) for _ in range(EMBEDDING_DIMS)]
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


async def _populate(engine, rng: random.Random) -> WarmStore:
    store = WarmStore(engine)
    async with engine.begin() as conn:  # bulk insert: 1,900 others, 100 for alice
        rows = []
        for i in range(2000):
            user = "alice" if i % 20 == 0 else f"user{i % 97}"
            kind = "semantic" if i % 3 else "episodic"
            rows.append({"u": user, "t": kind, "c": f"memory {i} of {user}", "e": str(_vec(rng))})
        await conn.execute(
            text(
                "INSERT INTO memories (id, user_id, memory_type, content, embedding) "
                "VALUES (gen_random_uuid(), :u, :t, :c, CAST(:e AS vector))"
            ),
            rows,
        )
    return store


async def _force_index(engine) -> None:
    """At 2,000 rows the planner prefers an exact scan; production tables are far
    larger and use the HNSW index, which is the path these tests are about."""
    async with engine.begin() as conn:
        name = (await conn.execute(text("SELECT current_database()"))).scalar_one()
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            await conn.execute(text(f'ALTER DATABASE "{name}" SET {setting} = off'))
    await engine.dispose()  # new connections pick the setting up


async def test_filtered_search_returns_limit_rows_of_that_user_only(engine):
    rng = random.Random(42)
    store = await _populate(engine, rng)
    await _force_index(engine)
    async with engine.connect() as conn:
        plan = "\n".join(
            (
                await conn.execute(
                    text(
                        "EXPLAIN SELECT id FROM memories WHERE user_id = 'alice' "
                        "ORDER BY embedding <=> CAST(:q AS vector) LIMIT 10"
                    ),
                    {"q": str(_vec(rng))},
                )
            ).scalars()
        )
    assert "ix_memories_embedding_hnsw" in plan
    async with engine.connect() as conn:  # every connection starts with these
        assert (await conn.execute(text("SHOW hnsw.iterative_scan"))).scalar() == "relaxed_order"
        assert (await conn.execute(text("SHOW plan_cache_mode"))).scalar() == "force_custom_plan"
    for _ in range(5):
        query = _vec(rng)
        found = await store.search("alice", query, limit=10)
        assert len(found) == 10  # a 5% filter still fills the result set ...
        assert store.exact_fallbacks == 0  # ... from the HNSW index itself
        assert all("of alice" in f.content for f in found)
        sims = [f.similarity for f in found]
        assert sims == sorted(sims, reverse=True)
        # approximate search agrees with an exact scan on (almost) all of the top 10
        async with engine.begin() as conn:
            for setting, value in (
                ("enable_indexscan", "off"),
                ("enable_seqscan", "on"),
                ("enable_sort", "on"),
            ):  # the reference: an exact scan
                await conn.execute(text(f"SET LOCAL {setting} = {value}"))
            exact = (
                (
                    await conn.execute(
                        text(
                            "SELECT content FROM memories WHERE user_id = 'alice' "
                            "ORDER BY embedding <=> CAST(:q AS vector) LIMIT 10"
                        ),
                        {"q": str(query)},
                    )
                )
                .scalars()
                .all()
            )
        assert len(set(exact) & {f.content for f in found}) >= 8


async def test_type_filter_add_and_delete(engine):
    rng = random.Random(7)
    store = await _populate(engine, rng)
    episodic = await store.search("alice", _vec(rng), limit=50, memory_types=[MemoryType.EPISODIC])
    assert len(episodic) == 34 and all(f.memory_type is MemoryType.EPISODIC for f in episodic)

    target = _vec(rng)
    memory = Memory(
        "My sister is called Ana",
        "alice",
        MemoryType.SEMANTIC,
        emotional_score=1.4,
        importance=0.9,
        tags=["family"],
    )
    assert await store.add(memory, target, model="test-model")
    assert not await store.add(memory, target, model="test-model")  # replay: no duplicate
    best = (await store.search("alice", target, limit=1))[0]
    assert best.content == "My sister is called Ana" and best.similarity > 0.999
    assert best.emotional_score == 1.0  # clamped
    assert best.tags == ["family"] and best.importance == 0.9
    assert await store.get("bob", memory.id) is None  # an id alone never crosses users
    assert (await store.get("alice", memory.id)).content == memory.content
    assert (await store.search("bob", target, limit=5)) == []

    assert await store.delete_user_data("alice") == 101
    assert await store.search("alice", target, limit=5) == []
    assert len(await store.search("user5", target, limit=5)) == 5
