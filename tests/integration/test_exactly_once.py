"""Several Clara processes on one PostgreSQL + Redis (issue 15, "exactly once").

Each "process" here is a full set of runner objects with an engine and a Redis
client of its own, in one test process: what they share is exactly what two
Clara processes share (the database, Redis, the fake Discord), and nothing
else, so the races can be forced here.  The same claim between two real Clara
OS processes is tested in ``tests/e2e/test_two_process_jobs.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import discord
import pytest
from redis.exceptions import RedisError
from sqlalchemy import text

from clara_core.app import Clara
from clara_core.companion.hormones import HormoneModel
from clara_core.companion.ors_context import SUMMARY_ANSWER
from clara_core.config import load_settings
from clara_core.cortex.consolidation import ConsolidationLedger, ConsolidationRunner
from clara_core.cortex.consolidation.records import JOB_CLEANUP
from clara_core.cortex.hot import HotStore
from clara_core.cortex.types import Memory
from clara_core.cortex.warm import WarmStore
from clara_core.discord_adapter.proactive_sender import DiscordProactiveSender
from clara_core.discord_adapter.voice_channels import SpeechChoices
from clara_core.pipeline.mood import LOCAL_TTL_S, MoodService
from clara_core.pipeline.proactive import (
    PENDING_TIMEOUT,
    ModelDecider,
    OrsRunner,
    OutboxSender,
)
from clara_core.privacy import forget_everything
from clara_core.user_data import PEERS
from storage.companion import CompanionStore
from storage.db import create_engine
from storage.forget_signal import ForgetSignal
from storage.job_claims import LOCK_SPACE, JobClaims
from storage.preferences import Preferences
from storage.proactive import ProactiveStore
from storage.redis import create_redis
from storage.services import Storage
from storage.sessions import SessionStore
from storage.user_data import delete_user_data_in
from tests.fakes.fake_discord import FakeDiscord, discord_py_pointed_at, running_client
from tests.fakes.fake_llm import ErrorReply, FakeLLM, RecordedRequest, Reply
from tests.support.clock import Clock
from tests.support.cortex import local_embedder, text_model_for
from tests.support.llm import KEY
from tests.support.ors import RULES, T0, answer

pytestmark = pytest.mark.storage

ONE_SECOND_H = 1 / 3600
GUILD, ALICE = 555, 101


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with FakeLLM(api_keys={KEY}) as server:
        yield server


@pytest.fixture
async def engines(database_url):
    """Two processes' engines on one database."""
    made = [create_engine(database_url, pool_size=3) for _ in range(2)]
    yield made
    for eng in made:
        await eng.dispose()


def consolidation_runner(engine, redis, fake, services, **settings) -> ConsolidationRunner:
    clock = Clock()
    model, service = text_model_for(fake)
    services.append(service)
    return ConsolidationRunner(
        WarmStore(engine),
        HotStore(redis, clock=clock),
        ConsolidationLedger(engine, clock=clock),
        model,
        local_embedder(),
        load_settings(env_file=None, **settings),
        clock=clock,
    )


async def cleanup_rows(engine) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                text("SELECT count(*) FROM consolidation_logs WHERE job = :job"),
                {"job": JOB_CLEANUP},
            )
        )


# -- scheduled jobs ------------------------------------------------------------


async def test_a_due_job_fired_in_two_processes_at_once_runs_once_per_slot(engines, redis, fake):
    """What APScheduler calls in each process (``ConsolidationRunner.scheduled``),
    fired in both at the same instant: one cleanup sweep (one log row) per slot.
    Without the claim each firing sweeps: 2 rows, then 4."""
    services: list = []
    runners = [
        consolidation_runner(e, redis, fake, services, cortex_cleanup_interval_hours=ONE_SECOND_H)
        for e in engines
    ]
    every = timedelta(seconds=1)
    jobs = [r.scheduled("cortex_cleanup", every, r.cleanup_all) for r in runners]
    try:
        await asyncio.gather(*(job() for job in jobs))
        assert await cleanup_rows(engines[0]) == 1
        await asyncio.gather(*(job() for job in jobs))  # the same slot: nobody runs it
        assert await cleanup_rows(engines[0]) == 1
        await asyncio.sleep(1.0)  # the database's clock moves on: the next slot
        await asyncio.gather(*(job() for job in jobs))
        assert await cleanup_rows(engines[0]) == 2
    finally:
        for s in services:
            await s.aclose()


async def test_two_schedulers_on_one_database_sweep_once_per_tick(engines, redis, fake):
    """The real APScheduler in both "processes", the cleanup every second for ~3.4 s:
    three ticks each, three sweeps in all (a tick the timers' jitter makes early
    may be skipped by both; without the claim there are six)."""
    services: list = []
    runners = [
        consolidation_runner(e, redis, fake, services, cortex_cleanup_interval_hours=ONE_SECOND_H)
        for e in engines
    ]
    await runners[0].hot.add_working(Memory("passing thought", "u1"), ttl_s=60)
    try:
        for r in runners:
            r.start()
        await asyncio.sleep(3.4)
    finally:
        for r in runners:
            await r.stop()
        for s in services:
            await s.aclose()
    assert 2 <= await cleanup_rows(engines[0]) <= 3


async def test_a_run_still_going_elsewhere_is_not_overlapped_and_a_crash_frees_it(engines):
    """Process A's run outlasts its interval: B's tick after the interval skips (the
    advisory lock), not runs beside it.  A's connection dies (a crashed process):
    PostgreSQL drops the lock and B takes the next slot without waiting out a lease."""
    a, b = JobClaims(engines[0], holder="a"), JobClaims(engines[1], holder="b")
    every = timedelta(seconds=0.2)
    runs: list[str] = []
    async with a.slot("long-job", every) as mine:
        assert mine
        runs.append("a")
        await asyncio.sleep(0.4)  # past the interval: the slot alone would let B in
        async with b.slot("long-job", every) as theirs:
            if theirs:
                runs.append("b")
        assert runs == ["a"]
    async with b.slot("long-job", every) as theirs:  # A is done: B takes the next slot
        assert theirs

    # A crash mid-run: the holder's connection goes away without any clean-up.
    held = a.slot("long-job", every)
    await asyncio.sleep(0.3)
    assert await held.__aenter__()
    async with engines[1].connect() as conn:
        pid = await conn.scalar(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = :space AND objsubid = 2 AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"space": LOCK_SPACE},
        )
        assert pid is not None
        await conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await conn.commit()
    await asyncio.sleep(0.3)
    async with b.slot("long-job", every) as theirs:
        assert theirs
    await held.__aexit__(None, None, None)  # the dead connection's clean-up is harmless
    async with engines[1].connect() as conn:
        holder = await conn.scalar(
            text("SELECT holder FROM scheduled_job_runs WHERE job = 'long-job'")
        )
    assert holder == "b"


async def test_postgres_down_skips_the_tick_with_one_line(caplog):
    dead = create_engine("postgresql://clara:x@127.0.0.1:1/clara", pool_size=1)
    ran = False
    try:
        with caplog.at_level(logging.WARNING, logger="storage.job_claims"):
            async with JobClaims(dead).slot("cortex_cleanup", timedelta(hours=1)) as mine:
                ran = mine
    finally:
        await dead.dispose()
    assert not ran
    [line] = [r for r in caplog.records if r.name == "storage.job_claims"]
    assert "PostgreSQL is unreachable" in line.getMessage() and "next tick" in line.getMessage()
    assert line.exc_info is None  # one line, no traceback


# -- ORS -----------------------------------------------------------------------


def schema_of(request: RecordedRequest) -> str | None:
    return ((request.body.get("response_format") or {}).get("json_schema") or {}).get("name")


async def _idle_conversations(engine, clock: Clock, users: list[str]) -> None:
    sessions = SessionStore(engine, clock=clock)
    store = ProactiveStore(engine)
    for user in users:
        info = await sessions.get_or_start(user, f"dm:{user}", project="default", idle_minutes=30)
        await sessions.add_messages(info.id, [("user", user, f"{user} says hello", None)])
        await store.saw_message(
            user,
            clock(),
            channel_id=None,
            is_dm=True,
            local_hour=12,
            first_check_at=clock() + timedelta(days=1),
        )


async def test_an_idle_conversation_is_summarised_by_one_process_only(engines, fake):
    """A's summaries are in flight (the model holds them) when B's pass comes: B
    finds them claimed.  Without the claim B summarises the same five again."""
    release = asyncio.Event()

    async def script(request: RecordedRequest) -> Reply:
        async with asyncio.timeout(20):
            await release.wait()
        return Reply(json.dumps({"summary": "said hello", "open_threads": [], "follow_ups": []}))

    fake.default = script
    clock = Clock(T0)
    users = [f"u{i}" for i in range(5)]
    await _idle_conversations(engines[0], clock, users)
    clock.advance(31)
    services, runners = [], []
    for eng in engines:
        model, service = text_model_for(fake)
        services.append(service)
        runners.append(
            OrsRunner(
                ProactiveStore(eng),
                ModelDecider(model),
                OutboxSender(),
                RULES,
                clock,
                idle_timeout=timedelta(minutes=30),
                summarizer=model,
            )
        )
    try:
        a = asyncio.create_task(runners[0].summarise_idle(clock()))
        await fake.wait_for_requests(5)
        b = await runners[1].summarise_idle(clock())
        release.set()
        assert await a == 5 and b == 0
    finally:
        for s in services:
            await s.aclose()
    assert len([r for r in fake.requests if schema_of(r) == SUMMARY_ANSWER.name]) == 5
    for user in users:
        assert (await runners[1].store.pattern(user)).last_summary == "said hello"


async def test_a_summary_the_model_could_not_make_is_released_for_the_next_pass(engine, fake):
    fake.default = ErrorReply(500)
    clock = Clock(T0)
    await _idle_conversations(engine, clock, ["u1"])
    clock.advance(31)
    model, service = text_model_for(fake)
    runner = OrsRunner(
        ProactiveStore(engine),
        ModelDecider(model),
        OutboxSender(),
        RULES,
        clock,
        idle_timeout=timedelta(minutes=30),
        summarizer=model,
    )
    try:
        assert await runner.summarise_idle(clock()) == 0
        assert (await runner.store.pattern("u1")).summary_at is None  # unclaimed again
        fake.default = Reply(json.dumps({"summary": "hi", "open_threads": [], "follow_ups": []}))
        clock.advance(1)
        assert await runner.summarise_idle(clock()) == 1
    finally:
        await service.aclose()


async def test_a_send_in_flight_in_another_process_is_never_marked_lost(engines, fake):
    """A records a send and is posting it (slowly); B starts, with a clock a
    quarter of an hour ahead, and sweeps: the row is locked by A's send, so B
    leaves it alone and A confirms it.  Without the lock B marks it lost while
    the message is going out."""
    fake.default = answer("speak", "checking in", "hello there")
    clock = Clock(T0)
    sending = asyncio.Event()
    release = asyncio.Event()
    sent: list[str] = []

    class SlowSender(OutboxSender):
        async def send(self, user_id: str, channel_id: str | None, text: str) -> bool:
            sending.set()
            await asyncio.wait_for(release.wait(), 20)
            sent.append(text)
            return await super().send(user_id, channel_id, text)

    model, service = text_model_for(fake)
    a = OrsRunner(ProactiveStore(engines[0]), ModelDecider(model), SlowSender(), RULES, clock)
    b_clock = Clock(T0 + PENDING_TIMEOUT + timedelta(minutes=30))
    b = OrsRunner(ProactiveStore(engines[1]), ModelDecider(model), OutboxSender(), RULES, b_clock)
    try:
        await a.saw_message("u1", None, is_dm=True)
        clock.advance(20)
        b_clock.advance(20)
        passing = asyncio.create_task(a.run_pass())
        await asyncio.wait_for(sending.wait(), 20)
        b.start(every=timedelta(hours=1))  # its start-up sweep
        await asyncio.wait_for(b._sweep, 10)
        assert b.lost == 0
        release.set()
        report = await passing
    finally:
        await b.stop()
        await service.aclose()
    assert report.spoke == 1 and sent == ["hello there"]
    assert [m.status for m in await a.store.messages("u1")] == ["sent"]


async def test_a_proactive_message_goes_out_once_from_a_process_without_the_guilds_shard(
    engines, fake
):
    """Two processes, shard 0 and shard 1 of one bot; alice last talked to Clara in
    a guild on shard 1.  The shard-0 process claims her first and posts through
    REST (its gateway cache has no such channel); the shard-1 process finds her
    claimed.  The fake Discord holds exactly one message.  And bob, who talks to
    Clara in DMs (shard 0's events), hears from the shard-1 process just as well."""
    held = asyncio.Event()
    decisions = 0

    async def script(request: RecordedRequest) -> Reply:
        nonlocal decisions
        decisions += 1
        if decisions == 2:  # shard 0's decision on alice waits until shard 1's pass is over
            await asyncio.wait_for(held.wait(), 20)
        return answer("speak", "checking in", "how are you?")

    fake.default = script
    async with FakeDiscord(
        heartbeat_interval_ms=1000, shard_count=2, identify_max_concurrency=2
    ) as discord_fake:
        alice = discord_fake.add_user("alice")
        bob = discord_fake.add_user("bob")
        dm = discord_fake.add_dm_channel(bob.id)
        gid = discord_fake.guild_id_for_shard(1, 2)
        guild = discord_fake.add_guild("Home", guild_id=gid, members=[alice.id])
        channel = guild.text_channels[0]
        clock = Clock(T0)
        model, service = text_model_for(fake)
        intents = discord.Intents.default()
        with discord_py_pointed_at(discord_fake):
            c0 = discord.Client(
                intents=intents, shard_id=0, shard_count=2, guild_ready_timeout=0.05
            )
            c1 = discord.Client(
                intents=intents, shard_id=1, shard_count=2, guild_ready_timeout=0.05
            )
            async with running_client(discord_fake, c0), running_client(discord_fake, c1):
                assert c0.get_channel(channel.id) is None  # not this process's shard
                runners = [
                    OrsRunner(
                        ProactiveStore(eng),
                        ModelDecider(model),
                        DiscordProactiveSender(client),
                        RULES,
                        clock,
                    )
                    for eng, client in zip(engines, (c0, c1), strict=True)
                ]
                store = runners[0].store
                await runners[1].saw_message(str(bob.id), None, is_dm=True)
                clock.advance(20)
                to_bob = await runners[1].run_pass()
                await store.set_opt_in(str(alice.id), True, clock())
                await runners[1].saw_message(str(alice.id), str(channel.id), is_dm=False)
                clock.advance(20)
                first = asyncio.create_task(runners[0].run_pass())
                await fake.wait_for_requests(2)  # shard 0 holds alice's claim (1: bob)
                second = await runners[1].run_pass()
                held.set()
                report = await first
                await discord_fake.flush()
                posted = discord_fake.bot_messages(channel.id)
                dm_posted = discord_fake.bot_messages(dm.id)
        await service.aclose()
        discord_fake.assert_clean()
    assert to_bob.spoke == 1 and [m.content for m in dm_posted] == ["how are you?"]
    assert (report.spoke, second.assessed) == (1, 0)
    assert [m.content for m in posted] == [f"<@{alice.id}> how are you?"]
    assert [m.status for m in await store.messages(str(alice.id))] == ["sent"]


# -- forget ----------------------------------------------------------------------


async def test_a_forget_in_one_process_empties_the_other_processes_caches(
    engines, database_url, redis_url, tmp_path
):
    """Two ``Clara`` apps (the composition root, its real forget wiring) on one
    database and Redis.  B holds alice's DM mood in memory (the in-process copy it
    keeps while its Redis cache is away); A runs ``/clara forget``'s deletion.  B
    hears it on the forget signal and drops its copy: B's mood of that DM is at
    rest.  Without the signal B keeps the moved levels (and would save them again)."""
    clock = Clock(T0)
    scope, alice = "channel:dm-alice", "alice"
    model = HormoneModel()
    apps = []
    for n, eng in enumerate(engines):
        app = Clara(load_settings(env_file=None))
        app.storage = Storage(
            database_url, redis_url, eng, create_redis(redis_url), tmp_path / f"p{n}"
        )
        app.mood = MoodService(model, CompanionStore(eng), clock)  # the LRU is its cache
        app.start_forget_signal()
        apps.append(app)
    a, b = apps
    try:
        await asyncio.wait_for(b.forget_signal.listening.wait(), 10)
        await asyncio.wait_for(a.forget_signal.listening.wait(), 10)
        at_rest = (await b.mood.current(scope)).as_dict()
        await b.mood.on_message(scope, "I am SO happy today!!! 🎉", user_id=alice, owner=alice)
        await b.mood.flush()
        assert (await b.mood.current(scope)).as_dict() != at_rest

        report = await forget_everything(
            alice, memory=None, engine=engines[0], files=None, others=a.user_data_stores()
        )
        # The one other process heard it (this one's own subscription is not counted).
        assert report.complete and report.others[PEERS] == 1
        for _ in range(100):
            if (await b.mood.current(scope)).as_dict() == at_rest:
                break
            await asyncio.sleep(0.05)
        assert (await b.mood.current(scope)).as_dict() == at_rest
        assert await CompanionStore(engines[0]).owned_scopes(alice) == []
    finally:
        for app in apps:
            await app.forget_signal.close()
            await app.mood.close()
            await app.storage.redis.aclose()


async def test_a_forget_this_process_did_not_hear_reaches_its_copy_within_the_bound(engines):
    """No signal (Redis away): B's in-memory copy of alice's DM mood is read again
    from PostgreSQL once ``LOCAL_TTL_S`` has passed, and the forget shows."""
    clock = Clock(T0)
    scope, alice = "channel:dm-alice", "alice"
    model = HormoneModel()
    mood_a = MoodService(model, CompanionStore(engines[0]), clock)
    mood_b = MoodService(model, CompanionStore(engines[1]), clock)
    try:
        at_rest = (await mood_b.current(scope)).as_dict()
        await mood_b.on_message(scope, "I am SO happy today!!! 🎉", user_id=alice, owner=alice)
        await mood_b.flush()
        await mood_a.delete_user_data(alice)  # A's forget; B hears nothing
        clock.advance(seconds=LOCAL_TTL_S / 2)
        assert (await mood_b.current(scope)).as_dict() != at_rest  # inside the bound: kept
        clock.advance(seconds=LOCAL_TTL_S / 2 + 1)
        now = (await mood_b.current(scope)).as_dict()
        assert now == model.advance(model.initial(clock()), clock()).as_dict()
    finally:
        await mood_a.close()
        await mood_b.close()


async def test_a_speech_choice_cached_in_another_process_expires_after_a_forget(engines):
    """B cached alice's "don't speak my replies"; A forgets her (B hears nothing):
    once the choice's time in B's cache is up, B reads it again and finds none."""
    a_prefs, b_prefs = Preferences(engines[0]), Preferences(engines[1])
    await SpeechChoices(lambda: a_prefs).set_user(ALICE, False)
    b = SpeechChoices(lambda: b_prefs, ttl_s=0.3)
    assert await b.decide(GUILD, ALICE) is False
    await delete_user_data_in(engines[0], str(ALICE))  # A's /clara forget
    assert b.known(GUILD, ALICE) is False  # inside the bound: still cached
    await asyncio.sleep(0.4)
    assert b.known(GUILD, ALICE) is None  # expired: asked again
    assert await b.decide(GUILD, ALICE) is True  # nobody chose: she speaks


async def test_the_forget_signal_survives_redis_being_down(caplog):
    """A dead Redis: publishing warns once and raises (the forget's report says the
    other processes' copies could not be cleared, the forget itself goes on), the
    listener retries quietly without raising into the event loop."""
    dead = create_redis("redis://127.0.0.1:1/0")
    signal = ForgetSignal(dead, retry_interval=0.1)
    try:
        with caplog.at_level(logging.WARNING, logger="storage.forget_signal"):
            signal.start()
            with pytest.raises(RedisError):
                await signal.delete_user_data("alice")
            report = await forget_everything(
                "alice", memory=None, engine=None, files=None, others={PEERS: signal}
            )
            assert report.failed == [PEERS]
            await asyncio.sleep(1.0)  # several failed subscriptions
            assert not signal.listening.is_set()
            assert signal._task is not None and not signal._task.done()
    finally:
        await signal.close()
        await dead.aclose()
    lines = [r for r in caplog.records if r.name == "storage.forget_signal"]
    # The failed publishes (one per forget), and the listener's one outage line.
    assert len(lines) == 3
    assert all(r.exc_info is None for r in lines)
