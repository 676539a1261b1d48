"""The hormone model's cost per message, and the mood section's.

1. Pure step: ``HormoneModel.react`` on a state last touched 0-120 s earlier
   (the common case: one or two local hours to integrate).  Goal: p99 ≤ 50 µs.
   Also the local sentiment heuristic on realistic message lengths, and the
   worst case of a channel silent for 14 days (336 hourly segments).
2. Mood section build: the prompt contributor end to end (stimulus, step,
   description), in memory (p95), and with write-through to a real
   PostgreSQL (embedded, or BENCH_DATABASE_URL), where the two writes per
   change dominate.  ``BENCH_MOOD_DB=0`` skips the database part.
3. ``/clara mood``'s chart: the 24 h curve of a busy channel and its PNG.
4. ORS: one pass over 10,000 due users (``BENCH_ORS_USERS``) with the fake LLM
   (in this process) answering at once: wall time and database round trips
   per user; and a simulated month of one user's life with an eager model
   (it always wants to speak): messages sent, gaps, quiet-hour violations
   (must be 0).  ``BENCH_ORS=0`` skips both.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # also when run directly: python bench/x.py

from bench.common import percentile  # noqa: E402
from clara_core.companion.events import stimulus_from_text  # noqa: E402
from clara_core.companion.hormones import HormoneModel, Stimulus  # noqa: E402
from clara_core.pipeline.mood import MoodService, mood_section  # noqa: E402
from clara_core.pipeline.prompt import TurnContext  # noqa: E402
from tools.registry import ToolContext  # noqa: E402

N = int(os.environ.get("BENCH_MOOD_N", "20000"))
TEXTS = [
    "hey Clara, how are you?",
    "Thank you so much, that was amazing!",
    "ugh this is not good, the build failed again and I'm so tired of it",
    "look at this https://example.org/some/long/path what do you think?",
    "SHUT UP you're useless!!!",
    "ok",
    " ".join(["a fairly long message about the weekend and the plans we made"] * 8),
]


def us(values: list[float], q: float) -> float:
    return percentile(values, q) * 1e6


def pure_step() -> None:
    model = HormoneModel("Europe/Berlin")
    rng = random.Random(1)
    t = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    state = model.initial(t)
    stimuli = [stimulus_from_text(x) for x in TEXTS]
    times, worst = [], []
    for i in range(N):
        t += timedelta(seconds=rng.uniform(0, 120))
        s = stimuli[i % len(stimuli)]
        t0 = time.perf_counter()
        state = model.react(state, s, t)
        times.append(time.perf_counter() - t0)
    for _ in range(200):
        t += timedelta(days=14)
        t0 = time.perf_counter()
        state = model.react(state, Stimulus(), t)
        worst.append(time.perf_counter() - t0)
    heur = []
    for i in range(N):
        text = TEXTS[i % len(TEXTS)]
        t0 = time.perf_counter()
        stimulus_from_text(text)
        heur.append(time.perf_counter() - t0)
    print(
        f"pure step (react):        p50={us(times, 0.5):.1f}µs p99={us(times, 0.99):.1f}µs "
        f"max={max(times) * 1e6:.1f}µs  (goal p99 ≤ 50 µs)"
    )
    print(f"after 14 days of silence: p50={us(worst, 0.5):.0f}µs p99={us(worst, 0.99):.0f}µs")
    print(f"sentiment heuristic:      p50={us(heur, 0.5):.1f}µs p99={us(heur, 0.99):.1f}µs")


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=7)
        return self.now


async def section_build(store=None, n: int = N, label: str = "in memory", cache=None) -> None:
    service = MoodService(HormoneModel("Europe/Berlin"), store, _Clock(), cache=cache)
    contribute = mood_section(service)
    times = []
    for i in range(n + 50):
        ctx = TurnContext(
            ToolContext(user_id=f"u{i % 50}", channel_id=str(i % 200)), TEXTS[i % len(TEXTS)]
        )
        t0 = time.perf_counter()
        section = await contribute(ctx)
        elapsed = time.perf_counter() - t0
        assert section is not None and section.text
        if i >= 50:  # warm-up: caches, first connections
            times.append(elapsed)
        if store is not None and i % 20 == 19:
            # Writes run in the background; let them keep up, as real traffic
            # (seconds between turns) does, so the backlog does not grow unbounded.
            await service.flush()
    t0 = time.perf_counter()
    await service.flush()
    if store is not None:
        print(f"  (last writes drained in {(time.perf_counter() - t0) * 1e3:.0f} ms)")
    print(
        f"mood section ({label}): n={len(times)} p50={us(times, 0.5):.0f}µs "
        f"p95={us(times, 0.95):.0f}µs p99={us(times, 0.99):.0f}µs"
    )


async def with_database() -> None:
    from bench._cortex_env import services
    from storage.companion import CompanionStore

    async with services(pool_size=4) as svc:
        store = CompanionStore(svc.engine)
        t0 = time.perf_counter()
        await section_build(store, n=2000, label="PostgreSQL write-through")
        wall = time.perf_counter() - t0
        print(f"  2050 changes written in {wall:.1f}s: {2050 / wall:.0f} changes/s")
        # As in production: Redis is the cache every process reads (one GET and one
        # SET per change on the answer's path), PostgreSQL the record behind it.
        from storage.companion_cache import MoodCache

        await section_build(None, n=2000, label="Redis cache alone", cache=MoodCache(svc.redis))
        await section_build(
            store,
            n=2000,
            label="Redis cache + PostgreSQL write-through",
            cache=MoodCache(svc.redis),
        )


def chart() -> None:
    """/clara mood's work: the 24 h curve from a busy day's history, and its PNG."""
    model = HormoneModel("Europe/Berlin")
    end = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    state = model.initial(end - timedelta(hours=25))
    points = []
    for i in range(300):  # a busy channel: 300 changes in the day
        t = end - timedelta(hours=24) + timedelta(minutes=4.8 * i)
        state = model.react(state, stimulus_from_text(TEXTS[i % len(TEXTS)]), t)
        points.append((t, state.as_dict()))
    from clara_core.companion.chart import curve, render_png

    curves, renders = [], []
    for _ in range(10):
        t0 = time.perf_counter()
        data = curve(model, points, end - timedelta(hours=24), end)
        t1 = time.perf_counter()
        png = render_png(data, "Europe/Berlin", "bench")
        renders.append(time.perf_counter() - t1)
        curves.append(t1 - t0)
    print(
        f"/clara mood chart: curve p50={percentile(curves, 0.5) * 1e3:.1f}ms, "
        f"PNG p50={percentile(renders, 0.5) * 1e3:.0f}ms max={max(renders) * 1e3:.0f}ms "
        f"({len(png) // 1024} KiB; first render includes matplotlib's import)"
    )


ORS_USERS = int(os.environ.get("BENCH_ORS_USERS", "10000"))


def _ors_reply(action: str, message: str = ""):
    import json

    from tests.fakes.fake_llm import Reply

    body = {
        "action": action,
        "reason": "bench",
        "message": message,
        "note_kind": "",
        "note_text": "",
        "note_relevance": 0,
        "note_not_before": "",
        "note_expires_at": "",
    }
    return Reply(json.dumps(body))


async def ors_bench() -> None:
    from sqlalchemy import delete, event, update
    from sqlalchemy.dialects.postgresql import insert

    from bench._cortex_env import services
    from clara_core.companion.ors import OrsRules, QuietHours
    from clara_core.pipeline.proactive import ModelDecider, OrsRunner, OutboxSender
    from storage.models import UserInteractionPattern
    from storage.proactive import ProactiveStore
    from tests.fakes.fake_llm import FakeLLM
    from tests.support.clock import Clock
    from tests.support.cortex import text_model_for

    rules = OrsRules(
        timezone="Europe/Berlin",
        min_speak_gap=timedelta(hours=2),
        quiet_hours=QuietHours.parse("22:00-08:00"),
    )
    t0 = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)  # a Monday noon in Berlin
    async with services(pool_size=16) as svc, FakeLLM() as fake:
        trips = 0

        def count(*_args: object) -> None:
            nonlocal trips
            trips += 1

        event.listen(svc.engine.sync_engine, "before_cursor_execute", count)
        text_model, llm = text_model_for(fake, "openai")
        try:
            # 1. One pass over ORS_USERS due users (a mix: most wait, some speak).
            calls = 0

            def one_in_ten(_request: object):
                nonlocal calls
                calls += 1
                return _ors_reply("speak" if calls % 10 == 0 else "wait", "Hey, how are you?")

            fake.default = one_in_ten
            rows = [
                {
                    "user_id": f"u{i}",
                    "talked_in_dm": True,
                    "last_user_message_at": t0 - timedelta(hours=3),
                    "unanswered": 0,
                    "proactive_sent": 0,
                    "proactive_answered": 0,
                    "active_hours": {"11": 3},
                    "boundaries": [],
                    "open_threads": [],
                    "next_check_at": t0 - timedelta(minutes=1),
                }
                for i in range(ORS_USERS)
            ]
            async with svc.engine.begin() as conn:
                for k in range(0, len(rows), 2000):
                    await conn.execute(insert(UserInteractionPattern), rows[k : k + 2000])
            # First at 23:00 (quiet hours: no model call, the database's share alone),
            # then at noon with a model call per user.
            for label, at in (("quiet hours", t0 + timedelta(hours=11)), ("noon", t0)):
                async with svc.engine.begin() as conn:
                    await conn.execute(
                        update(UserInteractionPattern).values(
                            next_check_at=at - timedelta(minutes=1),
                            last_user_message_at=at - timedelta(hours=3),
                        )
                    )
                concurrency = 16
                runner = OrsRunner(
                    ProactiveStore(svc.engine),
                    ModelDecider(text_model),
                    OutboxSender(limit=ORS_USERS),
                    rules,
                    Clock(at),
                    concurrency=concurrency,
                )
                trips = 0
                start = time.perf_counter()
                report = await runner.run_pass()
                wall = time.perf_counter() - start
                print(
                    f"ORS pass ({label}): {report.assessed} users in {wall:.1f}s "
                    f"({report.assessed / wall:.0f} users/s, concurrency {concurrency}), "
                    f"{trips / max(report.assessed, 1):.1f} DB round trips/user "
                    f"({report.spoke} spoke, {report.model_calls} model calls)"
                )

            async with svc.engine.begin() as conn:  # the month is one user's alone
                await conn.execute(delete(UserInteractionPattern))
            # 2. A simulated month of one user's life with an eager model.
            fake.default = _ors_reply("speak", "Thinking of you, how's it going?")
            clock = Clock(t0)
            sender = OutboxSender(limit=10_000)
            runner = OrsRunner(
                ProactiveStore(svc.engine), ModelDecider(text_model), sender, rules, clock
            )
            await runner.saw_message("month", None, is_dm=True)
            rng = random.Random(7)
            seen = 0
            end = t0 + timedelta(days=30)
            while clock() < end:
                clock.advance(10)
                await runner.run_pass()
                mine = [m for m in sender.sent if m[0] == "month"]
                if len(mine) > seen:
                    seen = len(mine)
                    if rng.random() < 0.5:  # she answers half of them, a little later
                        clock.advance(30)
                        await runner.saw_message("month", None, is_dm=True)
            sent = await runner.store.messages("month")
            ats = [m.at for m in sent]
            gaps = [(b - a).total_seconds() / 3600 for a, b in pairwise(ats)]
            quiet = sum(
                1
                for a in ats
                if rules.quiet_hours and rules.quiet_hours.contains(a.astimezone(rules.tz).time())
            )
            print(
                f"ORS simulated month: {len(ats)} messages, gaps min {min(gaps):.1f} h / "
                f"median {percentile(gaps, 0.5):.1f} h / max {max(gaps):.1f} h, "
                f"quiet-hour violations {quiet}, gap violations "
                f"{sum(1 for g in gaps if g < rules.min_speak_gap.total_seconds() / 3600)}"
            )
        finally:
            await llm.aclose()


def main() -> None:
    pure_step()
    chart()
    asyncio.run(section_build())
    if os.environ.get("BENCH_MOOD_DB", "1") != "0":
        asyncio.run(with_database())
    if os.environ.get("BENCH_ORS", "1") != "0":
        asyncio.run(ors_bench())


if __name__ == "__main__":
    main()
