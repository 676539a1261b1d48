"""mem0 import and re-embedding on real Redis + PostgreSQL/pgvector with the real embedders."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from clara_core.cortex.embedding.openai_api import OpenAIEmbedder
from clara_core.cortex.emotion import HeuristicEmotionScorer
from clara_core.cortex.manager import EMBEDDER_META_KEY, MemoryManager
from clara_core.cortex.mem0_classify import classify
from clara_core.cortex.mem0_import import (
    ImportFileError,
    apply_import,
    load_export,
    memory_id_for,
    parse_export,
    parse_user_map,
)
from clara_core.cortex.reembed import HNSW_INDEX, ReembedError, plan_reembed, reembed
from clara_core.cortex.retrieval import RetrievalConfig
from clara_core.cortex.types import EmbedderMismatch, MemoryStatus, MemoryType
from tests.fakes.fake_llm import FakeLLM
from tests.support.cortex import local_embedder
from tests.support.cortex_manager import memory_manager

pytestmark = pytest.mark.storage

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mem0_export.json"
ID, SEM, EPI = MemoryType.IDENTITY, MemoryType.SEMANTIC, MemoryType.EPISODIC


@pytest.fixture
async def cortex(redis, engine, tmp_path) -> AsyncIterator[MemoryManager]:
    async with memory_manager(redis=redis, engine=engine, outbox_dir=tmp_path / "outbox") as m:
        yield m


# -- classification -----------------------------------------------------------------------

CLASSIFIED = [
    # text, type, identity key, value
    ("Name is Josh", ID, "name", "Josh"),
    ("The user's name is Priya Natarajan", ID, "name", "Priya Natarajan"),
    ("my name is josh.", ID, "name", "Josh"),
    ("Name is not important to him", SEM, None, None),
    ("Prefers to be called Sam", ID, "preferred_name", "Sam"),
    ("I'm called Bea", ID, "name", "Bea"),
    ("Lives in Lisbon, Portugal", ID, "location", "Lisbon, Portugal"),
    ("I live in New York City with my two cats", ID, "location", "New York City"),
    ("Is originally from Porto", ID, "hometown", "Porto"),
    ("Works as a software engineer at Google", ID, "occupation", "software engineer"),
    ("Works at Spotify", ID, "employer", "Spotify"),
    ("I am a nurse", ID, "occupation", "nurse"),
    ("Was born on 12 May 1990", ID, "birthday", "12 May 1990"),
    ("Born in 1988", ID, "birth_year", "1988"),
    ("Is 34 years old", ID, "age", "34"),
    ("Pronouns are they/them", ID, "pronouns", "they/them"),
    ("Uses she/her pronouns", ID, "pronouns", "she/her"),
    ("Has a daughter named Mia", ID, "daughter", "Mia"),
    ("I have two kids called Mia and Leo", ID, "children", "Mia and Leo"),
    ("Sister's name is Ana", ID, "sister", "Ana"),
    ("My sister Ana lives in Lisbon", ID, "sister", "Ana"),  # the sister lives there, not them
    ("Married to Sam Reyes", ID, "spouse", "Sam Reyes"),
    ("I'm vegetarian", ID, "diet", "vegetarian"),
    ("I am a night owl", ID, None, None),  # "I am a …": who they are, no clear key
    ("Has two kids", ID, None, None),
    ("Went hiking in the Alps last summer", EPI, None, None),
    ("Had a job interview yesterday", EPI, None, None),
    ("Marathon on 2024-03-10", EPI, None, None),
    ("Moved to Berlin in 2021", EPI, None, None),
    ("Visited the Louvre with her mother", EPI, None, None),
    ("Had a fight with Ana about money", EPI, None, None),
    ("My mother was born in 1960", EPI, None, None),  # dated, and not about the user
    ("Likes hiking", SEM, None, None),
    ("Prefers tea over coffee", SEM, None, None),
    ("Is allergic to peanuts", SEM, None, None),
    ("Interested in machine learning", SEM, None, None),
    ("Is a big fan of jazz", SEM, None, None),
    ("Has been vegetarian since 2015", SEM, None, None),
    ("Drinks coffee every morning at 7", SEM, None, None),
    ("Used to play the piano", SEM, None, None),
]


@pytest.mark.parametrize(("content", "kind", "key", "value"), CLASSIFIED)
def test_classification_rules(content, kind, key, value):
    got = classify(content)
    assert (got.memory_type, got.identity_key, got.identity_value) == (kind, key, value)


# -- reading the export ---------------------------------------------------------------------


def test_export_shapes_dates_and_rejections():
    item = {"id": "m1", "memory": "Likes tea", "user_id": "u1", "created_at": "2024-03-01T09:30:00"}
    implied = {k: v for k, v in item.items() if k != "user_id"}  # {user: [...]} exports
    for shape in ([item], {"results": [item]}, {"u1": [implied]}):
        plan = parse_export(shape)
        assert len(plan.items) == 1
        # naive timestamps are UTC
        assert plan.items[0].created_at == datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    with pytest.raises(ImportFileError, match="not a mem0 export"):
        parse_export({"memories": "nope"})

    plan = parse_export(
        [
            item,
            item,  # exported twice
            {**item, "id": "m2", "memory": ""},
            {**item, "id": "m3", "user_id": "a b"},
            {**item, "id": "m4", "created_at": "last tuesday"},
            {"memory": "no id", "user_id": "u1"},
            "not an object",
        ],
        user_map=parse_user_map(["u1=clara-u1"]),
    )
    assert [i.user_id for i in plan.items] == ["clara-u1"]
    assert plan.items[0].memory_id == memory_id_for("m1", "clara-u1")
    assert plan.duplicates_in_file == 1
    assert [r.reason.split(":")[0] for r in plan.rejected] == [
        "empty text",
        "invalid user id 'a b'",
        "bad date",
        "no id",
        "not a JSON object",
    ]
    with pytest.raises(ImportFileError, match="OLD=NEW"):
        parse_user_map(["nonsense"])


async def test_missing_or_broken_file_is_a_plain_error(tmp_path):
    with pytest.raises(ImportFileError, match="no such file"):
        await load_export(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ImportFileError, match="not valid JSON"):
        await load_export(tmp_path / "bad.json")


# -- importing ------------------------------------------------------------------------------


async def _count(cortex: MemoryManager, where: str = "true") -> int:
    async with cortex.warm.engine.connect() as conn:
        return (await conn.execute(text(f"SELECT count(*) FROM memories WHERE {where}"))).scalar()


async def test_dry_run_plan_writes_nothing(cortex: MemoryManager):
    plan = await load_export(FIXTURE)
    assert (plan.total, len(plan.items), len(plan.rejected), plan.duplicates_in_file) == (
        43,
        39,
        3,
        1,
    )
    assert await _count(cortex) == 0
    assert await cortex.hot.get_identity("josh") == {}


async def test_apply_imports_with_dates_metadata_and_identity(cortex: MemoryManager):
    plan = await load_export(FIXTURE)
    progress: list[tuple[int, int]] = []
    report = await apply_import(
        cortex,
        plan,
        batch=8,
        progress=lambda done, total: progress.append((done, total)),
        rng=random.Random(7),
    )

    # validation: every valid item is stored, per user and type
    expected = Counter(
        {("josh", ID): 7, ("josh", SEM): 5, ("josh", EPI): 4}
        | {("maria.s", ID): 6, ("maria.s", SEM): 3, ("maria.s", EPI): 4}
        | {("sam_k", ID): 5, ("sam_k", SEM): 3, ("sam_k", EPI): 2}
    )
    assert plan.counts() == expected
    assert report.imported == expected and report.present == expected
    assert not report.already_present and report.missing == 0 and report.ok
    assert {r.reason for r in plan.rejected} == {
        "empty text",
        "no user_id",
        "invalid user id 'not a valid id!'",
    }
    assert progress[-1] == (39, 39)
    assert await _count(cortex) == 39
    assert await _count(cortex, "embedding IS NULL") == 0
    # spot check: five memories found by their own text, in the top 3
    assert len(report.spot_checks) == 5
    assert all(s.rank is not None for s in report.spot_checks), report.spot_checks

    # dates, metadata, categories and provenance survive
    raw = next(i for i in json.loads(FIXTURE.read_text())["results"] if "Nike" in i["memory"])
    stored = await cortex.warm.get("josh", memory_id_for(raw["id"], "josh"))
    assert stored is not None and stored.memory_type is EPI
    assert stored.created_at == datetime.fromisoformat(raw["created_at"])
    assert stored.metadata == {
        **raw["metadata"],
        "mem0_id": raw["id"],
        "imported_from": "mem0",
        "mem0_hash": raw["hash"],
    }
    assert stored.tags == raw["categories"] and stored.source == "mem0_import"
    grief = (await cortex.search("maria.s", "grandmother passed away", limit=1)).memories[0]
    assert "grandmother" in grief.content and grief.emotional_score >= 0.8  # heuristic score

    # identity seeded in both tiers; the newer of two locations wins, the older is history
    for facts in (await cortex.get_identity("sam_k"), await cortex.warm.identity_facts("sam_k")):
        assert facts == {
            "name": "Sam",
            "location": "Amsterdam",
            "employer": "Spotify",
            "preferred_name": "Sammy",
        }
    berlin = await cortex.warm.get_memories(
        "sam_k", memory_types=[ID], status=MemoryStatus.SUPERSEDED
    )
    assert [m.content for m in berlin] == ["Lives in Berlin"]
    josh = await cortex.get_identity("josh")
    assert josh["name"] == "Josh" and josh["daughter"] == "Mia" and josh["spouse"] == "Dana"
    assert (await cortex.get_identity("maria.s"))["occupation"] == "nurse"
    # old memories don't enter working memory
    assert await cortex.hot.get_working("josh") == []


async def test_rerun_imports_nothing_new(cortex: MemoryManager):
    plan = await load_export(FIXTURE)
    await apply_import(cortex, plan, spot_checks=0)
    again = await apply_import(cortex, await load_export(FIXTURE), spot_checks=0)
    assert sum(again.imported.values()) == 0
    assert sum(again.already_present.values()) == 39 and again.ok
    assert await _count(cortex) == 39
    assert len(await cortex.warm.identity_memory_ids("sam_k", "location")) == 1


async def test_newer_facts_in_clara_win_and_family_names_merge(cortex: MemoryManager):
    # Clara learnt these after mem0 was retired (the test clock is in 2026).
    await cortex.update_identity("josh", "location", "Seattle")
    await cortex.update_identity("josh", "daughter", "Zoe")
    plan = await load_export(FIXTURE)
    report = await apply_import(cortex, plan, spot_checks=0)
    assert report.ok
    for facts in (await cortex.get_identity("josh"), await cortex.warm.identity_facts("josh")):
        assert facts["location"] == "Seattle"  # newer than mem0's Portland
        assert facts["daughter"] == "Zoe, Mia"  # two daughters, not a correction
    portland = await cortex.warm.get("josh", memory_id_for(_mem0_id("Lives in Portland"), "josh"))
    assert portland is not None and portland.status is MemoryStatus.SUPERSEDED


def _mem0_id(prefix: str) -> str:
    items = json.loads(FIXTURE.read_text())["results"]
    return next(i["id"] for i in items if i.get("memory", "").startswith(prefix))


# -- re-embedding ---------------------------------------------------------------------------


async def test_reembed_missing_fills_null_vectors(cortex: MemoryManager):
    await cortex.store("alice", "I keep bees on my roof in Porto", MemoryType.SEMANTIC)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    async with cortex.warm.engine.begin() as conn:
        for n, memory_id in enumerate(ids):
            await conn.execute(
                text(
                    "INSERT INTO memories (id, user_id, memory_type, content) "
                    "VALUES (:id, 'alice', 'semantic', :content)"
                ),
                {"id": memory_id, "content": f"My bike number {n} is a green Brompton"},
            )
    embedder = cortex.embedder
    plan = await plan_reembed(cortex.warm.engine, embedder, missing_only=True)
    assert (plan.candidates, plan.total) == (3, 4)
    progress: list[tuple[int, int]] = []
    report = await reembed(
        cortex.warm.engine, embedder, plan, batch=2, progress=lambda d, t: progress.append((d, t))
    )
    assert report.embedded == 3 and report.failed == 0 and report.ok
    assert progress[-1] == (3, 3)
    assert await _count(cortex, "embedding IS NULL") == 0
    assert await _count(cortex, f"embedding_model = '{embedder.model_id}'") == 4
    found = await cortex.search("alice", "green Brompton bike", limit=3)
    assert {m.id for m in found.memories} == set(ids)


async def test_reembed_after_model_change_lets_cortex_start(redis, engine, tmp_path):
    async with memory_manager(redis=redis, engine=engine, outbox_dir=tmp_path / "o") as cortex:
        for fact in ("Has a cat called Miso", "Plays the cello", "Lives near the river"):
            await cortex.store("alice", fact, MemoryType.SEMANTIC)
    # As if these vectors had been made by another model of the same size.
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE memories SET embedding_model = 'text-embedding-3-small'"))
    await cortex.warm.set_meta(EMBEDDER_META_KEY, {"model": "text-embedding-3-small", "dims": 384})
    with pytest.raises(EmbedderMismatch, match="cortex reembed"):
        async with memory_manager(redis=redis, engine=engine, outbox_dir=tmp_path / "o"):
            pass

    embedder = local_embedder()
    plan = await plan_reembed(engine, embedder)
    assert plan.candidates == 3 and not plan.converts_column
    report = await reembed(engine, embedder, plan)
    assert report.embedded == 3 and report.recorded and report.ok
    async with memory_manager(redis=redis, engine=engine, outbox_dir=tmp_path / "o") as cortex:
        found = await cortex.search("alice", "my cat", limit=1)
        assert found.memories[0].content == "Has a cat called Miso"
    # nothing left to do: a second run embeds nothing
    again = await reembed(engine, embedder, await plan_reembed(engine, embedder))
    assert again.embedded == 0 and again.ok


SECRET = "sk-test-reembed-0123456789abcdef"


async def test_reembed_converts_the_column_to_a_new_dimension(redis, engine, tmp_path):
    async with memory_manager(redis=redis, engine=engine, outbox_dir=tmp_path / "o") as cortex:
        for fact in ("Grows tomatoes on the balcony", "Sings in a choir", "Collects vinyl"):
            await cortex.store("alice", fact, MemoryType.SEMANTIC)
    async with FakeLLM(api_keys={SECRET}) as fake:
        embedder = OpenAIEmbedder(api_key=SECRET, dims=256, base_url=fake.openai_base_url)
        try:
            plan = await plan_reembed(engine, embedder, missing_only=True)
            with pytest.raises(ReembedError, match="without --missing"):
                await reembed(engine, embedder, plan)
            plan = await plan_reembed(engine, embedder)
            assert plan.converts_column and (plan.column_dims, plan.candidates) == (384, 3)
            report = await reembed(engine, embedder, plan)
            assert report.embedded == 3 and report.index_rebuilt and report.ok
            async with engine.connect() as conn:
                dims = (
                    await conn.execute(
                        text(
                            "SELECT atttypmod FROM pg_attribute WHERE attrelid = "
                            "'memories'::regclass AND attname = 'embedding'"
                        )
                    )
                ).scalar()
                index = (
                    await conn.execute(
                        text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
                        {"n": HNSW_INDEX},
                    )
                ).scalar()
            assert dims == 256 and "hnsw" in index and "vector_cosine_ops" in index
            cortex = MemoryManager(
                redis=redis,
                engine=engine,
                embedder=embedder,
                scorer=HeuristicEmotionScorer(),
                outbox_dir=tmp_path / "o",
            )
            await cortex.initialize(watch=False)  # the recorded embedder matches now
            try:
                found = await cortex.search("alice", "tomatoes on the balcony", limit=1)
                assert found.memories[0].content == "Grows tomatoes on the balcony"
            finally:
                await cortex.close()
        finally:
            await embedder.aclose()


async def test_reembed_rebuilds_the_contextual_vector_made_at_ingest(redis, engine, tmp_path):
    """A contextual memory (speaker + the turns before it) is re-embedded from the same
    contextual text as at ingest, not from its bare content (issue 14)."""
    contextual = RetrievalConfig(contextual_embedding=True)
    cortex = MemoryManager(
        redis=redis,
        engine=engine,
        embedder=local_embedder(),
        scorer=HeuristicEmotionScorer(),
        outbox_dir=tmp_path / "o",
        retrieval=contextual,
    )
    await cortex.initialize(watch=False)
    try:
        stored = await cortex.store(
            "alice",
            "It was unreal, we ate pastel de nata every day.",
            metadata={"speaker": "Alice", "context": "Clara: Porto! How was the trip?"},
        )
        plain = await cortex.store("alice", "Plays the cello on Sundays", MemoryType.SEMANTIC)
    finally:
        await cortex.close()
    ids = [stored.memory_id, plain.memory_id]
    at_ingest = await cortex.warm.get_embeddings("alice", ids)
    # The stored vector is the contextual one, not the bare content's.
    bare = await cortex.embedder.embed("It was unreal, we ate pastel de nata every day.")
    assert max(abs(a - b) for a, b in zip(bare, at_ingest[ids[0]], strict=True)) > 0.01

    # As if another model of the same size had made the vectors: everything is re-made.
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE memories SET embedding_model = 'other-model'"))
    embedder = local_embedder()
    plan = await plan_reembed(engine, embedder)
    assert plan.candidates == 2
    report = await reembed(engine, embedder, plan, retrieval=contextual)
    assert report.embedded == 2 and report.ok
    after = await cortex.warm.get_embeddings("alice", ids)
    for memory_id in ids:
        assert after[memory_id] == pytest.approx(at_ingest[memory_id], abs=1e-5)
