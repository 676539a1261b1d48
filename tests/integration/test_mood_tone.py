"""MOOD_TONE_MODEL: the message's tone read by the low tier as structured output,
through the real LLM service and SDKs against the fake LLM server, on both wires;
the local heuristic stands in whenever the model is slow, failing or unreadable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from clara_core.companion.events import stimulus_from_text
from clara_core.companion.hormones import CORTISOL, HormoneModel
from clara_core.companion.sentiment import ANSWER, ModelSentiment
from clara_core.pipeline.mood import MoodService
from tests.fakes.fake_llm import ErrorReply, FakeLLM, Hang, RecordedRequest, Reply
from tests.support.clock import Clock
from tests.support.cortex import text_model_for
from tests.support.llm import KEY

pytestmark = pytest.mark.parametrize("provider", ("openai", "anthropic"))

#: Polite words, hostile meaning: the heuristic reads it as warm, a model does not.
SARCASM = "Oh great, thank you SO much for deleting my notes. Wonderful work."
TONE = {"sentiment": -0.8, "intensity": 0.9, "praise": False, "conflict": True}


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with FakeLLM(api_keys={KEY}) as server:
        yield server


def schema_name(request: RecordedRequest) -> str | None:
    body = request.body
    if request.wire == "openai":
        return ((body.get("response_format") or {}).get("json_schema") or {}).get("name")
    choice = body.get("tool_choice") or {}
    return choice.get("name") if choice.get("type") == "tool" else None


async def test_the_model_reads_what_the_heuristic_misses(fake, provider):
    fake.enqueue(Reply(json.dumps(TONE)))
    text_model, service = text_model_for(fake, provider)
    try:
        stimulus = await ModelSentiment(text_model).stimulus(SARCASM)
    finally:
        await service.aclose()
    assert stimulus_from_text(SARCASM).sentiment > 0  # the heuristic is fooled
    assert stimulus.sentiment == -0.8 and stimulus.intensity == 0.9 and stimulus.conflict
    [request] = fake.requests
    assert request.outcome == "completed", request.error
    assert schema_name(request) == ANSWER.name  # structured output on this wire
    assert SARCASM in json.dumps(request.body)


async def test_it_moves_the_mood_the_right_way(fake, provider):
    fake.enqueue(Reply(json.dumps(TONE)))
    text_model, service = text_model_for(fake, provider)
    model = HormoneModel("UTC")
    clock = Clock(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))
    try:
        read = MoodService(model, None, clock, sentiment=ModelSentiment(text_model))
        state = await read.on_message("channel:1", SARCASM, user_id="a", owner=None)
    finally:
        await service.aclose()
    naive = await MoodService(model, None, clock).on_message(
        "channel:1", SARCASM, user_id="a", owner=None
    )
    assert state.levels[CORTISOL] > naive.levels[CORTISOL] + 0.1


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(Reply("I'd say it's fairly negative."), id="prose"),
        pytest.param(Reply('{"sentiment": "very", "intensity": null}'), id="wrong-types"),
        pytest.param(ErrorReply(500, "boom"), id="server-error"),
        pytest.param(Hang(), id="too-slow"),
    ],
)
async def test_the_heuristic_stands_in_when_the_model_fails(fake, provider, answer):
    fake.enqueue(answer, answer, answer, answer)  # retries, if any, see the same
    text_model, service = text_model_for(fake, provider)
    try:
        stimulus = await ModelSentiment(text_model, timeout=1.0).stimulus(SARCASM)
    finally:
        await service.aclose()
    assert stimulus == stimulus_from_text(SARCASM)
