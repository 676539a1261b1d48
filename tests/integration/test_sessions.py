"""Sessions on real Postgres with a controllable clock, and LLM summaries."""

from __future__ import annotations

import pytest

from storage.sessions import SessionStore
from tests.fakes.fake_llm import ErrorReply, FakeLLM, Reply
from tests.support.clock import Clock
from tests.support.llm import KEY, build_runner, settings_for

pytestmark = pytest.mark.storage


async def test_idle_timeout_starts_a_new_session_from_the_last_one(engine):
    clock = Clock()
    store = SessionStore(engine, clock=clock)
    first = await store.get_or_start("u1", "dm:u1", project="Default Project", idle_minutes=30)
    assert first.started_new and first.snapshot is None
    await store.add_messages(
        first.id, [("user", "u1", "my sister is Ana", "m1"), ("assistant", "clara", "Nice!", None)]
    )

    clock.advance(29)
    again = await store.get_or_start("u1", "dm:u1", project="Default Project", idle_minutes=30)
    assert again.id == first.id and not again.started_new

    clock.advance(31)  # 31 minutes after the last message
    await store.set_summary(first.id, "- talked about Ana, the user's sister")
    later = await store.get_or_start("u1", "dm:u1", project="Default Project", idle_minutes=30)
    assert later.started_new and later.previous_id == first.id
    assert later.snapshot == "- talked about Ana, the user's sister"

    other_context = await store.get_or_start(
        "u1", "discord:42", project="Default Project", idle_minutes=30
    )
    assert other_context.id not in (first.id, later.id)


async def test_without_a_summary_the_last_messages_are_the_snapshot(engine):
    clock = Clock()
    store = SessionStore(engine, clock=clock)
    s1 = await store.get_or_start("u2", "dm:u2", project="P", idle_minutes=30)
    await store.add_messages(s1.id, [("user", "u2", "remember the milk", None)])
    clock.advance(45)
    s2 = await store.get_or_start("u2", "dm:u2", project="P", idle_minutes=30)
    assert s2.snapshot == "user: remember the milk"


async def test_summariser_writes_summaries_of_idle_sessions(engine):
    from clara_core.pipeline.summaries import SessionSummarizer

    clock = Clock()
    store = SessionStore(engine, clock=clock)
    s = await store.get_or_start("u3", "dm:u3", project="P", idle_minutes=30)
    await store.add_messages(s.id, [("user", "u3", "I start my new job on Monday", None)])
    async with FakeLLM(api_keys={KEY}) as fake:
        _, service = build_runner(settings_for(fake, "openai", custom_openai_model_low="small"))
        summariser = SessionSummarizer(store, service, idle_minutes=30)
        try:
            assert await summariser.run_once() == 0  # not idle yet
            clock.advance(40)
            fake.enqueue(ErrorReply(503), ErrorReply(503), ErrorReply(503))
            assert await summariser.run_once() == 0  # provider down: retried later, no crash
            fake.enqueue(Reply("- new job starts Monday"))
            assert await summariser.run_once() == 1
        finally:
            await service.aclose()
        assert fake.requests[-1].model == "small" and "new job" in str(fake.requests[-1].messages)
    assert await store.idle_unsummarised(30) == []
    nxt = await store.get_or_start("u3", "dm:u3", project="P", idle_minutes=30)
    assert nxt.snapshot == "- new job starts Monday"
