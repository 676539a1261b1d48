"""Cortex consolidation on real PostgreSQL + Redis, the real local embedder and
the fake LLM server: patterns, contradictions, resolutions, compaction, runner."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from clara_core.config import load_settings
from clara_core.cortex.consolidation import (
    JOB_CLEANUP,
    ConsolidationLedger,
    ConsolidationRunner,
    RunReport,
    cluster_by_similarity,
    parse_patterns,
)
from clara_core.cortex.hot import HotStore
from clara_core.cortex.retrieval import TURN_SOURCE
from clara_core.cortex.types import AccessDenied, CortexError, Memory, MemoryStatus, MemoryType
from clara_core.cortex.warm import WarmStore
from clara_core.llm.service import LLMService
from storage.models import MemoryRecord
from tests.fakes.fake_llm import ErrorReply, FakeLLM, Hang, RecordedRequest, Reply
from tests.support.clock import Clock
from tests.support.cortex import local_embedder, text_model_for
from tests.support.llm import KEY

pytestmark = pytest.mark.storage


@dataclass
class Stack:
    runner: ConsolidationRunner
    warm: WarmStore
    hot: HotStore
    ledger: ConsolidationLedger
    clock: Clock
    fake: FakeLLM
    engine: AsyncEngine


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with FakeLLM(api_keys={KEY}) as server:
        yield server


@pytest.fixture
async def make_stack(engine, redis, fake) -> AsyncIterator[Callable[..., Stack]]:
    services: list[LLMService] = []

    def make(**overrides: Any) -> Stack:
        clock = Clock()
        model, service = text_model_for(fake)
        services.append(service)
        warm = WarmStore(engine)
        hot = HotStore(redis, clock=clock)
        ledger = ConsolidationLedger(engine, clock=clock)
        settings = load_settings(env_file=None, **overrides)
        runner = ConsolidationRunner(
            warm, hot, ledger, model, local_embedder(), settings, clock=clock
        )
        return Stack(runner, warm, hot, ledger, clock, fake, engine)

    try:
        yield make
    finally:
        for service in services:
            await service.aclose()


async def remember(
    stack: Stack,
    user_id: str,
    texts: list[str],
    *,
    days_ago: float = 1,
    memory_type: MemoryType = MemoryType.EPISODIC,
    step: timedelta = timedelta(hours=1),
) -> list[Memory]:
    """Store ``texts`` (embedded), the first ``days_ago`` days before now, then ``step`` apart."""
    embedder = local_embedder()
    start = stack.clock() - timedelta(days=days_ago)
    memories = [
        Memory(t, user_id, memory_type, created_at=start + i * step) for i, t in enumerate(texts)
    ]
    vectors = await embedder.embed_batch(texts)
    await stack.warm.add_many(list(zip(memories, vectors, strict=True)), model=embedder.model_id)
    return memories


def prompt_of(request: RecordedRequest) -> str:
    return json.dumps(request.json)


async def count_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(MemoryRecord))).scalar())


NURSE_WEEK = [
    "Worked a long night shift at the city hospital again",
    "Had ramen after the shift, the usual place",
    "A patient on my ward thanked me today, felt good about being a nurse",
    "Picked up the kids, both of them, from school",
    "Charge nurse asked me to cover another night shift",
    "Tired after the hospital, but the ward was calm",
]


# -- patterns ---------------------------------------------------------------------


async def test_confident_identity_pattern_updates_hot_identity_and_is_stored_once(make_stack):
    stack = make_stack()
    episodes = await remember(stack, "alice", NURSE_WEEK)
    answer = """Here is what I found:
```json
[
  {"category": "identity", "fact": "works as a nurse at the city hospital",
   "confidence": 0.9, "evidence": [0, 2, 4, 99]},
  {"category": "identity", "fact": "has two children", "confidence": 0.85, "evidence": [3]},
  {"category": "preference", "fact": "likes ramen", "confidence": 0.5, "evidence": [1]}
]
```
Hope this helps."""
    stack.fake.default = Reply(answer)

    report = await stack.runner.run_for_user("alice", compact=False)

    assert report.error is None
    assert report.patterns_found == 3 and report.identities_updated == 2
    assert len(stack.fake.requests) == 1  # two facts only: no contradiction check
    prompt = prompt_of(stack.fake.requests[0])
    assert "0. [2026-11-21] Worked a long night shift" in prompt
    identity = await stack.hot.get_identity("alice")
    assert identity["occupation"] == "works as a nurse at the city hospital"
    assert identity["family"] == ["has two children"]
    facts = await stack.warm.get_memories("alice", memory_types=[MemoryType.SEMANTIC])
    by_content = {m.content: m for m in facts}
    assert set(by_content) == {"works as a nurse at the city hospital", "has two children"}
    nurse = by_content["works as a nurse at the city hospital"]
    assert nurse.source == "consolidation" and nurse.confidence == pytest.approx(0.9)
    assert nurse.metadata["pattern_category"] == "identity"
    # Evidence indices map to the chronological prompt order; the made-up 99 is dropped.
    assert nurse.metadata["evidence"] == [episodes[0].id, episodes[2].id, episodes[4].id]
    assert await stack.warm.get_embeddings("alice", [nurse.id])

    # The same answer again: nothing new stored, the identity already says it.
    again = await stack.runner.run_for_user("alice", compact=False)
    assert again.error is None and again.identities_updated == 0
    assert len(await stack.warm.get_memories("alice", memory_types=[MemoryType.SEMANTIC])) == 2
    assert (await stack.hot.get_identity("alice"))["family"] == ["has two children"]
    (row,) = [r for r in await stack.ledger.recent_runs(1) if r.run_id == report.run_id]
    assert row.user_id == "alice" and row.patterns_found == 3 and row.memories_processed >= 6


async def test_too_few_recent_episodes_make_no_model_call(make_stack):
    stack = make_stack()
    await remember(stack, "bob", NURSE_WEEK[:4], days_ago=1)
    await remember(stack, "bob", NURSE_WEEK, days_ago=20)  # outside the 7-day lookback
    report = await stack.runner.run_for_user("bob", compact=False)
    assert report.error is None and report.patterns_found == 0
    assert stack.fake.requests == []


async def test_unreadable_pattern_answer_changes_nothing(make_stack):
    stack = make_stack()
    await remember(stack, "carol", NURSE_WEEK)
    stack.fake.default = Reply('Sure! [{"category": "identity", "fact": "works as a nur')
    report = await stack.runner.run_for_user("carol", compact=False)
    assert report.patterns_found == 0 and "unreadable" in (report.error or "")
    assert await stack.warm.get_memories("carol", memory_types=[MemoryType.SEMANTIC]) == []
    assert await stack.hot.get_identity("carol") == {}


def test_pattern_parsing_is_forgiving_but_strict_about_items():
    memories = [Memory(f"m{i}", "u") for i in range(3)]
    wrapped = '{"patterns": [{"category": "Identity", "fact": "  lives   in Porto ", "confidence": "0.9", "evidence": [2, "1", true, -1]}]}'
    (p,) = parse_patterns(wrapped, memories)
    assert (p.category, p.fact, p.confidence) == ("identity", "lives in Porto", 0.9)
    assert p.evidence == [memories[2].id, memories[1].id]
    items = (
        '[{"fact": "x", "confidence": "high"}, {"confidence": 0.9}, {"fact": "y", "confidence": 3}]'
    )
    (only,) = parse_patterns(items, memories)
    assert only.fact == "y" and only.confidence == 1.0
    assert parse_patterns("[]", memories) == []
    assert parse_patterns("no idea", memories) is None


# -- contradictions ---------------------------------------------------------------

FACTS = [
    "My sister is called Ana",
    "My sister's name is Rita",
    "I work as a nurse at the city hospital",
    "My favourite food is ramen",
    "I have two cats named Miso and Tofu",
]


def test_average_linkage_clusters_only_close_vectors():
    vectors = [[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.95, 0.05], [0, 0, 1]]
    assert cluster_by_similarity(vectors, 0.8) == [[0, 1], [2, 3], [4]]
    assert cluster_by_similarity([], 0.8) == []


async def test_conflicting_facts_are_clustered_and_flagged_once(make_stack):
    # MiniLM puts these two at cosine ~0.64: the 0.8 default would not pair them.
    stack = make_stack(cortex_contradiction_similarity=0.6)
    ana, rita, *_ = await remember(stack, "dana", FACTS, memory_type=MemoryType.SEMANTIC)

    def answer(request: RecordedRequest) -> Reply:
        return Reply('[{"a": 0, "b": 1, "reason": "two names for one sister"}, {"a": 0, "b": 7}]')

    stack.fake.default = answer
    result = await stack.runner.contradictions.run("dana")

    assert result.flagged == 1 and result.failures == []
    assert len(stack.fake.requests) == 1  # one cluster of two; the rest are singletons
    prompt = prompt_of(stack.fake.requests[0])
    assert "Ana" in prompt and "Rita" in prompt
    assert not any(word in prompt for word in ("nurse", "ramen", "Miso"))
    (flag,) = await stack.ledger.list_contradictions("dana")
    assert {flag.memory_a, flag.memory_b} == {ana.id, rita.id}
    assert flag.reason == "two names for one sister" and flag.resolution == "pending"

    # Known pairs are not asked about again, and flagging is order-free.
    again = await stack.runner.contradictions.run("dana")
    assert again.clusters_skipped == 1 and len(stack.fake.requests) == 1
    assert await stack.ledger.flag_contradiction("dana", rita.id, ana.id, "x") == (flag.id, False)
    assert len(await stack.ledger.list_contradictions("dana", None)) == 1
    with pytest.raises(AccessDenied):  # another user's memories can't be flagged by dana
        await stack.ledger.flag_contradiction("eve", ana.id, rita.id, "x")


async def test_resolutions_supersede_as_specified_and_never_delete(make_stack):
    stack = make_stack()
    pairs = [
        await remember(stack, "frank", [a, b], memory_type=MemoryType.SEMANTIC)
        for a, b in [
            ("Lives in Porto", "Lives in Lisbon"),
            ("Drinks coffee black", "Drinks coffee with milk"),
            ("Has one brother", "Has two brothers"),
            ("Works as a nurse", "Works as a paramedic"),
        ]
    ]
    ids = []
    for a, b in pairs:
        cid, new = await stack.ledger.flag_contradiction("frank", a.id, b.id, "conflict")
        assert new
        ids.append(cid)
    stored = {c.id: c for c in await stack.ledger.list_contradictions("frank")}
    before = await count_rows(stack.engine)

    async def status(memory_id: str) -> MemoryStatus:
        memory = await stack.warm.get("frank", memory_id)
        assert memory is not None
        return memory.status

    with pytest.raises(AccessDenied):
        await stack.ledger.resolve("eve", ids[0], "a_wins")
    with pytest.raises(CortexError):
        await stack.ledger.resolve("frank", ids[0], "coin_toss")

    stack.clock.advance(5)
    done = await stack.ledger.resolve("frank", ids[0], "a_wins", note="moved back")
    c = stored[ids[0]]
    assert done.resolution == "a_wins" and done.note == "moved back"
    assert done.resolved_at == stack.clock()
    assert await status(c.memory_a) is MemoryStatus.ACTIVE
    assert await status(c.memory_b) is MemoryStatus.SUPERSEDED

    await stack.ledger.resolve("frank", ids[1], "b_wins")
    c = stored[ids[1]]
    assert await status(c.memory_a) is MemoryStatus.SUPERSEDED
    assert await status(c.memory_b) is MemoryStatus.ACTIVE

    await stack.ledger.resolve("frank", ids[2], "both_valid")
    c = stored[ids[2]]
    assert await status(c.memory_a) is MemoryStatus.ACTIVE
    assert await status(c.memory_b) is MemoryStatus.ACTIVE

    stack.fake.default = Reply("Works as a paramedic, previously as a nurse")
    with pytest.raises(CortexError):  # a merge needs the model and the embedder
        await stack.ledger.resolve("frank", ids[3], "merge")
    embedder = local_embedder()
    await stack.ledger.resolve(
        "frank", ids[3], "merge", model=stack.runner.model, embedder=embedder
    )
    c = stored[ids[3]]
    assert await status(c.memory_a) is MemoryStatus.SUPERSEDED
    assert await status(c.memory_b) is MemoryStatus.SUPERSEDED
    active = await stack.warm.get_memories("frank", memory_types=[MemoryType.SEMANTIC])
    (merged,) = [m for m in active if m.source == "contradiction_merge"]
    assert merged.content == "Works as a paramedic, previously as a nurse"
    assert merged.supersedes in (c.memory_a, c.memory_b)
    assert await stack.warm.get_embeddings("frank", [merged.id])

    assert await count_rows(stack.engine) == before + 1  # the merge added; nothing went
    assert await stack.ledger.list_contradictions("frank") == []
    resolved = await stack.ledger.list_contradictions("frank", None)
    assert sorted(r.resolution for r in resolved) == ["a_wins", "b_wins", "both_valid", "merge"]
    with pytest.raises(CortexError):  # settled is settled
        await stack.ledger.resolve("frank", ids[0], "b_wins")
    assert await stack.ledger.list_contradictions("eve", None) == []

    assert await stack.ledger.delete_user_data("frank") == 4
    assert await count_rows(stack.engine) == before + 1


# -- compaction -------------------------------------------------------------------


def _week_answer(fail_week: str | None = None) -> Callable[[RecordedRequest], Reply | ErrorReply]:
    def answer(request: RecordedRequest) -> Reply | ErrorReply:
        week = re.search(r"Week of ([A-Z][a-z]+ \d\d, \d{4})", prompt_of(request))
        if week is None:
            return Reply("[]")
        if week.group(1) == fail_week:
            return ErrorReply(400, "this week breaks the model")
        return Reply(f"A summary of the week of {week.group(1)}.")

    return answer


async def _old_weeks(stack: Stack, user_id: str) -> tuple[list[Memory], list[Memory], list[Memory]]:
    # Clock: Sunday 2026-11-22.  Weeks of Mon 2026-09-28 and Mon 2026-10-05 (43+ days ago).
    day = timedelta(days=1)
    week1 = await remember(
        stack, user_id, [f"september day {i}" for i in range(6)], days_ago=55, step=day
    )
    week2 = await remember(
        stack, user_id, [f"october day {i}" for i in range(6)], days_ago=48, step=day
    )
    recent = await remember(stack, user_id, ["yesterday", "today", "tonight"], days_ago=2)
    return week1, week2, recent


async def test_old_episodes_become_weekly_summaries_and_are_archived(make_stack):
    stack = make_stack()
    week1, week2, recent = await _old_weeks(stack, "gina")
    assert {m.created_at.date().isoformat() for m in week1[:1] + week2[:1]} == {
        "2026-09-28",
        "2026-10-05",
    }
    before = await count_rows(stack.engine)
    stack.fake.default = _week_answer()

    report = await stack.runner.run_for_user("gina", compact=True)

    assert report.error is None and report.memories_compacted == 12
    assert len(stack.fake.requests) == 2  # 3 recent episodes: too few for patterns
    summaries = await stack.warm.get_memories(
        "gina", memory_types=[MemoryType.SEMANTIC], newest_first=False
    )
    assert [s.content for s in summaries] == [
        "A summary of the week of September 28, 2026.",
        "A summary of the week of October 05, 2026.",
    ]
    for summary, week in zip(summaries, (week1, week2), strict=True):
        assert summary.source == "compaction"
        assert summary.metadata["week_start"] == f"{week[0].created_at:%Y-%m-%d}"
        assert summary.metadata["memories_compacted"] == 6
        assert summary.metadata["compacted_ids"] == sorted(m.id for m in week)
        assert summary.created_at == week[-1].created_at
        for m in week:
            kept = await stack.warm.get("gina", m.id)
            assert kept is not None and kept.status is MemoryStatus.ARCHIVED
    assert await stack.warm.get_embeddings("gina", [s.id for s in summaries])
    for m in recent:
        kept = await stack.warm.get("gina", m.id)
        assert kept is not None and kept.status is MemoryStatus.ACTIVE
    assert await count_rows(stack.engine) == before + 2  # archived, not deleted

    # The next scheduled run finds compaction not due yet: no summaries asked for.
    await stack.runner.run_for_user("gina")
    assert sum("Summarize this week" in prompt_of(r) for r in stack.fake.requests) == 2


async def test_a_week_the_model_fails_on_stays_active(make_stack):
    # 5: the left-over week alone is then enough for a later compaction.
    stack = make_stack(cortex_compact_min_memories=5)
    week1, week2, _ = await _old_weeks(stack, "hugo")
    stack.fake.default = _week_answer(fail_week="September 28, 2026")

    report = await stack.runner.run_for_user("hugo", compact=True)

    assert report.memories_compacted == 6
    assert "week 2026-09-28" in (report.error or "")
    for m in week1:
        kept = await stack.warm.get("hugo", m.id)
        assert kept is not None and kept.status is MemoryStatus.ACTIVE
    for m in week2:
        kept = await stack.warm.get("hugo", m.id)
        assert kept is not None and kept.status is MemoryStatus.ARCHIVED

    def summaries_asked() -> int:
        return sum("Summarize this week" in prompt_of(r) for r in stack.fake.requests)

    # Next time the model works: only the left-over week is summarised.
    stack.fake.default = _week_answer()
    stack.fake.requests.clear()
    report = await stack.runner.compact_user("hugo")
    assert report.error is None and report.memories_compacted == 6
    assert summaries_asked() == 1
    # ...and a consolidation run right after does not compact again (not due).
    await stack.runner.run_for_user("hugo")
    assert summaries_asked() == 1


# -- runner -----------------------------------------------------------------------


async def test_one_users_failure_is_logged_and_the_others_complete(make_stack):
    stack = make_stack()
    for user in ("ann", "bob", "cy"):
        await remember(stack, user, [f"{user} note {i}" for i in range(5)])

    def answer(request: RecordedRequest) -> Reply | ErrorReply:
        if "bob note" in prompt_of(request):
            return ErrorReply(400, "bob's request is refused")
        return Reply("[]")

    stack.fake.default = answer
    summary = await stack.runner.run_all()

    assert (summary.users, summary.succeeded, summary.failed) == (3, 2, 1)
    runs = {r.user_id: r for r in await stack.ledger.recent_runs(1)}
    assert set(runs) == {"ann", "bob", "cy"}
    assert runs["ann"].error is None and runs["cy"].error is None
    assert "patterns" in (runs["bob"].error or "")
    assert {r.run_id for r in runs.values()} == {summary.run_id}
    metrics = await stack.ledger.metrics(1)
    assert (metrics.users_processed, metrics.errors) == (3, 1)


async def test_no_more_users_at_once_than_configured(make_stack):
    stack = make_stack(cortex_max_concurrent_users=2)
    users = [f"user{i}" for i in range(5)]
    for user in users:
        await remember(stack, user, [f"{user} did thing {i}" for i in range(5)])
    in_flight = peak = 0

    async def answer(request: RecordedRequest) -> Reply:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.1)
        in_flight -= 1
        return Reply("[]")

    stack.fake.default = answer
    summary = await stack.runner.run_all(users, compact=False)
    assert summary.succeeded == 5 and len(stack.fake.requests) == 5
    assert peak == 2


async def test_scheduler_registers_interval_jobs_and_stops_cleanly(make_stack):
    stack = make_stack(cortex_cleanup_interval_hours=0.0002)  # 0.72 s
    for user in ("u1", "u2"):
        await stack.hot.add_working(Memory(f"{user} passing thought", user), ttl_s=60)
    await stack.hot.add_working(Memory("still fresh", "u1"), ttl_s=3600)
    stack.clock.advance(5)

    stack.runner.start()
    try:
        jobs = {job.id: job for job in stack.runner.scheduler.get_jobs()}
        assert set(jobs) == {"cortex_consolidation", "cortex_cleanup", "cortex_compaction"}
        for job_id, interval in [
            ("cortex_consolidation", timedelta(hours=6)),
            ("cortex_cleanup", timedelta(seconds=0.72)),
            ("cortex_compaction", timedelta(hours=168)),
        ]:
            job = jobs[job_id]
            assert isinstance(job.trigger, IntervalTrigger) and job.trigger.interval == interval
            assert job.max_instances == 1 and job.coalesce

        async def cleaned() -> list[RunReport]:
            return await stack.ledger.recent_runs(1, job=JOB_CLEANUP)

        await _eventually(cleaned, timeout=10)

        # A consolidation run is in flight (its model call never answers) at stop().
        await remember(stack, "u1", [f"u1 episode {i}" for i in range(5)])
        stack.fake.default = Hang()
        jobs["cortex_consolidation"].modify(next_run_time=datetime.now(UTC))
        await stack.fake.wait_for_requests(1, timeout=10)
    finally:
        await stack.runner.stop()
    await stack.fake.wait_for_disconnect(timeout=5)  # the cancelled call let go
    (sweep, *_) = await stack.ledger.recent_runs(1, job=JOB_CLEANUP)
    assert sweep.details == {"users": 2, "removed": 2} and sweep.user_id is None
    assert [m.content for m in await stack.hot.get_working("u1")] == ["still fresh"]
    assert stack.runner.scheduler is None
    leftover = [t for t in asyncio.all_tasks() if "run_coroutine_job" in repr(t.get_coro())]
    assert leftover == []


async def _eventually(probe: Callable[[], Awaitable[list[Any]]], *, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await probe():
        assert loop.time() < deadline, "the scheduled job never ran"
        await asyncio.sleep(0.1)


async def test_compaction_leaves_the_users_own_turns_alone(make_stack):
    """The episodic layer (issue 14) keeps what was said months ago: compaction
    summarises the extracted episodes, never the user's turns."""
    stack = make_stack()
    week1, week2, _ = await _old_weeks(stack, "gina")
    start = stack.clock() - timedelta(days=55)
    turns = [
        Memory(f"we walked the old town on day {i}", "gina", MemoryType.EPISODIC,
               created_at=start + timedelta(hours=i), source=TURN_SOURCE)
        for i in range(8)
    ]  # fmt: skip
    embedder = local_embedder()
    vectors = await embedder.embed_batch([m.content for m in turns])
    await stack.warm.add_many(list(zip(turns, vectors, strict=True)), model=embedder.model_id)
    stack.fake.default = _week_answer()

    report = await stack.runner.run_for_user("gina", compact=True)

    assert report.error is None and report.memories_compacted == 12
    compacted = set()
    for s in await stack.warm.get_memories("gina", memory_types=[MemoryType.SEMANTIC]):
        compacted |= set(s.metadata["compacted_ids"])
    assert compacted == {m.id for m in week1 + week2}
    for m in turns:
        kept = await stack.warm.get("gina", m.id)
        assert kept is not None and kept.status is MemoryStatus.ACTIVE
