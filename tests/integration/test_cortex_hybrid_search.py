"""The ranked search's legs in one statement (issue 14, get_context p95): on real
PostgreSQL, WarmStore.hybrid_search returns exactly what the three per-leg
methods return, and a search takes one pooled connection, not one per leg."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from sqlalchemy import event

from clara_core.cortex.retrieval import RetrievalConfig
from clara_core.cortex.types import MemoryType
from clara_core.cortex.warm import WarmStore
from tests.integration.test_cortex_retrieval import _manager, _near, _random, _store

pytestmark = pytest.mark.storage

WINDOW = (datetime(2025, 5, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC))


async def _seed(redis, engine, tmp_path) -> tuple[list[float], list[str]]:
    mm = _manager(redis, engine, tmp_path, RetrievalConfig(), "seed")
    await mm.initialize(watch=False)
    rng = random.Random(21)
    query = _random(rng)
    things = ("lamp", "rug", "kettle", "chair", "bike", "tent")
    rows = [
        (
            f"Bought a {things[i % 6]} at the Ljubljana market, trip {i}",
            _near(query, rng, 0.05 * (1 + i % 7)),
            datetime(2025, 1 + i % 12, 1 + i % 27, tzinfo=UTC),
        )
        for i in range(80)
    ]
    rows += [("That's awesome!", _near(query, rng, 0.01), datetime(2025, 5, 3, tzinfo=UTC))]
    ids = await _store(mm, "hy", rows)
    await mm.close()
    return query, ids


def _ids(memories) -> list[str]:
    return [m.id for m in memories]


@pytest.mark.parametrize("limit", [5, 45, 60])  # 60: a deeper HNSW walk (ef_search 120)
async def test_hybrid_search_returns_each_legs_own_ranking(redis, engine, tmp_path, limit):
    query, _ = await _seed(redis, engine, tmp_path)
    warm = WarmStore(engine)
    text = "Which lamp did I buy at the market in Ljubljana?"
    vec, lex, dated = await warm.hybrid_search(
        "hy", query, text, limit=limit, lexical=True, window=WINDOW
    )
    assert _ids(vec) == _ids(await warm.search("hy", query, limit=limit))
    assert [m.similarity for m in vec] == [
        m.similarity for m in await warm.search("hy", query, limit=limit)
    ]
    assert _ids(lex) == _ids(await warm.lexical_search("hy", text, limit=limit))
    window = await warm.search_window("hy", query, since=WINDOW[0], before=WINDOW[1], limit=limit)
    assert _ids(dated) == _ids(window) and dated
    assert all(WINDOW[0] <= m.created_at < WINDOW[1] for m in dated)
    assert lex and all(m.similarity is None for m in lex)


async def test_hybrid_search_without_optional_legs_and_with_filters(redis, engine, tmp_path):
    query, _ = await _seed(redis, engine, tmp_path)
    warm = WarmStore(engine)
    vec, lex, dated = await warm.hybrid_search("hy", query, "lamp", limit=10, lexical=False)
    assert (len(vec), lex, dated) == (10, [], [])
    # A filter no memory passes: every leg empty (the exact fallback included).
    types = [MemoryType.IDENTITY]
    assert await warm.hybrid_search("hy", query, "lamp", limit=10, memory_types=types) == (
        [],
        [],
        [],
    )
    # Another user's memories never answer.
    assert await warm.hybrid_search("nobody", query, "lamp", limit=10, window=WINDOW) == (
        [],
        [],
        [],
    )


async def test_a_ranked_search_takes_one_connection(redis, engine, tmp_path):
    """Three concurrent per-leg queries took three pooled connections (each with its
    pre-ping, BEGIN and ROLLBACK round trips); the single statement takes one."""
    query, ids = await _seed(redis, engine, tmp_path)
    mm = _manager(redis, engine, tmp_path, RetrievalConfig(), "one")
    await mm.initialize(watch=False)
    question = "What lamp did I buy in Ljubljana in May 2025?"
    # The first search also reads the common-words list (cached for 10 minutes).
    await mm.search("hy", question, limit=10, query_embedding=query)
    checkouts: list[object] = []

    def count(*_: object) -> None:
        checkouts.append(_)

    event.listen(engine.sync_engine.pool, "checkout", count)
    try:
        # A dated question with names: vector, lexical and time legs all run.
        found = await mm.search("hy", question, limit=10, query_embedding=query)
    finally:
        event.remove(engine.sync_engine.pool, "checkout", count)
        await mm.close()
    assert len(found.memories) == 10 and set(_ids(found.memories)) <= set(ids)
    assert len(checkouts) == 1
