"""Cortex in the conversation: memory in the prompt every turn, facts extracted after
it, corrections superseding old facts — real pipeline, real SDK, fake LLM server."""

from __future__ import annotations

import json

import pytest

from clara_core.cortex.extraction import TURN_SOURCE, MemoryExtractor
from clara_core.cortex.retrieval import EPISODE_KEY, RetrievalConfig
from clara_core.cortex.types import MemoryStatus
from clara_core.llm import types as llm
from clara_core.llm.types import Usage
from clara_core.pipeline.events import Done
from clara_core.pipeline.memory import ServiceTextModel, memory_section, remember_after_turn
from clara_core.pipeline.prompt import TurnContext
from clara_core.pipeline.turn import TurnInput
from tests.fakes.fake_llm import FakeLLM, Reply
from tests.integration.test_cortex_retrieval import _manager
from tests.support.cortex_manager import memory_manager
from tests.support.llm import KEY, build_runner, settings_for
from tools.registry import ToolContext

pytestmark = pytest.mark.storage

EXTRACTIONS = {
    "My sister is called Rita and she lives in Lisbon": {
        "facts": [
            {
                "content": "Their sister is called Rita",
                "type": "identity",
                "key": "sister",
                "value": "Rita",
                "corrects": None,
                "emotion": 0.3,
            },
            {
                "content": "Their sister lives in Lisbon",
                "type": "semantic",
                "key": None,
                "value": None,
                "corrects": None,
                "emotion": 0.2,
            },
        ]
    },
    "We did a food tour in Porto and the pastel de nata there was unreal": {
        "facts": [
            {
                "content": "They did a food tour in Porto",
                "type": "episodic",
                "key": None,
                "value": None,
                "corrects": None,
                "emotion": 0.6,
            },
        ]
    },
    "no, my sister is called Ana": {
        "facts": [
            {
                "content": "Their sister is called Ana",
                "type": "identity",
                "key": "sister",
                "value": "Ana",
                "corrects": "Their sister is called Rita",
                "emotion": 0.3,
            },
        ]
    },
}


VEGETARIAN = {
    "facts": [
        {
            "content": "They are not vegetarian",
            "type": "semantic",
            "key": None,
            "value": None,
            "corrects": None,
            "emotion": 0.1,
        }
    ]
}


def _is_extraction(request) -> bool:
    return "long-term memory" in json.dumps(request.body.get("messages", []))


def _answer(request):
    if _is_extraction(request):
        prompt = request.body["messages"][-1]["content"]
        if "Clara (before): Happy to help! Are you vegetarian?\nUser (user): no\n" in prompt:
            return Reply(text=json.dumps(VEGETARIAN))
        for said, facts in EXTRACTIONS.items():
            if f": {said}\n" in prompt:
                return Reply(text="```json\n" + json.dumps(facts) + "\n```")
        return Reply(text='{"facts": []}')
    return Reply(text="Got it.")


async def _turn(runner, text: str) -> Done:
    done = None
    async for event in runner.run(TurnInput(text=text, context=ToolContext(user_id="alice"))):
        if isinstance(event, Done):
            done = event
    assert done is not None
    await runner.drain()
    return done


async def test_memory_across_turns_with_a_correction(redis, engine, tmp_path):
    async with (
        FakeLLM(api_keys={KEY}, default=_answer) as fake,
        memory_manager(redis=redis, engine=engine, outbox_dir=tmp_path / "outbox") as cortex,
    ):
        runner, service = build_runner(settings_for(fake, "openai"))
        try:
            model = ServiceTextModel(service)
            runner.prompt.add_contributor(memory_section(cortex))
            runner.add_after_turn(remember_after_turn(cortex, MemoryExtractor(cortex, model)))

            await _turn(runner, "My sister is called Rita and she lives in Lisbon")
            assert await cortex.get_identity("alice") == {"sister": "Rita"}
            await _turn(runner, "no, my sister is called Ana")
            assert await cortex.get_identity("alice") == {"sister": "Ana"}

            extraction_calls = sum(_is_extraction(r) for r in fake.requests)
            await _turn(runner, "where does my sister live?")
            chat = [r for r in fake.requests if not _is_extraction(r)][-1]
            system = chat.body["messages"][0]["content"]
            assert "sister: Ana" in system and "Lisbon" in system
            assert "Rita" not in system  # the corrected fact is superseded everywhere

            await _turn(runner, "thanks!")
            # "where does my sister live?" was read for facts; "thanks!" was not.
            assert sum(_is_extraction(r) for r in fake.requests) == extraction_calls + 1
        finally:
            await service.aclose()


async def test_a_turn_answered_while_the_user_is_forgotten_stores_nothing(redis, engine, tmp_path):
    async with (
        FakeLLM(api_keys={KEY}, default=_answer) as fake,
        memory_manager(redis=redis, engine=engine, outbox_dir=tmp_path / "outbox") as cortex,
    ):
        _runner, service = build_runner(settings_for(fake, "openai"))
        try:
            hook = remember_after_turn(cortex, MemoryExtractor(cortex, ServiceTextModel(service)))
            ctx = TurnContext(
                ToolContext(user_id="alice"), "My sister is called Rita and she lives in Lisbon"
            )
            await memory_section(cortex)(ctx)  # the turn starts: its epoch is noted
            await cortex.forget("alice")  # ... and the user is forgotten mid-answer
            await hook(ctx, Done("Got it.", "m", None, Usage(), 0))
            assert not any(_is_extraction(r) for r in fake.requests)
            assert await cortex.warm.count("alice") == 0
        finally:
            await service.aclose()


PORTO = "We did a food tour in Porto and the pastel de nata there was unreal"
RITA = "My sister is called Rita and she lives in Lisbon"


async def test_the_users_words_are_kept_as_an_episode_beside_the_facts(redis, engine, tmp_path):
    """The episodic layer (CORTEX_EPISODES, on by default; issue 14): the user's own
    words are searchable beside the facts extracted from them, one of the two per
    exchange in a result, kept out of working memory, corrected with the facts, and
    forgotten with the user."""
    async with (
        FakeLLM(api_keys={KEY}, default=_answer) as fake,
        memory_manager(redis=redis, engine=engine, outbox_dir=tmp_path / "outbox") as cortex,
    ):
        _runner, service = build_runner(settings_for(fake, "openai"))
        try:
            extractor = MemoryExtractor(cortex, ServiceTextModel(service))
            stored = await extractor.remember_turn("alice", PORTO, "Sounds amazing!")
            memories = {m.id: m for m in await cortex.warm.get_memories("alice")}
            assert set(stored) == set(memories) and len(stored) == 2
            turn = next(m for m in memories.values() if m.source == TURN_SOURCE)
            fact = next(m for m in memories.values() if m.source == "extraction")
            assert turn.content == PORTO and fact.content == "They did a food tour in Porto"
            assert turn.metadata[EPISODE_KEY] == fact.metadata[EPISODE_KEY]
            # A reply about the pastry finds the exchange once, not as fact and turn.
            found = await cortex.search("alice", "what pastry did I love in Porto?", limit=5)
            assert [m.metadata.get(EPISODE_KEY) for m in found.memories].count(
                turn.metadata[EPISODE_KEY]
            ) == 1
            # The conversation is already in the prompt: working memory holds the fact only.
            assert [m.id for m in await cortex.hot.get_working("alice")] == [fact.id]

            # A correction supersedes the turn that said the corrected thing.
            await extractor.remember_turn("alice", RITA, "Noted!")
            rita_turn = next(
                m for m in await cortex.warm.get_memories("alice") if m.content == RITA
            )
            await extractor.remember_turn("alice", "no, my sister is called Ana", "Sorry!")
            await cortex.flush_outbox()
            after = await cortex.warm.get("alice", rita_turn.id)
            assert after is not None and after.status is MemoryStatus.SUPERSEDED
            ctx = await cortex.get_context("alice", "what is my sister called?")
            assert "Rita" not in ctx.to_prompt_string()

            await cortex.forget("alice")
            assert await cortex.warm.count("alice") == 0
        finally:
            await service.aclose()


async def test_without_episodes_only_facts_are_stored(redis, engine, tmp_path):
    async with FakeLLM(api_keys={KEY}, default=_answer) as fake:
        cortex = _manager(redis, engine, tmp_path, RetrievalConfig(episodes=False), "off")
        await cortex.initialize(watch=False)
        _runner, service = build_runner(settings_for(fake, "openai"))
        try:
            extractor = MemoryExtractor(cortex, ServiceTextModel(service))
            await extractor.remember_turn("alice", PORTO, "Sounds amazing!")
            [only] = await cortex.warm.get_memories("alice")
            assert only.source == "extraction" and EPISODE_KEY not in only.metadata
        finally:
            await service.aclose()
            await cortex.close()


async def test_a_bare_no_is_remembered_when_it_answers_claras_question(redis, engine, tmp_path):
    """ "Are you vegetarian?" "no": the answer means something only with the question,
    so the question goes to the extraction; a bare "no" after no question is small
    talk and is not read at all."""
    async with (
        FakeLLM(api_keys={KEY}, default=_answer) as fake,
        memory_manager(redis=redis, engine=engine, outbox_dir=tmp_path / "outbox") as cortex,
    ):
        runner, service = build_runner(settings_for(fake, "openai"))
        try:
            model = ServiceTextModel(service)
            runner.add_after_turn(remember_after_turn(cortex, MemoryExtractor(cortex, model)))
            asked = [
                llm.Message.text("user", "what should I cook tonight?"),
                llm.Message.text("assistant", "Happy to help! Are you vegetarian?"),
            ]
            context = ToolContext(user_id="alice")
            for history in ([], asked):
                async for _ in runner.run(TurnInput(text="no", context=context, history=history)):
                    pass
                await runner.drain()
            extractions = [r for r in fake.requests if _is_extraction(r)]
            assert len(extractions) == 1  # the answer to the question only
            stored = [m.content for m in await cortex.warm.get_memories("alice")]
            assert "They are not vegetarian" in stored
        finally:
            await service.aclose()
