"""Two real Clara processes on one PostgreSQL + Redis: a proactive message is sent
once (issue 15, "exactly once"), with both processes' ORS passes racing for it.

Both are ``python discord_bot.py`` shard processes (shard 0 and 1 of 2, on the
fake Discord), each with its own CLARA_DATA_DIR and ORS on.  Alice talks to
Clara in a DM (shard 0's process answers), so ORS may write to her.  Each
process has its own API key on the fake LLM, so every model call says which
process made it, and the fake answers an ORS decision with SPEAK.

The race is real, not hoped for:

- Each process runs an ORS pass every ORS_PASS_INTERVAL_SECONDS (15 s here; 60 by
  default), at a phase set by when it started.  The test reads each
  process's phase from its log, makes Alice due (her next look moved to now, as
  the minute ORS_BASE_INTERVAL_MINUTES=1 would) at a moment from which both
  processes' next passes come a few seconds apart, and
- the fake LLM holds the first process's decision until the other process has
  run its pass too (or has asked as well), so both passes are in flight at once.

Exactly one DM may reach Alice, one proactive row exist, one decision be asked.
With the cross-process guards switched off (the claim taking due users without
moving them on, ``record_speak`` without its re-check under the row lock) both
processes ask, both speak and Alice gets two DMs; with the claim alone off, both
ask and ``record_speak`` stops the second DM (the test fails on the two decisions).

Quiet hours are off (ORS_QUIET_HOURS=off), so the wall-clock time of the run
does not matter; the minimum gap between two proactive messages keeps its
default (2 h), so no later pass may legitimately speak again.  The test ends
after the race rather than waiting for further passes, which could only show
the gap at work, not the cross-process guards.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from clara_core.pipeline.proactive import DECIDE_TIMEOUT_S
from storage.proactive import ProactiveStore
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_llm import FakeLLM, RecordedRequest, Reply
from tests.support.clara_process import ClaraProcess, shard_env

pytestmark = [pytest.mark.slow, pytest.mark.storage]

KEYS = ("key-process-0", "key-process-1")
#: ORS_PASS_INTERVAL_SECONDS for both processes: above HOLD_S's needs (the passes of
#: the two processes are at most half a tick apart, under HOLD_S - MARGIN_S).
TICK_S = 15.0
#: The longest the fake holds one process's decision waiting for the other process's
#: pass: below ModelDecider's timeout, after which the process would decide WAIT.
HOLD_S = 20.0
#: Margin around a pass when choosing the moment Alice becomes due.
MARGIN_S = 3.0
START_TIMEOUT = 90  # two cold Clara start-ups on a shared 2-core machine
CHAT = "Good luck with the exam!"
ASKED = "How did the exam go?"
SPEAK = Reply(
    json.dumps(
        {
            "action": "speak",
            "reason": "she said the exam was today",
            "message": ASKED,
            "note_kind": "",
            "note_text": "",
            "note_relevance": 0,
            "note_not_before": "",
            "note_expires_at": "",
        }
    )
)
#: In ORS's system prompt (companion/ors_context.SYSTEM): what tells a decision apart.
DECISION_MARK = "Organic Response System. Decide whether"

#: APScheduler's lines (INFO, logger apscheduler.*) for the ORS pass job.
ADDED = re.compile(r'^(\S+ \S+) INFO +apscheduler\S*: Added job "OrsRunner\._tick"', re.M)
RUNNING = re.compile(r'Running job "OrsRunner\._tick [^"]*" \(scheduled at ([^)]+)\)')
FINISHED = re.compile(r'Job "OrsRunner\._tick [^"]*" executed successfully')


def process_of(request: RecordedRequest) -> int:
    return KEYS.index(request.headers["authorization"].removeprefix("Bearer "))


def is_decision(request: RecordedRequest) -> bool:
    return any(DECISION_MARK in str(s) for s in request.system)


def first_tick(log: str) -> float:
    """When this process's first ORS pass is due (epoch seconds): a minute after the
    scheduler started (the log's time is local, as ``logging`` writes it)."""
    m = ADDED.search(log)
    assert m is not None, log[-3000:]
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() + TICK_S


def passes(log: str, since: float) -> int:
    """How many ORS passes due at or after ``since`` have finished.  Runs are
    sequential (max_instances=1): the n-th 'executed' line ends the n-th 'Running'."""
    started = [datetime.fromisoformat(s).timestamp() for s in RUNNING.findall(log)]
    later = [i for i, t in enumerate(started) if t >= since]
    return max(0, len(FINISHED.findall(log)) - later[0]) if later else 0


@dataclass
class OrsWire:
    """The fake LLM's answers: the conversation normally, an ORS decision with SPEAK,
    the first decision held until the other process's pass has run too."""

    procs: list[ClaraProcess]
    #: Epoch seconds from which Alice is due (set by the test).
    due_at: float = float("inf")
    #: The process (index) of each decision asked, in order.
    decisions: list[int] = field(default_factory=list)
    #: Why each held decision was let go.
    released: list[str] = field(default_factory=list)

    async def __call__(self, request: RecordedRequest) -> Reply:
        if not is_decision(request):
            return Reply(CHAT)  # a conversation turn, a memory extraction: plain text
        me = process_of(request)
        other = 1 - me
        self.decisions.append(me)
        deadline = time.monotonic() + HOLD_S
        while True:
            if other in self.decisions:
                why = "both asked"
            elif passes(self.procs[other].output(), self.due_at) > 0:
                why = "the other process's pass ran"
            elif time.monotonic() > deadline:
                why = "timeout"
            else:
                await asyncio.sleep(0.05)
                continue
            self.released.append(why)
            return SPEAK


def envs(tmp_path: Path, fake: FakeDiscord, llm: FakeLLM, database_url: str, redis_url: str):
    for n, key in enumerate(KEYS):
        root = tmp_path / f"p{n}"
        root.mkdir()
        yield ClaraProcess(
            root,
            shard_env(
                root,
                discord=fake,
                llm=llm,
                shard=n,
                count=2,
                api_key=key,
                database_url=database_url,
                redis_url=redis_url,
                LOG_LEVEL="INFO",  # APScheduler's "Running job" lines are INFO
                ORS_ENABLED="true",
                ORS_PASS_INTERVAL_SECONDS=str(int(TICK_S)),
                ORS_BASE_INTERVAL_MINUTES="1",  # the least the setting allows
                ORS_QUIET_HOURS="off",  # whatever the time of day of the run
                # No idle-conversation summary within the test: only decisions and
                # the conversation reach the fake LLM.
                ORS_IDLE_TIMEOUT_MINUTES="60",
            ),
        )


def due_moment(ticks: list[float], now: float) -> tuple[float, float]:
    """The earliest moment from ``now`` to make Alice due such that the next pass
    after it (the leader's) is followed by the other process's within half a tick:
    never between the leader's pass and the follower's.  Also returns that lag."""
    lag = (ticks[1] - ticks[0]) % TICK_S
    leader = 0 if lag <= TICK_S / 2 else 1
    lag = min(lag, TICK_S - lag)
    lead = ticks[leader]
    # The leader's next pass at least MARGIN_S from now...
    while lead - MARGIN_S < now:
        lead += TICK_S
    # ...and the moment after the follower's previous pass has finished.
    moment = max(now, lead - TICK_S + lag + MARGIN_S)
    return moment, lag


async def test_two_clara_processes_send_one_proactive_message(
    tmp_path, engine, database_url, redis_url
):
    assert HOLD_S < DECIDE_TIMEOUT_S
    async with (
        FakeDiscord(heartbeat_interval_ms=1000, shard_count=2, identify_max_concurrency=2) as fake,
        FakeLLM(api_keys=set(KEYS)) as llm,
    ):
        alice = fake.add_user("alice", global_name="Alice")
        dm = fake.add_dm_channel(alice.id)
        procs = list(envs(tmp_path, fake, llm, database_url, redis_url))
        wire = OrsWire(procs)
        llm.default = wire
        store = ProactiveStore(engine)
        try:
            for p in procs:
                p.start()
            await fake.wait_until(
                lambda: all(
                    p.running()
                    and "connected to Discord" in p.output()
                    and ADDED.search(p.output())
                    for p in procs
                ),
                timeout=START_TIMEOUT,
                what="both processes connected with ORS scheduled",
            )
            ticks = [first_tick(p.output()) for p in procs]

            # Alice talks to Clara in a DM (shard 0's process answers): ORS may write
            # to her, and she is active.
            await fake.send_message(dm.id, alice.id, "I have my exam today, wish me luck")
            await fake.wait_until(
                lambda: [m.content for m in fake.bot_messages(dm.id)] == [CHAT],
                timeout=30,
                what="Clara's answer in the DM",
            )
            for _ in range(100):  # the after-turn hook records her after the answer
                pattern = await store.pattern(str(alice.id))
                if pattern is not None:
                    break
                await asyncio.sleep(0.1)
            assert pattern is not None and pattern.talked_in_dm

            # Alice becomes due at a moment from which both processes' next passes
            # come close together.
            moment, lag = due_moment(ticks, time.time())
            # Start-ups that differ by more than the hold leave no race to show.
            assert lag < HOLD_S - MARGIN_S, f"the processes' ORS passes are {lag:.1f} s apart"
            await asyncio.sleep(max(0.0, moment - time.time()))
            wire.due_at = time.time()
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "UPDATE user_interaction_patterns SET next_check_at = now() "
                        "WHERE user_id = :u"
                    ),
                    {"u": str(alice.id)},
                )

            # Both processes' passes run, racing for her; one DM goes out.
            await fake.wait_until(
                lambda: (
                    all(passes(p.output(), wire.due_at) >= 1 for p in procs)
                    and len(fake.bot_messages(dm.id)) >= 2
                ),
                timeout=2 * TICK_S,
                what="both processes' ORS passes and the proactive DM",
            )
            await asyncio.sleep(2.0)  # time for a wrong second DM to arrive
        finally:
            await asyncio.gather(*(p.stop() for p in procs))
        logs = [p.output() for p in procs]
        chat_by = [process_of(r) for r in llm.requests if not is_decision(r)]
        fake.assert_clean()

    # Exactly one proactive DM reached Alice, and one row says it was sent.
    assert [m.content for m in fake.bot_messages(dm.id)] == [CHAT, ASKED]
    sent = await store.messages(str(alice.id))
    assert [(m.status, m.content) for m in sent] == [("sent", ASKED)]
    # One decision was asked (the claim gave Alice to one process), and one assessment.
    assert len(wire.decisions) == 1, f"both processes assessed Alice: {wire.decisions}"
    [winner] = wire.decisions
    assert [a for _, a, _ in await store.assessments(str(alice.id))] == ["speak"]
    assert "ors: 1 assessed, 1 spoke" in logs[winner], logs[winner][-3000:]
    # Both were eligible: the other process ran its pass, due for Alice too, while
    # the first one's decision about her was in flight.
    assert wire.released == ["the other process's pass ran"], wire.released
    for log in logs:
        assert passes(log, wire.due_at) >= 1, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
    assert 0 in chat_by  # shard 0's process answered the DM (DMs are shard 0's)
