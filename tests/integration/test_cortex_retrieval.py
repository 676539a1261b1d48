"""Hybrid retrieval on real PostgreSQL (issue 14): the lexical leg, the time window,
the generic-turn penalty, diversity and contextual embeddings, each shown to change
the ranking against the same call with that leg off."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from clara_core.cortex.emotion import HeuristicEmotionScorer
from clara_core.cortex.manager import MemoryManager, NewMemory
from clara_core.cortex.retrieval import RetrievalConfig, blend, embedding_text
from clara_core.cortex.scoring import RetrievalWeights
from clara_core.cortex.types import AccessDenied, Memory
from clara_core.cortex.warm import WarmStore
from storage.models import EMBEDDING_DIMS
from tests.support.clock import Clock
from tests.support.cortex import local_embedder

pytestmark = pytest.mark.storage

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SIMILARITY_ONLY = RetrievalWeights(1.0, 0.0, 0.0, 0.0)


def _unit(v: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def _random(rng: random.Random) -> list[float]:
    return _unit([rng.gauss(0, 1) for _ in range(EMBEDDING_DIMS)])


def _near(base: list[float], rng: random.Random, noise: float) -> list[float]:
    return _unit([x + rng.gauss(0, noise) for x in base])


def _manager(redis, engine, tmp_path, config: RetrievalConfig, name: str) -> MemoryManager:
    return MemoryManager(
        redis=redis,
        engine=engine,
        embedder=local_embedder(),
        scorer=HeuristicEmotionScorer(),
        outbox_dir=tmp_path / name,
        clock=Clock(NOW),
        weights=SIMILARITY_ONLY,
        retrieval=config,
    )


#: Every leg on: the shipped defaults plus the two that are opt-in (diversity,
#: contextual embedding; docs/benchmarks.md says why they are off by default).
ALL_ON = replace(RetrievalConfig(), mmr_lambda=0.2, contextual_embedding=True)


@pytest.fixture
async def managers(redis, engine, tmp_path):
    """Every leg on and the vector-only configuration, on the same database."""
    on = _manager(redis, engine, tmp_path, ALL_ON, "on")
    off = _manager(redis, engine, tmp_path, RetrievalConfig().off(), "off")
    for m in (on, off):
        await m.initialize(watch=False)
    yield on, off
    for m in (on, off):
        await m.close()


@pytest.fixture
async def shipped(redis, engine, tmp_path):
    mm = _manager(redis, engine, tmp_path, RetrievalConfig(), "shipped")
    await mm.initialize(watch=False)
    yield mm
    await mm.close()


async def _store(mm: MemoryManager, user: str, rows: list[tuple[str, list[float], datetime]]):
    items = [NewMemory(content=c, created_at=at, emotional_score=0.3) for c, _, at in rows]
    results = await mm.store_many(user, items, embeddings=[v for _, v, _ in rows], to_hot=False)
    return [r.memory_id for r in results]


async def test_lexical_leg_finds_a_name_the_vector_leg_misses(managers):
    on, off = managers
    rng = random.Random(1)
    query = _random(rng)
    at = datetime(2025, 6, 1, tzinfo=UTC)
    # 30 memories near the query vector, none naming the place; the one that does
    # has a vector pointing elsewhere (the embedder did not "get" the name).
    rows = [(f"Cooked dinner and watched a film, evening {i}", _near(query, rng, 0.02), at)
            for i in range(30)]  # fmt: skip
    rows.append(("Spent a long weekend in Ljubljana with Tomas", _random(rng), at))
    ids = await _store(on, "alice", rows)
    target = ids[-1]

    question = "What did I do in Ljubljana?"
    found = await on.search("alice", question, limit=10, query_embedding=query)
    missed = await off.search("alice", question, limit=10, query_embedding=query)
    assert target in [m.id for m in found.memories]
    assert target not in [m.id for m in missed.memories]
    # Found by words alone, so no cosine is claimed for it.
    assert next(m for m in found.memories if m.id == target).similarity is None
    # get_context ranks with the same legs.
    ctx = await on.get_context(
        "alice", question, include_working=False, max_retrieved=10, query_embedding=query
    )
    assert target in [m.id for m in ctx.retrieved]


async def test_lexical_leg_weighs_rare_words_over_common_ones(engine):
    rng = random.Random(2)
    warm = WarmStore(engine)
    texts = [f"Cooked pasta at home tonight, batch {i}" for i in range(20)]
    texts.append("Had lunch with Zoe by the harbour")
    memories = [Memory(content=c, user_id="bob", created_at=NOW) for c in texts]
    await warm.add_many([(m, _random(rng)) for m in memories], model="t")
    other = Memory(content="Cooked pasta with Zoe", user_id="eve", created_at=NOW)
    await warm.add_many([(other, None)], model="t")
    hits = await warm.lexical_search("bob", "Did I cook pasta with Zoe?", limit=5)
    # "cook" and "pasta" are in 20 memories, "Zoe" in one: counted by rarity, the one
    # rare word outweighs two common ones (a plain match count would rank it last).
    assert hits[0].content == "Had lunch with Zoe by the harbour"
    assert all(h.user_id == "bob" for h in hits)
    assert await warm.lexical_search("bob", "the and of", limit=5) == []  # stop words only


async def test_lexical_coverage_drops_matches_on_a_minor_word_only(engine):
    """CORTEX_LEXICAL_MIN_COVERAGE (opt-in): a memory sharing only "work" with "which
    hospital do I work at?" covers little of the question's IDF weight ("hospital",
    matched nowhere, weighs most) and is left out; a fuller match stays.  Lexical
    scores come back on ``score``, equal for equal matches (the fusion ties them)."""
    rng = random.Random(4)
    warm = WarmStore(engine)
    texts = [f"Painted the fence, coat number {i}" for i in range(20)]
    texts += ["Migraine from the monitors at work", "The dog chewed my work boots"]
    texts.append("The hospital put me on nights at work again")
    memories = [Memory(content=c, user_id="gwen", created_at=NOW) for c in texts]
    await warm.add_many([(m, _random(rng)) for m in memories], model="t")
    question = "which hospital do I work at?"
    every = await warm.lexical_search("gwen", question, limit=5)
    assert every[0].content == texts[-1] and len(every) == 3
    assert every[1].score == every[2].score  # "work" alone: one score for both
    covered = await warm.lexical_search("gwen", question, limit=5, min_coverage=0.5)
    assert [h.content for h in covered] == [texts[-1]]


async def test_time_window_in_the_question_prefers_that_month(managers):
    on, off = managers
    rng = random.Random(3)
    query = _random(rng)
    months = [datetime(2025, m, 10, tzinfo=UTC) for m in (1, 5, 9, 11)]
    # The same purchase told four times a year apart, equally similar to the query.
    rows = [(f"Bought a new {thing} at the market", _near(query, rng, 0.01), at)
            for thing, at in zip(("lamp", "rug", "kettle", "chair"), months, strict=True)]  # fmt: skip
    ids = await _store(on, "carol", rows)
    may = ids[1]
    question = "What did I buy in May 2025?"
    found = await on.search("carol", question, limit=4, query_embedding=query)
    plain = await off.search("carol", question, limit=4, query_embedding=query)
    assert found.memories[0].id == may
    assert plain.memories[0].id != may
    relative = await on.search("carol", "what did I buy last May?", limit=4, query_embedding=query)
    assert relative.memories[0].id == may


async def test_time_leg_reaches_a_dated_memory_beyond_the_candidates(managers):
    on, _ = managers
    rng = random.Random(4)
    query = _random(rng)
    recent = datetime(2026, 2, 1, tzinfo=UTC)
    rows = [(f"Another day at the office, meeting {i}", _near(query, rng, 0.02), recent)
            for i in range(60)]  # fmt: skip
    rows.append(
        (
            "Office party with the whole team",
            _near(query, rng, 0.3),
            datetime(2025, 7, 3, tzinfo=UTC),
        )
    )
    ids = await _store(on, "dave", rows)
    found = await on.search("dave", "What happened in July 2025?", limit=5, query_embedding=query)
    assert ids[-1] in [m.id for m in found.memories]


async def test_generic_turns_are_ranked_below_turns_with_content(managers):
    on, off = managers
    rng = random.Random(5)
    query = _random(rng)
    at = datetime(2025, 6, 1, tzinfo=UTC)
    rows = [
        ("That's awesome!", _near(query, rng, 0.001), at),
        ("What was it like?", _near(query, rng, 0.002), at),
        ("The hike up to the fortress took four hours", _near(query, rng, 0.05), at),
    ]
    ids = await _store(on, "erin", rows)
    found = await on.search("erin", "tell me about it", limit=3, query_embedding=query)
    plain = await off.search("erin", "tell me about it", limit=3, query_embedding=query)
    assert found.memories[0].id == ids[2]
    assert plain.memories[0].id == ids[0]


async def test_diversity_keeps_near_duplicates_from_filling_the_top(managers):
    on, off = managers
    rng = random.Random(6)
    query = _random(rng)
    at = datetime(2025, 6, 1, tzinfo=UTC)
    rows = [(f"Ran {k}k along the river this morning", _near(query, rng, 0.01), at)
            for k in (5, 6, 7, 8, 9, 10)]  # fmt: skip
    rows.append(("Signed up for the Porto half marathon in March", _near(query, rng, 0.06), at))
    ids = await _store(on, "fay", rows)
    found = await on.search("fay", "how is the training", limit=3, query_embedding=query)
    plain = await off.search("fay", "how is the training", limit=3, query_embedding=query)
    assert ids[-1] in [m.id for m in found.memories]
    assert ids[-1] not in [m.id for m in plain.memories]
    scores = [m.score for m in found.memories]
    assert scores == sorted(scores, reverse=True)


async def test_contextual_embedding_carries_speaker_and_preceding_turns(managers, engine):
    on, off = managers
    meta = {"speaker": "Maya", "context": "Maya: I just got back from Porto! Clara: How was it?"}
    item = NewMemory(content="We surfed every morning, it was unreal.", metadata=meta)
    [ctx_id] = [r.memory_id for r in await on.store_many("gus", [item], to_hot=False)]
    [bare_id] = [r.memory_id for r in await off.store_many("gus", [item], to_hot=False)]
    stored = await on.warm.get_embeddings("gus", [ctx_id, bare_id])
    embedder = on.embedder
    own, context = await embedder.embed_batch(
        [embedding_text(item.content, meta, contextual=True), meta["context"]]
    )
    expected = blend(own, context, ALL_ON.context_weight)
    bare = await embedder.embed(item.content)
    assert stored[ctx_id] == pytest.approx(expected, abs=1e-5)
    assert stored[bare_id] == pytest.approx(bare, abs=1e-5)
    # The reply alone never names the city; with its context it is about Porto.
    q = await embedder.embed("Porto trip")

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(q, stored[ctx_id]) > cos(q, stored[bare_id]) + 0.05


async def test_shipped_defaults_fuse_lexical_time_and_penalty(shipped):
    """The defaults (lexical, generic penalty, time window) on one store."""
    rng = random.Random(9)
    query = _random(rng)
    at = datetime(2025, 6, 1, tzinfo=UTC)
    rows = [(f"Cooked dinner and watched a film, evening {i}", _near(query, rng, 0.02), at)
            for i in range(30)]  # fmt: skip
    rows.append(("That's awesome!", _near(query, rng, 0.001), at))
    rows.append(("Spent a long weekend in Ljubljana with Tomas", _random(rng), at))
    ids = await _store(shipped, "kim", rows)
    found = await shipped.search(
        "kim", "What did I do in Ljubljana?", limit=5, query_embedding=query
    )
    got = [m.id for m in found.memories]
    assert ids[-1] in got and ids[-2] not in got


async def test_vector_only_config_matches_the_old_ranking(managers):
    """off() is the pre-issue-14 ranking: similarity order, nothing fused."""
    _, off = managers
    rng = random.Random(7)
    query = _random(rng)
    at = datetime(2025, 6, 1, tzinfo=UTC)
    rows = [(f"note number {i}", _near(query, rng, 0.01 * (i + 1)), at) for i in range(8)]
    ids = await _store(off, "hal", rows)
    found = await off.search("hal", "note", limit=8, query_embedding=query)
    sims = [m.similarity for m in found.memories]
    assert sims == sorted(sims, reverse=True) and set(m.id for m in found.memories) == set(ids)
    assert replace(RetrievalConfig(), lexical=False).lexical is False


@pytest.mark.parametrize(
    "query",
    [
        "it's Zoe's café, naïve?",
        "C++ | !& <-> ':* \\ (a) 'quoted'",
        "'; DROP TABLE memories; --",
        "東京でラーメン 🍜",
        "a " * 400 + "Zoe",
    ],
)
async def test_lexical_leg_takes_any_text_a_user_can_type(engine, query):
    warm = WarmStore(engine)
    zoe = Memory(content="Had lunch with Zoe at her café", user_id="ivy", created_at=NOW)
    await warm.add_many([(zoe, None)], model="t")
    hits = await warm.lexical_search("ivy", query, limit=5)
    assert all(h.user_id == "ivy" for h in hits)
    if "Zoe" in query:
        assert [h.content for h in hits] == [zoe.content]


async def test_lexical_leg_leaves_out_words_most_memories_have(engine):
    """A word in more than 5 % of memories (PostgreSQL's statistics) carries no pull
    and is what a lookup spends its time on at 100k memories: it is left out."""
    from sqlalchemy import text

    rng = random.Random(8)
    warm = WarmStore(engine)
    texts = [f"Cooked pasta tonight, number {i} of {rng.random():.6f}" for i in range(40)]
    texts.append("Had lunch with Zoe by the harbour")
    await warm.add_many(
        [(Memory(content=c, user_id="jo", created_at=NOW), None) for c in texts], model="t"
    )
    assert [h.content for h in await warm.lexical_search("jo", "pasta", limit=3)]  # no stats yet
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE memories"))
    assert "pasta" in await WarmStore(engine).common_terms(0.05)
    fresh = WarmStore(engine)  # the list is cached per store: a new one reads the stats
    assert await fresh.lexical_search("jo", "pasta", limit=3) == []
    hits = await fresh.lexical_search("jo", "pasta with Zoe", limit=3)
    assert [h.content for h in hits] == ["Had lunch with Zoe by the harbour"]
    assert await fresh.lexical_search("jo", "pasta", limit=3, common_share=1.0)  # off


async def test_project_memories_are_ranked_by_the_same_hybrid_search(managers):
    """Shared project memory goes through the same fusion (issue 14): a name only the
    lexical leg finds reaches a member's project context, whoever wrote it, and a
    non-member still gets nothing."""
    on, off = managers
    rng = random.Random(5)
    query = _random(rng)
    at = datetime(2025, 6, 1, tzinfo=UTC)
    pid = await on.projects.create("Launch", "alice", members=["bob"])
    rows = [(f"Reviewed the slides and fixed typos, pass {i}", _near(query, rng, 0.02), at)
            for i in range(30)]  # fmt: skip
    rows.append(("The venue for the launch party is Kavarna Zvezda", _random(rng), at))
    items = [NewMemory(content=c, created_at=t, emotional_score=0.3, project_id=pid)
             for c, _, t in rows]  # fmt: skip
    stored = await on.store_many("bob", items, embeddings=[v for _, v, _ in rows], to_hot=False)
    target = stored[-1].memory_id
    # Another user's personal memory with the same name is not project memory.
    await _store(on, "carol", [("Kavarna Zvezda has the best cake", query, at)])

    question = "Where is the Kavarna Zvezda party?"
    shared = await on.get_project_context(
        pid, user_id="alice", query=question, query_embedding=query, limit=10
    )
    vector_only = await off.get_project_context(
        pid, user_id="alice", query=question, query_embedding=query, limit=10
    )
    assert target in [m.id for m in shared.retrieved]
    assert target not in [m.id for m in vector_only.retrieved]
    assert all(m.project_id == pid for m in shared.retrieved)
    with pytest.raises(AccessDenied):
        await on.get_project_context(pid, user_id="carol", query=question, query_embedding=query)
