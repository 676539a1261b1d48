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
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
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


async def section_build(store=None, n: int = N, label: str = "in memory") -> None:
    service = MoodService(HormoneModel("Europe/Berlin"), store, _Clock())
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


def main() -> None:
    pure_step()
    chart()
    asyncio.run(section_build())
    if os.environ.get("BENCH_MOOD_DB", "1") != "0":
        asyncio.run(with_database())


if __name__ == "__main__":
    main()
