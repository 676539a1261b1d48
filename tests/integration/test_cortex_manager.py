"""MemoryManager on real Redis + PostgreSQL/pgvector with the real local embedder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from clara_core.cortex.manager import EMBEDDER_META_KEY, MemoryManager, NewMemory
from clara_core.cortex.scoring import RetrievalWeights
from clara_core.cortex.types import (
    AccessDenied,
    CortexError,
    EmbedderMismatch,
    InvalidInput,
    MemoryStatus,
    MemoryType,
)
from tests.support.clock import Clock
from tests.support.cortex_manager import memory_manager

pytestmark = pytest.mark.storage


@pytest.fixture
async def cortex(redis, engine, tmp_path):
    async with memory_manager(
        redis=redis,
        engine=engine,
        outbox_dir=tmp_path / "outbox",
        weights=RetrievalWeights(0.40, 0.25, 0.20, 0.15),  # the spec's, reinforcement on
    ) as m:
        yield m


FACTS = [
    "My sister Ana lives in Lisbon and works as a nurse",
    "I adopted a grey cat called Miso last spring",
    "I am training for the Porto half marathon in March",
    "My favourite food is my grandmother's bacalhau",
    "I work night shifts at the hospital pharmacy",
    "I'm learning Rust to rewrite our inventory tool",
]


async def test_store_then_context_retrieves_the_relevant_memory(cortex: MemoryManager):
    for fact in FACTS:
        result = await cortex.store("alice", fact, MemoryType.SEMANTIC, emotional_score=0.3)
        assert result.success and not result.queued and result.ttl == 1800 + int(1800 * 11 * 0.3)
    ctx = await cortex.get_context("alice", query="what's my cat called?")
    assert ctx.retrieved[0].content == "I adopted a grey cat called Miso last spring"
    assert len(ctx.retrieved) == len(FACTS)  # all six, ranked
    assert [m.score for m in ctx.retrieved] == sorted(
        [m.score for m in ctx.retrieved], reverse=True
    )
    assert {m.content for m in ctx.working} == set(FACTS)  # write-through to the hot tier
    meta = await cortex.hot.get_meta("alice")
    assert meta["memories_stored"] == str(len(FACTS)) and meta["last_stored_at"]
    prompt = ctx.to_prompt_string()
    assert "## Relevant memories" in prompt and "Miso" in prompt
    # Recent and relevant at once: each fact is shown once, under "Relevant memories".
    assert all(prompt.count(fact) == 1 for fact in FACTS)
    assert "## Recent context" not in prompt

    await cortex.drain_background()
    async with cortex.warm.engine.connect() as conn:
        touched = (
            await conn.execute(text("SELECT count(*) FROM memories WHERE access_count = 1"))
        ).scalar_one()
    assert touched == len(FACTS)  # reinforcement counted once per retrieval


async def test_metadata_and_created_at_round_trip(cortex: MemoryManager):
    when = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    meta = {"source_message": "123", "nested": {"a": [1, 2]}, "unicode": "ção"}
    result = await cortex.store(
        "alice", "Moved to Porto", metadata=meta, created_at=when, emotional_score=0.6
    )
    memory = await cortex.warm.get("alice", result.memory_id)
    assert memory.metadata == meta and memory.created_at == when
    # an old memory is past its working-memory TTL: it goes to the warm tier only
    assert result.memory_id not in {m.id for m in await cortex.hot.get_working("alice")}


async def test_emotion_is_scored_when_not_given(cortex: MemoryManager):
    calm = await cortex.store("alice", "Checked my email and had a coffee")
    intense = await cortex.store("alice", "My father died last night, I'm devastated")
    assert calm.emotional_score < 0.3 < 0.7 < intense.emotional_score
    assert intense.ttl > calm.ttl


async def test_greetings_skip_retrieval(cortex: MemoryManager):
    await cortex.store("alice", FACTS[0], MemoryType.SEMANTIC, emotional_score=0.2)
    ctx = await cortex.get_context("alice", query="thanks clara!")
    assert ctx.retrieved == [] and ctx.notes
    ctx = await cortex.get_context("alice", query="where does my sister live?")
    assert ctx.retrieved and "Lisbon" in ctx.retrieved[0].content


async def test_identity_updates_supersede_and_survive_in_both_tiers(cortex: MemoryManager):
    await cortex.update_identity("alice", "sister", "Rita")
    first = await cortex.warm.identity_memory_ids("alice", "sister")
    await cortex.update_identity("alice", "sister", "Ana")
    assert await cortex.get_identity("alice") == {"sister": "Ana"}
    assert await cortex.warm.identity_facts("alice") == {"sister": "Ana"}
    old = await cortex.warm.get("alice", first[0])
    assert old.status is MemoryStatus.SUPERSEDED  # kept, not deleted
    ctx = await cortex.get_context("alice", query="tell me about my sister")
    assert ctx.identity == {"sister": "Ana", "updated_at": ctx.identity["updated_at"]}
    assert "Rita" not in ctx.to_prompt_string()


async def test_store_many_scores_and_embeds_in_batches(cortex: MemoryManager):
    start = datetime(2025, 1, 1, tzinfo=UTC)
    items = [
        NewMemory(f"diary entry {i}: {FACTS[i % len(FACTS)]}", created_at=start + timedelta(days=i))
        for i in range(40)
    ]
    results = await cortex.store_many("alice", items)
    assert len({r.memory_id for r in results}) == 40 and all(r.success for r in results)
    assert await cortex.warm.count("alice") == 40
    oldest = await cortex.warm.get_memories("alice", limit=1, newest_first=False)
    assert oldest[0].created_at == start


async def test_users_never_see_each_other(cortex: MemoryManager):
    secret = await cortex.store(
        "alice", "My bank PIN hint is the cat's birthday", emotional_score=0.5
    )
    await cortex.store("bob", "Bob likes trains", emotional_score=0.1)
    found = await cortex.search("bob", "bank PIN hint cat birthday")
    assert all(m.user_id == "bob" for m in found.memories) and found.total_count == 1
    ctx = await cortex.get_context("bob", query="bank PIN hint")
    assert "PIN" not in ctx.to_prompt_string()
    assert await cortex.warm.get("bob", secret.memory_id) is None
    # bob "forgetting" alice's memory id does nothing to it
    assert (await cortex.forget("bob", secret.memory_id)).warm == 0
    assert await cortex.warm.get("alice", secret.memory_id) is not None


async def test_forget_one_and_forget_all(cortex: MemoryManager):
    a = await cortex.store("alice", FACTS[1], emotional_score=0.4)
    await cortex.store("alice", FACTS[2], emotional_score=0.4)
    await cortex.update_identity("alice", "name", "Alice")
    await cortex.store("bob", "Bob likes trains", emotional_score=0.1)

    one = await cortex.forget("alice", a.memory_id)
    assert one.warm == 1 and one.hot == 1
    assert await cortex.warm.get("alice", a.memory_id) is None
    assert a.memory_id not in {m.id for m in await cortex.hot.get_working("alice")}

    everything = await cortex.forget("alice")
    assert everything.warm == 2 and everything.hot >= 3
    assert await cortex.warm.count("alice") == 0
    assert await cortex.get_identity("alice") == {}
    assert await cortex.hot.get_working("alice") == []
    assert await cortex.warm.count("bob") == 1  # only the caller's data


async def test_projects_are_shared_with_members_only(cortex: MemoryManager):
    pid = await cortex.projects.create("Cortex", "alice", members=["bob"])
    await cortex.store("bob", "The release is planned for March 3rd", project_id=pid)
    with pytest.raises(AccessDenied):
        await cortex.store("mallory", "I sneak into the project", project_id=pid)
    with pytest.raises(AccessDenied):
        await cortex.get_project_context(pid, user_id="mallory", query="release date")
    with pytest.raises(AccessDenied):
        await cortex.search("mallory", "release", project_id=pid)

    shared = await cortex.get_project_context(pid, user_id="alice", query="when is the release?")
    assert shared.name == "Cortex" and shared.retrieved[0].content.startswith("The release")

    await cortex.projects.link_channel("chan-1", pid, by="alice")
    with pytest.raises(AccessDenied):
        await cortex.projects.link_channel("chan-2", pid, by="bob")  # members can't relink
    await cortex.store("alice", "I prefer short stand-ups", emotional_score=0.2)
    group = await cortex.get_group_context("when is the release?", "alice", "chan-1")
    prompt = group.to_prompt_string()
    assert "March 3rd" in prompt and "## Shared project: Cortex" in prompt
    outsider = await cortex.get_group_context("when is the release?", "mallory", "chan-1")
    assert outsider.project is None and "March 3rd" not in outsider.to_prompt_string()

    await cortex.projects.remove_member(pid, "bob", by="alice")
    with pytest.raises(AccessDenied):
        await cortex.get_project_context(pid, user_id="bob")


async def test_end_session_promotes_emotional_working_memories(cortex: MemoryManager):
    await cortex.start_session("alice", {"topic": "moving"})
    big = await cortex.store(
        "alice", "We lost the house in the fire", MemoryType.WORKING, emotional_score=0.9
    )
    small = await cortex.store("alice", "Had toast", MemoryType.WORKING, emotional_score=0.1)
    assert (await cortex.get_context("alice")).session["topic"] == "moving"
    ended = await cortex.end_session("alice")
    assert ended["topic"] == "moving" and await cortex.hot.get_session("alice") == {}
    assert (await cortex.warm.get("alice", big.memory_id)).memory_type is MemoryType.EPISODIC
    assert (await cortex.warm.get("alice", small.memory_id)).memory_type is MemoryType.WORKING


async def test_working_memory_expires_by_clock(redis, engine, tmp_path):
    clock = Clock()
    async with memory_manager(
        redis=redis, engine=engine, outbox_dir=tmp_path / "o", clock=clock
    ) as cortex:
        await cortex.store("alice", "Had toast", emotional_score=0.0)
        await cortex.store("alice", "Got engaged today!", emotional_score=1.0)
        clock.advance(minutes=31)
        assert [m.content for m in (await cortex.get_context("alice")).working] == [
            "Got engaged today!"
        ]
        assert await cortex.warm.count("alice") == 2  # the warm tier keeps both


async def test_a_different_embedder_is_refused_with_the_fix(redis, engine, tmp_path):
    async with memory_manager(redis=redis, engine=engine, outbox_dir=tmp_path / "o") as cortex:
        await cortex.warm.set_meta(
            EMBEDDER_META_KEY, {"model": "text-embedding-3-small", "dims": 384}
        )
    with pytest.raises(EmbedderMismatch, match="cortex reembed"):
        async with memory_manager(redis=redis, engine=engine, outbox_dir=tmp_path / "o"):
            pass


async def _everything(cortex: MemoryManager, user_id: str) -> tuple[int, list[str]]:
    """What both tiers hold for the user: warm rows, and working-memory contents."""
    working = [m.content for m in await cortex.hot.get_working(user_id)]
    return await cortex.warm.count(user_id), working


async def test_naive_created_at_is_utc_and_stored_exactly_once(cortex: MemoryManager):
    # The fixture's clock says 2026-11-22 12:00 UTC; ten minutes ago, without a zone.
    naive = datetime(2026, 11, 22, 11, 50)
    result = await cortex.store("alice", "Booked the dentist", created_at=naive)
    assert result.success, result.error
    stored = await cortex.warm.get("alice", result.memory_id)
    assert stored.created_at == naive.replace(tzinfo=UTC)
    batch = await cortex.store_many("alice", [NewMemory("Paid the rent", created_at=naive)])
    assert batch[0].success
    count, working = await _everything(cortex, "alice")
    assert count == 2 and sorted(working) == ["Booked the dentist", "Paid the rent"]


async def test_invalid_input_writes_nothing_so_a_retry_stores_once(cortex: MemoryManager):
    good = NewMemory("Started learning the cello", emotional_score=0.4)
    bad = NewMemory("Cello lesson on Friday", created_at="2026-11-22T11:00:00")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as raised:
        await cortex.store_many("alice", [good, bad])
    assert raised.value.parameter == "items[1].created_at" and "datetime" in str(raised.value)
    assert await _everything(cortex, "alice") == (0, [])  # neither tier touched

    bad.created_at = datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
    assert all(r.success for r in await cortex.store_many("alice", [good, bad]))
    count, working = await _everything(cortex, "alice")
    assert count == 2 and len(working) == 2

    # store() reports invalid input in its result (its contract), again writing nothing.
    for kwargs, parameter in [
        ({"metadata": {"when": {1, 2}}}, "metadata"),
        ({"emotional_score": float("nan")}, "emotional_score"),
        ({"embedding": [0.1, 0.2]}, "embedding"),
        ({"supersedes": "not-a-uuid"}, "supersedes"),
    ]:
        result = await cortex.store("alice", "a new fact", **kwargs)
        assert not result.success and result.error.startswith(f"{parameter}:")
    assert (await _everything(cortex, "alice"))[0] == 2


async def test_limits_are_validated_and_zero_means_none(cortex: MemoryManager):
    for fact in FACTS[:3]:
        await cortex.store("alice", fact, MemoryType.SEMANTIC, emotional_score=0.3)
    for call, parameter in [
        (cortex.search("alice", "cat", limit=-1), "limit"),
        (cortex.get_context("alice", query="my cat?", max_retrieved=-1), "max_retrieved"),
        (cortex.recent_memories("alice", limit=-5), "limit"),
        (cortex.recent_memories("alice", offset=-1), "offset"),
        (cortex.search("alice", "cat", query_embedding=[0.5] * 3), "query_embedding"),
    ]:
        with pytest.raises(InvalidInput) as raised:
            await call
        assert raised.value.parameter == parameter
        assert isinstance(raised.value, CortexError) and isinstance(raised.value, ValueError)

    assert (await cortex.search("alice", "cat", limit=0)).memories == []
    assert len((await cortex.search("alice", "cat", limit=2)).memories) == 2
    none = await cortex.get_context("alice", query="what's my cat called?", max_retrieved=0)
    assert none.retrieved == [] and len(none.working) == 3  # recent context still there
    one = await cortex.get_context("alice", query="what's my cat called?", max_retrieved=1)
    assert [m.content for m in one.retrieved] == [FACTS[1]]
    assert await cortex.recent_memories("alice", limit=0) == []
