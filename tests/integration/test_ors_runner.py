"""The Organic Response System end to end below the adapter: real PostgreSQL, the
real LLM service and SDK against the scripted fake LLM server (structured output),
a controllable clock.  The fake's answers are scripted per request from the prompt
ORS actually sent, so what the model 'sees' decides, as in production."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from clara_core.companion.ors_context import ANSWER, SUMMARY_ANSWER
from clara_core.pipeline.proactive import ModelDecider, OrsRunner, OutboxSender
from storage.db import create_engine
from storage.proactive import ProactiveStore
from storage.sessions import SessionStore
from tests.fakes.fake_llm import FakeLLM, RecordedRequest, Reply
from tests.support.clock import Clock
from tests.support.cortex import text_model_for
from tests.support.llm import KEY
from tests.support.ors import RULES, T0, answer

pytestmark = pytest.mark.storage


def prompt(request: RecordedRequest) -> str:
    return json.dumps(request.body)


def due_section(request: RecordedRequest) -> str:
    text = prompt(request)
    start = text.index("Notes due now:")
    end = text.find("Notes for later", start)
    return text[start : end if end >= 0 else len(text)]


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with FakeLLM(api_keys={KEY}) as server:
        yield server


@pytest.fixture
async def ors(engine, fake):
    clock = Clock(T0)
    text_model, service = text_model_for(fake, "openai")
    sender = OutboxSender(limit=100_000)
    runner = OrsRunner(ProactiveStore(engine), ModelDecider(text_model), sender, RULES, clock)
    try:
        yield runner, clock, sender
    finally:
        await service.aclose()


async def test_the_decision_is_asked_as_structured_output(ors, fake):
    runner, clock, sender = ors
    fake.default = answer("speak", "checking in", "Hey, how did the move go?")
    await runner.saw_message("u1", None, is_dm=True)
    clock.advance(20)
    report = await runner.run_pass()
    assert (report.assessed, report.spoke) == (1, 1)
    [request] = fake.requests
    assert request.body["response_format"]["json_schema"]["name"] == ANSWER.name
    assert list(sender.sent) == [("u1", None, "Hey, how did the move go?")]
    [msg] = await runner.store.messages("u1")
    assert (msg.status, msg.reason) == ("sent", "checking in")


async def test_a_note_decays_and_then_no_longer_reaches_the_model(ors, fake):
    runner, clock, _ = ors
    fake.default = answer("wait")
    await runner.saw_message("u1", None, is_dm=True)
    await runner.store.add_note(
        "u1", kind="observation", text="seemed stressed about rent", relevance=0.8, created_at=T0
    )
    seen: list[str] = []
    for days in (0, 3, 6):  # at midday, outside quiet hours
        clock.now = T0 + timedelta(days=days, hours=1)
        await runner.saw_message("u1", None, is_dm=True)  # stays active
        clock.advance(16)
        await runner.run_pass()
        seen.append(due_section(fake.requests[-1]))
    assert "relevance 0.79" in seen[0]  # an hour and a quarter old
    assert "relevance 0.45" in seen[1]  # 0.8 x (1 - 73.3 h / 168 h)
    clock.now = T0 + timedelta(days=7, hours=2)
    await runner.saw_message("u1", None, is_dm=True)
    clock.advance(16)
    await runner.run_pass()
    assert "rent" not in prompt(fake.requests[-1])  # fully decayed: gone
    assert "relevance 0.11" in seen[2]  # 0.8 x (1 - 145.3 h / 168 h)


async def test_interview_tomorrow_at_10_leads_to_a_speak_after_it_not_before(ors, fake):
    runner, clock, sender = ors
    # Sunday 12:00 Berlin: "interview tomorrow at 10" (Monday 10:00 Berlin = 09:00 UTC).
    interview = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    await runner.saw_message("u1", None, is_dm=True)
    await runner.store.set_summary(
        "u1", "Nervous: job interview tomorrow at 10.", ["the interview"], T0
    )

    filed = False

    def decide(request: RecordedRequest) -> Reply:
        nonlocal filed
        if "interview" in due_section(request):
            return answer("speak", "the interview is over", "How did the interview go?")
        if not filed:  # the model files the event once, to ask after it
            filed = True
            return answer(
                "think",
                "ask after the interview",
                kind="event",
                text="job interview Monday 10:00",
                relevance=0.9,
                not_before=(interview + timedelta(hours=1)).isoformat(),
            )
        return answer("wait", "nothing yet")

    fake.default = decide
    sent_at: list[datetime] = []
    end = interview + timedelta(hours=8)
    while clock() < end:
        clock.advance(5)
        before = len(sender.sent)
        await runner.run_pass()
        if len(sender.sent) > before:
            sent_at.append(clock())
    assert len(sent_at) == 1, sent_at
    assert (
        interview + timedelta(hours=1) <= sent_at[0] <= interview + timedelta(hours=1, minutes=10)
    )
    assert sender.sent[0][2] == "How did the interview go?"
    # The note was used: not a reason a second time.
    assert await runner.store.notes("u1", clock()) == []


async def test_a_simulated_week_never_breaks_the_gap_quiet_hours_or_opt_outs(ors, fake):
    runner, clock, sender = ors
    fake.default = answer("speak", "always", "hi!")  # an eager model: the rules hold it back
    for i in range(6):
        await runner.saw_message(f"dm{i}", None, is_dm=True)
    await runner.saw_message("chan", "555", is_dm=False)  # never in DMs: off by default
    await runner.saw_message("out", None, is_dm=True)
    await runner.store.set_opt_in("out", False, clock())
    await runner.saw_message("in", "777", is_dm=False)
    await runner.store.set_opt_in("in", True, clock())
    end = T0 + timedelta(days=7)
    while clock() < end:
        clock.advance(10)
        if clock().minute == 0 and clock().hour % 8 == 0:  # users keep writing now and then
            for u in ("dm0", "dm1", "dm2", "dm3", "dm4", "dm5", "in", "out", "chan"):
                await runner.saw_message(u, "777" if u == "in" else "555", is_dm=u[:2] == "dm")
        await runner.run_pass()
    messages = await runner.store.messages()
    by_user: dict[str, list[datetime]] = {}
    for m in messages:
        by_user.setdefault(m.user_id, []).append(m.at)
        local = m.at.astimezone(RULES.tz).time()
        assert not RULES.quiet_hours.contains(local), m
    assert "out" not in by_user and "chan" not in by_user
    assert set(by_user) == {"dm0", "dm1", "dm2", "dm3", "dm4", "dm5", "in"}
    for times in by_user.values():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(g >= RULES.min_speak_gap for g in gaps), gaps
    assert [c for u, c, _ in sender.sent if u == "in"] == ["777"] * len(by_user["in"])
    assert len(sender.sent) == len(messages)


async def test_a_user_who_stops_answering_hears_from_her_less(ors, fake):
    runner, clock, sender = ors
    fake.default = answer("speak", "checking in", "How are you?")
    await runner.saw_message("answers", None, is_dm=True)
    await runner.saw_message("silent", None, is_dm=True)
    end = T0 + timedelta(days=6)
    answered = 0
    while clock() < end:
        clock.advance(10)
        await runner.run_pass()
        if sum(1 for u, _, _ in sender.sent if u == "answers") > answered:
            answered += 1
            clock.advance(5)
            await runner.saw_message("answers", None, is_dm=True)  # answers each one
    counts = {u: sum(1 for s, _, _ in sender.sent if s == u) for u in ("answers", "silent")}
    assert counts["silent"] < counts["answers"] / 2, counts
    pattern = await runner.store.pattern("silent")
    assert pattern is not None and pattern.unanswered == counts["silent"]


async def test_a_burst_of_500_users_is_processed_within_the_concurrency_limit(engine, fake):
    in_flight = peak = 0

    async def slow(request: RecordedRequest) -> Reply:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return answer("wait", "nothing to say")

    fake.default = slow
    clock = Clock(T0)
    text_model, service = text_model_for(fake, "openai")
    runner = OrsRunner(
        ProactiveStore(engine),
        ModelDecider(text_model),
        OutboxSender(),
        RULES,
        clock,
        concurrency=3,
    )
    try:
        for i in range(500):
            await runner.saw_message(f"u{i}", None, is_dm=True)
        clock.advance(20)
        report = await runner.run_pass()
    finally:
        await service.aclose()
    assert (report.due, report.assessed, report.model_calls) == (500, 500, 500)
    assert 1 < peak <= 3
    assert await runner.store.due_users(clock(), 1000) == []  # everyone has a next look


async def test_two_runners_on_one_database_send_once(database_url, fake):
    fake.default = answer("speak", "checking in", "hello there")
    clock = Clock(T0)
    engines = [create_engine(database_url, pool_size=4) for _ in range(2)]
    services, runners, senders = [], [], []
    for eng in engines:
        text_model, service = text_model_for(fake, "openai")
        services.append(service)
        sender = OutboxSender()
        senders.append(sender)
        runners.append(
            OrsRunner(ProactiveStore(eng), ModelDecider(text_model), sender, RULES, clock)
        )
    try:
        for i in range(40):
            await runners[0].saw_message(f"u{i}", None, is_dm=True)
        clock.advance(20)
        reports = await asyncio.gather(runners[0].run_pass(), runners[1].run_pass())
        # A restart: a third runner on the same database, same moment, sends nothing more.
        again = await runners[1].run_pass()
    finally:
        for service in services:
            await service.aclose()
        for eng in engines:
            await eng.dispose()
    sent = [u for s in senders for u, _, _ in s.sent]
    assert sorted(sent) == sorted(f"u{i}" for i in range(40))  # each user exactly once
    assert sum(r.assessed for r in reports) == 40 and again.assessed == 0


def schema_of(request: RecordedRequest) -> str | None:
    return ((request.body.get("response_format") or {}).get("json_schema") or {}).get("name")


async def test_after_the_idle_timeout_the_conversation_becomes_summary_threads_and_a_note(
    engine, fake
):
    """The whole path: the user's words in the session store → ORS_IDLE_TIMEOUT_MINUTES
    later a summary with open threads and a follow-up note (its source message
    linked) → the SPEAK comes after the interview, not before."""
    clock = Clock(T0)
    sessions = SessionStore(engine, clock=clock)
    info = await sessions.get_or_start("u1", "dm:u1", project="default", idle_minutes=30)
    await sessions.add_messages(
        info.id,
        [
            ("user", "u1", "I have a job interview tomorrow at 10, so nervous", "m1"),
            ("assistant", "u1", "You'll do great!", None),
        ],
    )
    interview = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday 10:00 Berlin

    def script(request: RecordedRequest) -> Reply:
        if schema_of(request) == SUMMARY_ANSWER.name:
            assert "job interview tomorrow at 10" in prompt(request)
            digest = {
                "summary": "Nervous about a job interview Monday at 10.",
                "open_threads": ["the job interview"],
                "follow_ups": [
                    {
                        "text": "ask how the job interview went",
                        "not_before": (interview + timedelta(hours=1)).isoformat(),
                    }
                ],
            }
            return Reply(json.dumps(digest))
        if "job interview" in due_section(request):
            return answer("speak", "the interview is over", "So, how did the interview go?")
        return answer("wait", "nothing yet")

    fake.default = script
    text_model, service = text_model_for(fake, "openai")
    sender = OutboxSender()
    runner = OrsRunner(
        ProactiveStore(engine),
        ModelDecider(text_model),
        sender,
        RULES,
        clock,
        idle_timeout=timedelta(minutes=30),
        summarizer=text_model,
    )
    try:
        await runner.saw_message("u1", None, is_dm=True)
        clock.advance(20)
        await runner.run_pass()
        assert (await runner.store.pattern("u1")).last_summary is None  # not idle yet
        sent_at: list[datetime] = []
        while clock() < interview + timedelta(hours=6):
            clock.advance(5)
            before = len(sender.sent)
            await runner.run_pass()
            if len(sender.sent) > before:
                sent_at.append(clock())
            if clock() == T0 + timedelta(minutes=40):  # just past the idle timeout
                pattern = await runner.store.pattern("u1")
                assert pattern.last_summary == "Nervous about a job interview Monday at 10."
                assert pattern.open_threads == ["the job interview"]
                [note] = await runner.store.notes("u1", clock())
                assert note.not_before == interview + timedelta(hours=1)
                assert note.source_message_ids  # the user's message it came from
    finally:
        await service.aclose()
    summaries = [r for r in fake.requests if schema_of(r) == SUMMARY_ANSWER.name]
    assert len(summaries) == 1  # once per conversation, not per pass
    assert len(sent_at) == 1 and sent_at[0] >= interview + timedelta(hours=1), sent_at
    assert sent_at[0] <= interview + timedelta(hours=1, minutes=10)
    decisions = [r for r in fake.requests if schema_of(r) == ANSWER.name]
    assert "Open threads: the job interview" in prompt(decisions[-1])


async def test_a_runner_that_outlives_its_claim_never_sends_a_second_message(database_url, fake):
    """Runner A claims the user, then its model hangs past the claim's lease; runner
    B (a restarted or second process) claims and speaks; when A's answer finally
    says SPEAK too, the send recorded under the row lock stops it."""
    release = asyncio.Event()
    first = True

    async def script(request: RecordedRequest) -> Reply:
        nonlocal first
        if first:
            first = False
            await release.wait()
        return answer("speak", "checking in", "hello there")

    fake.default = script
    clock = Clock(T0)
    engines = [create_engine(database_url, pool_size=2) for _ in range(2)]
    services, runners, senders = [], [], []
    for eng in engines:
        text_model, service = text_model_for(fake, "openai")
        services.append(service)
        senders.append(OutboxSender())
        runners.append(
            OrsRunner(
                ProactiveStore(eng),
                ModelDecider(text_model),
                senders[-1],
                RULES,
                clock,
                lease=timedelta(minutes=10),
            )
        )
    try:
        await runners[0].saw_message("u1", None, is_dm=True)
        clock.advance(20)
        slow = asyncio.create_task(runners[0].run_pass())
        await fake.wait_for_requests(1)  # A holds its claim, waiting for the model
        clock.advance(11)  # ...past the lease
        b = await runners[1].run_pass()
        release.set()
        a = await slow
    finally:
        for service in services:
            await service.aclose()
        for eng in engines:
            await eng.dispose()
    assert (a.assessed, b.assessed) == (1, 1)  # the lease lapsed: B took over
    assert (a.spoke, b.spoke) == (0, 1)
    assert [len(s.sent) for s in senders] == [0, 1]
    assert len(await ProactiveStore(engines[0]).messages("u1")) == 1


async def test_forget_removes_everything_ors_holds_about_the_user(ors, fake):
    runner, clock, _ = ors
    fake.default = answer("speak", "checking in", "hi")
    for user in ("u1", "u2"):
        await runner.saw_message(user, None, is_dm=True)
        await runner.store.add_note(user, kind="event", text="x", relevance=0.5, created_at=T0)
    clock.advance(20)
    await runner.run_pass()
    removed = await runner.store.delete_user_data("u1")
    assert removed >= 4  # the pattern, a note, an assessment, a message
    assert await runner.store.pattern("u1") is None
    assert await runner.store.messages("u1") == [] and await runner.store.assessments("u1") == []
    assert await runner.store.notes("u1", clock()) == []
    assert len(await runner.store.messages("u2")) == 1  # nobody else's
