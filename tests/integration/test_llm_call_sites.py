"""Every request Clara makes, on both wire APIs, through the real SDKs against the
fake LLM server (which validates each body as the real API does and rejects unknown
Anthropic fields such as ``temperature``).

Call sites: chat, chat with tools, auto tier selection, memory extraction, emotion
scoring, session summaries, consolidation (patterns, contradictions).  The JSON
prompts use structured output where the wire has it (OpenAI ``response_format``
json_schema, Anthropic forced tool use) and are still read when a model or proxy
ignores it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from clara_core.config import load_settings
from clara_core.cortex.consolidation import ConsolidationLedger, ConsolidationRunner
from clara_core.cortex.emotion import LLMEmotionScorer
from clara_core.cortex.extraction import FACTS_ANSWER, MemoryExtractor
from clara_core.cortex.hot import HotStore
from clara_core.cortex.types import Memory, MemoryType
from clara_core.cortex.warm import WarmStore
from clara_core.llm.service import ChatRequest
from clara_core.llm.types import Completion, Message, OutputSchema, TextDelta
from clara_core.pipeline.events import Done, TierChosen
from clara_core.pipeline.memory import ServiceTextModel, memory_section, remember_after_turn
from clara_core.pipeline.summaries import SessionSummarizer
from clara_core.pipeline.turn import TurnInput
from storage.sessions import SessionStore
from tests.fakes.fake_llm import ErrorReply, FakeLLM, RecordedRequest, Reply, ToolCall
from tests.support.clock import Clock
from tests.support.cortex import local_embedder, text_model_for
from tests.support.cortex_manager import memory_manager
from tests.support.llm import KEY, build_runner, collect, settings_for, turn
from tools.builtin import clock_tool
from tools.registry import ToolContext, ToolRegistry

#: One provider per wire API.
WIRES = ("openai", "anthropic")
pytestmark = pytest.mark.parametrize("provider", WIRES)


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with FakeLLM(api_keys={KEY}) as server:
        yield server


def assert_all_accepted(fake: FakeLLM, provider: str) -> None:
    """Every request reached the script: none was refused by the API's validation."""
    assert fake.requests, "no request was made"
    assert [(r.wire, r.outcome) for r in fake.requests] == [
        (provider, "completed") for _ in fake.requests
    ], [r.error for r in fake.requests]


def structured_name(request: RecordedRequest) -> str | None:
    """Which structured-output schema the request asks for, in its wire's form."""
    body = request.body
    if request.wire == "openai":
        spec = (body.get("response_format") or {}).get("json_schema") or {}
        return spec.get("name")
    choice = body.get("tool_choice") or {}
    return choice.get("name") if choice.get("type") == "tool" else None


# -- the conversation ------------------------------------------------------------------


async def test_chat(fake, provider):
    fake.enqueue(Reply("Hello!"))
    runner, service = build_runner(settings_for(fake, provider))
    try:
        events = await collect(runner, turn("hi"))
    finally:
        await service.aclose()
    assert events[-1] == Done("Hello!", events[-1].model, None, events[-1].usage, 0)
    assert_all_accepted(fake, provider)


async def test_chat_with_tools(fake, provider):
    fake.enqueue(
        Reply(tool_calls=[ToolCall("get_current_time", {}, id="call_1")]),
        Reply("It is 09:30 in Lisbon."),
    )
    tools = ToolRegistry()
    tools.register(clock_tool("Europe/Lisbon"))
    runner, service = build_runner(settings_for(fake, provider), tools)
    try:
        events = await collect(runner, turn("what time is it?"))
    finally:
        await service.aclose()
    done = events[-1]
    assert isinstance(done, Done) and done.tool_steps == 1
    assert done.text.endswith("It is 09:30 in Lisbon.")
    assert_all_accepted(fake, provider)
    assert all(r.tools for r in fake.requests)


async def test_auto_tier_selection(fake, provider):
    """AUTO_TIER_SELECTION: the low model classifies, then the chosen tier answers.
    (On the Anthropic wire this crashed with a TypeError over ``temperature``.)"""
    fake.enqueue(Reply("HIGH"), Reply("A long answer."))
    runner, service = build_runner(settings_for(fake, provider, auto_tier_selection=True))
    try:
        events = await collect(runner, turn("design me a compiler"))
    finally:
        await service.aclose()
    chosen = next(e for e in events if isinstance(e, TierChosen))
    assert chosen.tier == "high" and chosen.auto
    assert events[-1].text == "A long answer."
    assert_all_accepted(fake, provider)
    classify = fake.requests[0]
    assert not classify.stream and classify.body["max_tokens"] == 16
    # The wish for temperature 0 is sent only where the wire takes it.
    assert ("temperature" in classify.body) is (provider == "openai")


# -- memory ----------------------------------------------------------------------------

FULL_FACTS = {
    "facts": [
        {
            "content": "Their sister is called Rita",
            "type": "identity",
            "key": "sister",
            "value": "Rita",
            "corrects": None,
            "emotion": 0.3,
        }
    ]
}


def _extraction(request: RecordedRequest) -> bool:
    return "long-term memory" in json.dumps(request.body)


@pytest.mark.storage
async def test_memory_extraction(fake, provider, redis, engine, tmp_path):
    """A fact told on either wire is remembered: the extraction request asks for the
    facts' JSON through structured output, and the answer is stored, in the full
    shape or as plain strings; a model that ignores the structured output and
    answers in prose is read too."""
    answers = iter(
        [
            Reply(json.dumps(FULL_FACTS)),
            Reply('{"facts": ["Their dog is called Rex"]}'),
            Reply(
                'Sure! ```json\n{"facts": ["They live in Porto"]}\n```',
                honour_format=False,
            ),
        ]
    )

    def answer(request: RecordedRequest) -> Reply:
        return next(answers) if _extraction(request) else Reply("Noted.")

    fake.default = answer
    async with memory_manager(redis=redis, engine=engine, outbox_dir=tmp_path / "out") as cortex:
        runner, service = build_runner(settings_for(fake, provider))
        try:
            runner.prompt.add_contributor(memory_section(cortex))
            runner.add_after_turn(
                remember_after_turn(cortex, MemoryExtractor(cortex, ServiceTextModel(service)))
            )
            for said in ("My sister is Rita", "My dog is Rex", "I live in Porto"):
                async for _ in runner.run(
                    TurnInput(text=said, context=ToolContext(user_id="alice"))
                ):
                    pass
                await runner.drain()
            assert await cortex.get_identity("alice") == {"sister": "Rita"}
            stored = await cortex.warm.get_memories("alice")
        finally:
            await service.aclose()
    assert {m.content for m in stored} >= {"Their dog is called Rex", "They live in Porto"}
    assert_all_accepted(fake, provider)
    extractions = [r for r in fake.requests if _extraction(r)]
    assert len(extractions) == 3
    assert {structured_name(r) for r in extractions} == {FACTS_ANSWER.name}
    assert all(("temperature" in r.body) is (provider == "openai") for r in extractions)


async def test_emotion_scoring(fake, provider):
    fake.enqueue(Reply("1. 0.1\n2. 0.9"))
    model, service = text_model_for(fake, provider)
    try:
        scores = await LLMEmotionScorer(model).score_batch(["Had coffee.", "Our son was born."])
    finally:
        await service.aclose()
    # From the model, not from the heuristic fallback.
    assert scores == [pytest.approx(0.1), pytest.approx(0.9)]
    assert_all_accepted(fake, provider)


@pytest.mark.storage
async def test_session_summary(fake, provider, engine):
    clock = Clock()
    store = SessionStore(engine, clock=clock)
    session = await store.get_or_start("u1", "dm:u1", project="P", idle_minutes=30)
    await store.add_messages(session.id, [("user", "u1", "I start my new job on Monday", None)])
    clock.advance(40)
    fake.enqueue(Reply("- new job starts Monday"))
    _, service = build_runner(settings_for(fake, provider))
    try:
        assert await SessionSummarizer(store, service, idle_minutes=30).run_once() == 1
    finally:
        await service.aclose()
    assert_all_accepted(fake, provider)
    nxt = await store.get_or_start("u1", "dm:u1", project="P", idle_minutes=30)
    assert nxt.snapshot == "- new job starts Monday"


# -- consolidation ---------------------------------------------------------------------

NURSE_WEEK = [
    "Worked a long night shift at the city hospital again",
    "A patient on my ward thanked me today, felt good about being a nurse",
    "Charge nurse asked me to cover another night shift",
    "Tired after the hospital, but the ward was calm",
    "Had ramen after the shift, the usual place",
]


@pytest.fixture
async def consolidation(
    fake, provider, engine, redis
) -> AsyncIterator[Callable[..., ConsolidationRunner]]:
    services = []

    def make(clock: Clock, **overrides: Any) -> ConsolidationRunner:
        model, service = text_model_for(fake, provider)
        services.append(service)
        return ConsolidationRunner(
            WarmStore(engine),
            HotStore(redis, clock=clock),
            ConsolidationLedger(engine, clock=clock),
            model,
            local_embedder(),
            load_settings(env_file=None, **overrides),
            clock=clock,
        )

    try:
        yield make
    finally:
        for service in services:
            await service.aclose()


async def _remember(
    runner: ConsolidationRunner, clock: Clock, user: str, texts: list[str], kind: MemoryType
) -> list[Memory]:
    embedder = local_embedder()
    start = clock() - timedelta(days=1)
    memories = [
        Memory(t, user, kind, created_at=start + timedelta(hours=i)) for i, t in enumerate(texts)
    ]
    vectors = await embedder.embed_batch(texts)
    await runner.warm.add_many(list(zip(memories, vectors, strict=True)), model=embedder.model_id)
    return memories


@pytest.mark.storage
async def test_consolidation_patterns(fake, provider, consolidation):
    clock = Clock()
    runner = consolidation(clock, cortex_pattern_min_memories=3)
    await _remember(runner, clock, "alice", NURSE_WEEK, MemoryType.EPISODIC)
    fake.default = Reply(
        json.dumps(
            {
                "patterns": [
                    {
                        "category": "identity",
                        "fact": "works as a nurse at the city hospital",
                        "confidence": 0.9,
                        "evidence": [0, 1, 2],
                    }
                ]
            }
        )
    )
    result = await runner.patterns.run("alice")
    assert result.parsed and result.found == 1 and result.stored == 1
    assert_all_accepted(fake, provider)
    assert structured_name(fake.requests[0]) == "report_patterns"
    identity = await runner.hot.get_identity("alice")
    assert identity["occupation"] == "works as a nurse at the city hospital"


@pytest.mark.storage
async def test_consolidation_contradictions(fake, provider, consolidation):
    clock = Clock()
    runner = consolidation(clock, cortex_contradiction_similarity=0.6)
    ana, rita = await _remember(
        runner,
        clock,
        "dana",
        ["My sister is called Ana", "My sister's name is Rita"],
        MemoryType.SEMANTIC,
    )
    fake.default = Reply(
        json.dumps({"contradictions": [{"a": 0, "b": 1, "reason": "two names for one sister"}]})
    )
    result = await runner.contradictions.run("dana")
    assert result.flagged == 1 and result.failures == []
    assert_all_accepted(fake, provider)
    assert structured_name(fake.requests[0]) == "report_contradictions"
    (flag,) = await runner.ledger.list_contradictions("dana")
    assert {flag.memory_a, flag.memory_b} == {ana.id, rita.id}


# -- a server that refuses structured output ---------------------------------------------


async def test_a_refused_structured_output_is_asked_again_with_the_prompt_alone(fake, provider):
    """A proxy that passes neither ``response_format`` nor ``tool_choice`` on answers
    400: the request is repeated without it, and that route is not asked for it
    again; the answer is still read."""
    fake.enqueue(
        ErrorReply(400, "structured output is not supported by this proxy"),
        Reply('Here: {"facts": ["Their cat is Miso"]}'),
        Reply('{"facts": []}'),
    )
    model, service = text_model_for(fake, provider)
    extractor = MemoryExtractor(None, model)  # type: ignore[arg-type]  # extract() reads no store
    try:
        facts = await extractor.extract({}, "My cat is Miso", "Cute!")
        again = await extractor.extract({}, "hello", "Hi!")
    finally:
        await service.aclose()
    assert [f.content for f in facts] == ["Their cat is Miso"] and again == []
    first, second, third = fake.requests
    assert structured_name(first) == FACTS_ANSWER.name
    assert structured_name(second) is None and structured_name(third) is None
    assert "response_format" not in second.body and "tools" not in second.body


async def test_complete_passes_the_schema_answer_back_as_text(fake, provider):
    """``LLMService.complete`` with an output schema returns the JSON as text on both
    wires (on Anthropic it arrives as the forced tool's input, not as a tool call)."""
    fake.enqueue(Reply('{"facts": ["likes tea"]}'))
    _, service = text_model_for(fake, provider)
    try:
        completion = await service.complete(
            ChatRequest(
                [Message.text("user", "what do I like?")],
                output_schema=OutputSchema(FACTS_ANSWER.name, FACTS_ANSWER.schema),
                max_tokens=50,
            ),
            tier="low",
        )
    finally:
        await service.aclose()
    assert json.loads(completion.text) == {"facts": ["likes tea"]}
    assert completion.tool_calls == [] and completion.finish_reason == "stop"
    assert_all_accepted(fake, provider)


async def test_stream_passes_the_schema_answer_back_as_text(fake, provider):
    fake.enqueue(Reply('{"facts": ["likes tea"]}'))
    _, service = text_model_for(fake, provider)
    deltas: list[str] = []
    completion = None
    try:
        async for event in service.stream(
            ChatRequest(
                [Message.text("user", "what do I like?")],
                output_schema=OutputSchema(FACTS_ANSWER.name, FACTS_ANSWER.schema),
            ),
            tier=None,
        ):
            if isinstance(event, TextDelta):
                deltas.append(event.text)
            elif isinstance(event, Completion):
                completion = event
    finally:
        await service.aclose()
    assert completion is not None and completion.tool_calls == []
    assert json.loads("".join(deltas)) == json.loads(completion.text) == {"facts": ["likes tea"]}
    assert completion.finish_reason == "stop"
    assert structured_name(fake.requests[0]) == FACTS_ANSWER.name
    assert_all_accepted(fake, provider)
