"""Send once, even when it is hard: two runners on one database forced to reach
the send for the same user at the same instant, and a send a crash left
unconfirmed.  Real PostgreSQL, the real SDK against the scripted fake LLM, a
controllable clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import text

from clara_core.pipeline.proactive import (
    PENDING_TIMEOUT,
    ModelDecider,
    OrsRunner,
    OutboxSender,
    doctor_check,
)
from storage.db import create_engine
from storage.proactive import ProactiveStore
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


class Rendezvous:
    """Holds each runner inside ``record_speak`` (after its read of the user's row,
    before its write) until the other runner has read the row too, or is provably
    blocked by PostgreSQL waiting for the row lock.  So both runners are at the
    send at the same instant: with the lock, the second waits; without it, both
    read the same 'nothing sent yet' and both would send."""

    def __init__(self, probe_engine) -> None:
        self.probe = probe_engine
        self.arrived = 0
        self.both = asyncio.Event()
        self.lock_waits_seen = 0

    async def _someone_waits_for_a_lock(self) -> bool:
        async with self.probe.connect() as conn:
            n = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        return bool(n)

    async def __call__(self, user_id: str) -> None:
        self.arrived += 1
        if self.arrived == 2:
            self.both.set()
            return
        async with asyncio.timeout(20):
            while not self.both.is_set():
                if await self._someone_waits_for_a_lock():
                    self.lock_waits_seen += 1
                    return
                await asyncio.sleep(0.01)


async def test_two_runners_reaching_the_send_at_the_same_instant_send_once(database_url, fake):
    """Runner A claims the user and its model answer is held; the claim's lease
    lapses and runner B claims the user too; both model answers (SPEAK) are
    released together, and the rendezvous holds both inside the recording of the
    send.  Exactly one message goes out (remove the row lock in
    ``ProactiveStore.record_speak`` and two do)."""
    barrier = asyncio.Barrier(2)

    async def script(request: RecordedRequest) -> Reply:
        async with asyncio.timeout(20):
            await barrier.wait()  # both runners' decisions come back at once
        return answer("speak", "checking in", "hello there")

    fake.default = script
    clock = Clock(T0)
    engines = [create_engine(database_url, pool_size=2) for _ in range(3)]
    meet = Rendezvous(engines[2])
    services, runners, senders = [], [], []
    for eng in engines[:2]:
        text_model, service = text_model_for(fake, "openai")
        services.append(service)
        senders.append(OutboxSender())
        runners.append(
            OrsRunner(
                ProactiveStore(eng, record_hook=meet),
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
        a = asyncio.create_task(runners[0].run_pass())
        await fake.wait_for_requests(1)  # A holds its claim, its answer not back yet
        clock.advance(11)  # past A's lease: B may claim the same user
        b = asyncio.create_task(runners[1].run_pass())
        reports = await asyncio.gather(a, b)
        stored = await ProactiveStore(engines[0]).messages("u1")
    finally:
        for service in services:
            await service.aclose()
        for eng in engines:
            await eng.dispose()
    assert [r.assessed for r in reports] == [1, 1]  # both really got to the user
    assert meet.arrived == 2  # ...and both into the recording of the send
    assert sum(len(s.sent) for s in senders) == 1
    assert sum(r.spoke for r in reports) == 1
    assert len(stored) == 1 and stored[0].status == "sent"
    assert meet.lock_waits_seen == 1  # the second one waited for the first's lock


async def _crashed_send(store: ProactiveStore, clock: Clock) -> int:
    """What a process that died between recording the send and posting it leaves:
    the ``pending`` row (and the user's last_proactive_at moved), nothing posted."""
    await store.saw_message(
        "u1",
        clock(),
        channel_id=None,
        is_dm=True,
        local_hour=12,
        first_check_at=clock() + timedelta(minutes=15),
    )
    message_id = await store.record_speak(
        "u1",
        clock(),
        content="How was the concert?",
        reason="she went to a concert",
        channel_id=None,
        min_gap=timedelta(hours=2),
    )
    assert message_id is not None
    return message_id


async def test_a_send_a_crash_left_pending_is_marked_lost_at_start_up_never_resent(
    engine, fake, caplog
):
    clock = Clock(T0)
    store = ProactiveStore(engine)
    message_id = await _crashed_send(store, clock)

    # The restarted process, soon after: the send may still be in flight elsewhere.
    fake.default = answer("speak", "still curious", "How was the concert?")
    text_model, service = text_model_for(fake, "openai")
    sender = OutboxSender()
    runner = OrsRunner(store, ModelDecider(text_model), sender, RULES, clock)
    try:
        clock.advance(5)
        assert await runner.sweep_lost() == 0
        assert (await doctor_check(store))[1] is True
        assert [m.status for m in await store.messages("u1")] == ["pending"]

        # Past the timeout, at start-up: lost, logged, counted; not re-sent.
        clock.advance(PENDING_TIMEOUT.total_seconds() / 60)
        with caplog.at_level(logging.WARNING, logger="clara_core.pipeline.proactive"):
            runner.start(every=timedelta(hours=1))  # the scheduler's first tick is an hour away
            await asyncio.wait_for(runner._sweep, 10)
        [row] = await store.messages("u1")
        assert (row.id, row.status) == (message_id, "lost")
        assert runner.lost == 1 and runner.stats()["lost_since_start"] == 1
        assert await store.status_counts() == {"lost": 1}
        _, ok, detail = await doctor_check(store)  # what `doctor` reports
        assert not ok and detail.startswith("1 proactive message(s) were recorded but never")
        assert any(
            f"proactive message {message_id} to u1" in r.getMessage() and "lost" in r.getMessage()
            for r in caplog.records
        )
        # The next pass neither re-sends it nor sweeps it again; the gap still holds.
        report = await runner.run_pass()
        assert report.spoke == 0 and list(sender.sent) == []
        assert runner.lost == 1
    finally:
        await runner.stop()
        await service.aclose()


async def test_every_pass_sweeps_what_a_crashed_peer_left_pending(engine, fake):
    """A second process died mid-send while this one keeps running: the periodic
    pass (not only start-up) marks it lost."""
    clock = Clock(T0)
    store = ProactiveStore(engine)
    await _crashed_send(store, clock)
    fake.default = answer("wait", "nothing to say")
    text_model, service = text_model_for(fake, "openai")
    runner = OrsRunner(store, ModelDecider(text_model), OutboxSender(), RULES, clock)
    try:
        clock.advance(PENDING_TIMEOUT.total_seconds() / 60 + 1)
        await runner.run_pass()
    finally:
        await service.aclose()
    assert [m.status for m in await store.messages("u1")] == ["lost"]
    assert runner.lost == 1
