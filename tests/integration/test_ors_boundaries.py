"""Stated boundaries through the runner: stored per user on real PostgreSQL, the
hard ones (hours, days) enforced by the rules whatever the model says, every one
in the model's context in the user's words, and gone with the user's data."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import time, timedelta

import pytest

from clara_core.companion.boundaries import Boundary
from clara_core.companion.ors_context import ANSWER, SUMMARY_ANSWER
from clara_core.pipeline.proactive import ModelDecider, OrsRunner, OutboxSender
from storage.proactive import ProactiveStore
from storage.sessions import SessionStore
from tests.fakes.fake_llm import FakeLLM, RecordedRequest, Reply
from tests.support.clock import Clock
from tests.support.cortex import text_model_for
from tests.support.llm import KEY
from tests.support.ors import RULES, T0, answer

pytestmark = pytest.mark.storage


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with FakeLLM(api_keys={KEY}) as server:
        yield server


def schema_of(request: RecordedRequest) -> str | None:
    return (((request.json or {}).get("response_format") or {}).get("json_schema") or {}).get(
        "name"
    )


def decisions(fake: FakeLLM) -> list[RecordedRequest]:
    return [r for r in fake.requests if schema_of(r) == ANSWER.name]


async def test_a_week_with_an_eager_model_respects_the_stated_hours_and_days(engine, fake):
    clock = Clock(T0)  # Sunday noon, Berlin
    store = ProactiveStore(engine)
    text_model, service = text_model_for(fake, "openai")
    sender = OutboxSender(limit=10_000)
    runner = OrsRunner(store, ModelDecider(text_model), sender, RULES, clock)
    fake.default = answer("speak", "always", "hi!")
    try:
        await runner.saw_message("u1", None, is_dm=True)
        for words in ("no weekends", "not before 10:00", "not after 12:00", "only about work"):
            await store.add_boundary("u1", Boundary.parse(words).to_json(), clock())
        end = T0 + timedelta(days=7)
        while clock() < end:
            clock.advance(10)
            if clock().minute == 0 and clock().hour % 6 == 0:
                await runner.saw_message("u1", None, is_dm=True)  # keeps answering
            await runner.run_pass()
    finally:
        await service.aclose()
    sent = await store.messages("u1")
    assert len(sent) >= 5  # Monday to Friday, late mornings
    for m in sent:
        local = m.at.astimezone(RULES.tz)
        assert local.weekday() < 5 and time(10) <= local.time() < time(12), local
    # No model call is spent while the user's own hours forbid a message...
    asked = decisions(fake)
    assert asked and len(asked) < 7 * 6  # far fewer than a check every ten minutes
    # ...and what the model is shown holds every boundary in the user's words.
    assert (
        "Boundaries the user stated: no weekends; not before 10:00; not after 12:00; only about work"
        in str(asked[-1].json)
    )
    reasons = {reason for _, _, reason in await store.assessments("u1")}
    assert any("outside the times the user allows" in r for r in reasons)


async def test_boundaries_are_listed_replaced_removed_and_forgotten(engine):
    store = ProactiveStore(engine)
    # A user who never wrote to Clara can state one all the same.
    items = await store.add_boundary("u9", Boundary.parse("no weekends").to_json(), T0)
    assert [Boundary.from_json(i).describe() for i in items] == ["not on weekends"]
    await store.add_boundary("u9", Boundary.parse("only about work").to_json(), T0)
    items = await store.add_boundary("u9", Boundary.parse("No Weekends").to_json(), T0)
    assert [i["text"] for i in items] == ["only about work", "No Weekends"]  # same words: replaced
    for n in range(12):
        items = await store.add_boundary("u9", {"text": f"b{n}"}, T0, limit=10)
    assert len(items) == 10 and items[-1]["text"] == "b11"  # bounded, oldest dropped
    assert [i["text"] for i in await store.remove_boundary("u9", 0)][:1] == ["b3"]
    assert await store.remove_boundary("u9", None) == []
    await store.add_boundary("u9", Boundary.parse("not before 10:00").to_json(), T0)
    await store.add_boundary("u8", {"text": "someone else's"}, T0)
    assert await store.delete_user_data("u9") >= 1
    assert await store.pattern("u9") is None
    assert [b["text"] for b in (await store.pattern("u8")).boundaries] == ["someone else's"]


async def test_a_boundary_said_in_conversation_is_kept_and_enforced(engine, fake):
    """ "Please don't message me before 10am" in a chat: the idle summary (a model
    call ORS makes anyway) names it, it is stored like one set with /clara boundary
    (so the user sees it and can remove it) and the rules enforce its hours."""
    clock = Clock(T0)
    sessions = SessionStore(engine, clock=clock)
    info = await sessions.get_or_start("u1", "dm:u1", project="default", idle_minutes=30)
    await sessions.add_messages(
        info.id,
        [
            ("user", "u1", "love our chats, but please don't message me before 10am", "m1"),
            ("assistant", "clara", "Of course, never before 10.", None),
        ],
    )

    def script(request: RecordedRequest) -> Reply:
        if schema_of(request) == SUMMARY_ANSWER.name:
            assert "don't message me before 10am" in str(request.json)
            return Reply(
                json.dumps(
                    {
                        "summary": "Chatted; asked for no messages before 10.",
                        "open_threads": [],
                        "follow_ups": [],
                        "contact_boundaries": ["not before 10am"],
                    }
                )
            )
        return answer("speak", "eager", "good morning!")

    fake.default = script
    text_model, service = text_model_for(fake, "openai")
    sender = OutboxSender()
    store = ProactiveStore(engine)
    runner = OrsRunner(
        store,
        ModelDecider(text_model),
        sender,
        RULES,
        clock,
        idle_timeout=timedelta(minutes=30),
        summarizer=text_model,
    )
    try:
        await runner.saw_message("u1", None, is_dm=True)
        clock.advance(40)
        await runner.run_pass()  # idle: summarised, the boundary filed
        [stored] = (await store.pattern("u1")).boundaries
        assert Boundary.from_json(stored).describe() == "not before 10:00"
        # Monday 07:00 Berlin onwards (quiet hours end at 08:00): nothing before 10:00.
        clock.now = T0 + timedelta(hours=19)
        while clock() < T0 + timedelta(hours=24):
            clock.advance(5)
            await runner.run_pass()
    finally:
        await service.aclose()
    sent = await store.messages("u1")
    assert sent and all(m.at.astimezone(RULES.tz).time() >= time(10) for m in sent)
