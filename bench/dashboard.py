"""The dashboard's cost and speed (clara_core.monitor + clara_core.dashboard).

BENCH_DASH_CHANNELS conversations (default 100) run real Clara turns (the
TurnRunner and the openai SDK, as bench/pipeline.py does) against the fake LLM
in another process (BENCH_DASH_LLM: instant or stream40; BENCH_DASH_REFRESH: the
pages' refresh period, default 1 s), BENCH_DASH_RATE
turns/s in all (default 20).  Each finished
turn is recorded the way the Discord adapter records it.  The monitor has an
hour of history in its charts (3,600 turns) and the mood of 20 channels from
the probe.  Pages are opened by a separate process (their parsing is not
counted as Clara's CPU):

1. Page load: GET / (server-rendered, the whole snapshot embedded) p50/p95,
   and the first event of /events after connecting, with the conversations on.
2. Live update latency: record() → the update (a delta) holding that turn parsed
   by each of BENCH_DASH_PAGES open pages (default 5), p50/p95, and the size of
   those updates.
3. CPU per turn of this process, in three windows of BENCH_DASH_SECONDS/2:
   no monitor, monitor + open pages, no monitor again.  The monitor's cost per
   turn is the difference; the goal is < 2 % of Clara's own.  On a shared
   2-core machine the two no-monitor windows alone differ by 5-15 %, more than
   the 2 % to be measured, so:
4. the monitor in isolation: the conversations stopped, the same turns (their
   records, RATE a second) fed to the monitor with the same pages open, against
   the same feed into nothing.  The difference still drifts with the machine
   (with no page open, where the monitor does nothing but record(), it reads
   ~15 µs, rounds from -2 to 43 µs), so the monitor's own CPU is also timed
   directly: every step of the tasks created while its rounds run (its feeder,
   its probe, each page's stream, with the sends) and every record() call, in
   thread CPU time.  That leaves out only what the monitor costs the rest of the
   process indirectly (caches, the event loop's extra wake-ups).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Coroutine
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # also when run directly: python bench/dashboard.py

from bench.common import summary  # noqa: E402
from clara_core.monitor import REFRESH_S, Activity, Monitor  # noqa: E402

CHANNELS = int(os.environ.get("BENCH_DASH_CHANNELS", "100"))
RATE = float(os.environ.get("BENCH_DASH_RATE", "20"))
PAGES = int(os.environ.get("BENCH_DASH_PAGES", "5"))
SECONDS = float(os.environ.get("BENCH_DASH_SECONDS", "20"))
#: The fake LLM's answers: "instant" (3 chunks at once: the cheapest turn Clara
#: has, so the monitor's share is at its largest) or "stream40" (40 chunks at
#: 40 tokens/s: closer to a real answer).
LLM_MODE = os.environ.get("BENCH_DASH_LLM", "instant")
#: The pages' refresh period (DISCORD_MONITOR_REFRESH_SECONDS), seconds.
REFRESH = float(os.environ.get("BENCH_DASH_REFRESH", str(REFRESH_S)))
LOADS = 50
#: Rounds of the isolated measurement (4.), each two windows of BENCH_DASH_SECONDS/2.
ROUNDS = int(os.environ.get("BENCH_DASH_ROUNDS", "3"))

MOOD = ("dopamine", "serotonin", "oxytocin", "cortisol", "melatonin", "novelty")


def _state() -> dict:
    return {
        "discord_connected": True,
        "provider": "openai",
        "model": "gpt-4o",
        "servers": 3,
        "latency_ms": 42,
        "busy_channels": {str(1000 + i): 1 for i in range(10)},
        "cortex": {"outbox_pending": 0, "postgresql": "up", "redis": "up"},
        "mcp": [
            {"name": f"mcp-{i}", "state": "running", "tools": ["a", "b"], "restarts": 0}
            for i in range(3)
        ],
    }


async def _probe(channels: list[int]) -> dict:
    # Rounded as Clara's own probe rounds them (clara_core/app.py).
    return {"mood": {str(c): {m: round(random.random(), 3) for m in MOOD} for c in channels}}


# -- the pages (a separate process) --------------------------------------------
async def _pages(port: int, pages: int, seconds: float, quiet: bool = False) -> dict:
    """Load the page LOADS times, then keep ``pages`` live pages open for ``seconds``,
    timing each update.  ``quiet``: no page loads, and the updates read but not
    parsed (4.: only Clara's side is measured; a reader parsing JSON next to her on
    a 2-core machine slows her own code down and would be counted as hers)."""
    import aiohttp

    base = f"http://127.0.0.1:{port}"
    loads: list[float] = []
    firsts: list[float] = []
    latencies: list[float] = []
    sizes: list[float] = []  # bytes of each update after the first event
    async with aiohttp.ClientSession() as http:
        for _ in range(0 if quiet else LOADS):
            t0 = time.perf_counter()
            async with http.get(f"{base}/") as resp:
                await resp.read()
            loads.append(time.perf_counter() - t0)

        async def page() -> None:
            t0 = time.perf_counter()
            seen = 0.0
            async with http.get(f"{base}/events") as resp:
                first = True
                deadline = time.monotonic() + seconds
                async for raw in resp.content:
                    if time.monotonic() > deadline:
                        break
                    if quiet:
                        continue
                    line = raw.decode()
                    if not line.startswith("data:"):
                        continue
                    now = time.time()
                    snap = json.loads(line[5:])
                    if first:
                        firsts.append(time.perf_counter() - t0)
                        first = False
                    else:
                        sizes.append(len(raw))
                    # The first event's rows are objects; a delta's are arrays of
                    # its "fields" (monitor.ROW_FIELDS).
                    at = snap["fields"].index("at") if "fields" in snap else "at"
                    for row in snap["recent"]:
                        if row[at] > seen:
                            latencies.append(now - row[at])
                    seen = max([seen] + [r[at] for r in snap["recent"]])

        await asyncio.gather(*(page() for _ in range(pages)))
    return {"loads": loads, "firsts": firsts, "latencies": latencies, "sizes": sizes}


async def _open_pages(monitor: Monitor, seconds: float, quiet: bool) -> asyncio.subprocess.Process:
    """The pages process, once its PAGES live pages are open and their first events
    (the whole hour each) sent: what it costs to open a page is not a turn's cost."""
    pages = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--pages",
        str(monitor.port),
        str(PAGES),
        str(seconds),
        *(["--quiet"] if quiet else []),
        stdout=asyncio.subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while len(monitor.page_backlogs()) < PAGES:
        if time.monotonic() > deadline:
            raise RuntimeError("the pages process did not open its pages within 60 s")
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # their first events (the hour each) are written
    return pages


# -- Clara's turns and the monitor (this process) -------------------------------
class Conversations:
    """CHANNELS conversations running real turns (TurnRunner, the openai SDK) against
    the fake LLM in another process, RATE turns/s in all; each finished turn goes to
    ``sink`` the way the Discord adapter records it (tier, first text, tools)."""

    def __init__(self, runner) -> None:
        self.runner = runner
        self.sink = lambda activity: None
        self.turns = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def _one(self, channel: int) -> None:
        from clara_core.pipeline.events import Done, TextDelta, TierChosen, ToolFinished
        from clara_core.pipeline.turn import TurnInput
        from tools.registry import ToolContext

        ctx = ToolContext(user_id=f"u{channel}", channel_id=str(1000 + channel))
        await asyncio.sleep(random.uniform(0, CHANNELS / RATE))  # spread the starts
        while not self._stop.is_set():
            t0 = time.monotonic()
            tier, ttft, tools, model = None, None, [], "-"
            async for event in self.runner.run(TurnInput(text="hello", context=ctx)):
                if isinstance(event, TierChosen):
                    tier = event.tier or "base"
                elif isinstance(event, TextDelta) and ttft is None:
                    ttft = time.monotonic() - t0
                elif isinstance(event, ToolFinished):
                    tools.append(event.name)
                elif isinstance(event, Done):
                    model = event.model
            self.sink(
                Activity(
                    time.time(),
                    f"#chan-{channel}",
                    f"user{channel}",
                    model,
                    time.monotonic() - t0,
                    model != "-",
                    channel_id=1000 + channel,
                    tier=tier,
                    ttft_s=ttft,
                    tools=tuple(tools),
                )
            )
            self.turns += 1
            await asyncio.sleep(random.expovariate(RATE / CHANNELS))

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._one(c)) for c in range(CHANNELS)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def window(self, seconds: float) -> tuple[float, int]:
        """(CPU seconds of this process, turns finished) over ``seconds``."""
        cpu0, turns0 = time.process_time(), self.turns
        await asyncio.sleep(seconds)
        return time.process_time() - cpu0, self.turns - turns0


class _TimedSteps(Coroutine):
    """A task's coroutine whose every step (send/throw) adds its thread CPU time to
    ``spent[0]``: what the monitor's own tasks cost, without the machine's drift
    that the difference of two windows carries (see 4.)."""

    __slots__ = ("_coro", "_spent")

    def __init__(self, coro: Coroutine, spent: list[int]) -> None:
        self._coro, self._spent = coro, spent

    def send(self, value):
        t0 = time.thread_time_ns()
        try:
            return self._coro.send(value)
        finally:
            self._spent[0] += time.thread_time_ns() - t0

    def throw(self, *exc):
        t0 = time.thread_time_ns()
        try:
            return self._coro.throw(*exc)
        finally:
            self._spent[0] += time.thread_time_ns() - t0

    def close(self) -> None:
        self._coro.close()

    def __await__(self):
        return self

    def __next__(self):
        return self.send(None)


def _timing_tasks(spent: list[int]):
    """A task factory (loop.set_task_factory): every task created from now on (the
    monitor's feeder and probe, each page's stream) has its steps timed."""

    def factory(loop, coro, **kwargs):
        return asyncio.Task(_TimedSteps(coro, spent), loop=loop, **kwargs)

    return factory


async def _replay(
    monitor: Monitor | None, seconds: float, spent: list[int] | None = None
) -> tuple[float, int]:
    """(CPU seconds, turns) of feeding turn records at RATE a second for ``seconds``
    to ``monitor`` (None: into nothing), as the conversations would; the thread CPU
    time of the record() calls is added to ``spent[0]``."""
    record = monitor.record if monitor is not None else (lambda activity: None)
    spent = spent if spent is not None else [0]

    def sink(activity: Activity) -> None:
        t0 = time.thread_time_ns()
        record(activity)
        spent[0] += time.thread_time_ns() - t0

    turns = 0
    cpu0 = time.process_time()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        channel = random.randrange(CHANNELS)
        sink(
            Activity(
                time.time(),
                f"#chan-{channel}",
                f"user{channel}",
                "gpt-4o",
                random.uniform(0.5, 4),
                True,
                channel_id=1000 + channel,
                tier="base",
                ttft_s=0.2,
            )
        )
        turns += 1
        await asyncio.sleep(random.expovariate(RATE))
    return time.process_time() - cpu0, turns


async def run() -> None:
    from bench.pipeline import runner_for, start_server
    from clara_core.heap import settle_heap

    llm_proc, llm_port = start_server(LLM_MODE)
    runner, service = runner_for(llm_port)
    settle_heap()  # as Clara does once she has started
    talk = Conversations(runner)
    talk.start()
    phase = SECONDS / 2
    await asyncio.sleep(3.0)  # warm-up: connection pool, first turns of every channel
    # 1. Clara alone: the turns' CPU with no monitor at all.
    cpu_a, turns_a = await talk.window(phase)

    # 2. The monitor on, fed every turn, with PAGES pages open (another process).
    monitor = Monitor(host="127.0.0.1", port=0, state=_state, probe=_probe, refresh_s=REFRESH)
    now = time.time()
    for i in range(3600):  # an hour of chart already there
        monitor.turns.append((now - 3600 + i, random.uniform(0.5, 4), random.random() > 0.02))
    await monitor.start()
    talk.sink = monitor.record
    pages = await _open_pages(monitor, phase + 2.0, quiet=False)
    cpu_b, turns_b = await talk.window(phase)
    out, _ = await pages.communicate()
    talk.sink = lambda activity: None
    await monitor.stop()

    # 3. Clara alone again: the two "alone" windows bracket the monitored one.
    cpu_c, turns_c = await talk.window(phase)
    await talk.stop()

    # 4. The monitor in isolation (see the module's docstring), in rounds that
    # alternate with the same feed into nothing (the machine's drift cancels out).
    # The monitor's own tasks and record() calls are timed as well (own_ns).
    alone_cpu = fed_cpu = 0.0
    alone_turns = fed_turns = 0
    own_ns = 0
    loop = asyncio.get_running_loop()
    for _ in range(ROUNDS):
        cpu, turns = await _replay(None, phase)
        alone_cpu, alone_turns = alone_cpu + cpu, alone_turns + turns
        monitor = Monitor(host="127.0.0.1", port=0, state=_state, probe=_probe, refresh_s=REFRESH)
        now = time.time()
        for i in range(3600):  # an hour of chart already there, as in 2.
            monitor.turns.append((now - 3600 + i, random.uniform(0.5, 4), random.random() > 0.02))
        spent = [0]
        loop.set_task_factory(_timing_tasks(spent))
        await monitor.start()
        pages = await _open_pages(monitor, phase + 2.0, quiet=True)
        spent[0] = 0  # opening the pages is not a turn's cost
        cpu, turns = await _replay(monitor, phase, spent)
        own_ns += spent[0]
        fed_cpu, fed_turns = fed_cpu + cpu, fed_turns + turns
        await pages.communicate()
        await monitor.stop()
        loop.set_task_factory(None)
    isolated = fed_cpu / max(fed_turns, 1) - alone_cpu / max(alone_turns, 1)
    own = own_ns / 1e9 / max(fed_turns, 1)
    await service.aclose()
    llm_proc.terminate()
    llm_proc.wait()
    result = json.loads(out)

    alone = (cpu_a + cpu_c) / max(turns_a + turns_c, 1)
    watched = cpu_b / max(turns_b, 1)
    print(
        f"dashboard: {CHANNELS} conversations running real turns (fake LLM, {LLM_MODE}), "
        f"{RATE:g} turns/s in all, {PAGES} pages open, refresh {REFRESH:g} s"
    )
    print(f"  page load GET / ({LOADS}x): {summary(result['loads'], 'ms', 1000)}")
    if result["firsts"]:
        print(f"  first event after opening /events: {summary(result['firsts'], 'ms', 1000)}")
        print(f"  live update (record → page): {summary(result['latencies'], 'ms', 1000)}")
    if result["sizes"]:
        print(f"  update size per page (after the first event): {summary(result['sizes'], ' B')}")
    print(
        f"  Clara CPU per turn, no monitor: {alone * 1000:.3f} ms "
        f"({turns_a + turns_c} turns; windows {cpu_a / max(turns_a, 1) * 1000:.3f} / "
        f"{cpu_c / max(turns_c, 1) * 1000:.3f} ms)"
    )
    print(
        f"  Clara CPU per turn, monitor + {PAGES} pages: {watched * 1000:.3f} ms ({turns_b} turns)"
    )
    print(
        f"  monitor CPU per turn (difference of the windows): {(watched - alone) * 1000:.3f} ms = "
        f"{(watched - alone) / alone * 100:.2f}% of Clara's (goal < 2%)"
    )
    print(
        f"  monitor CPU per turn, in isolation: {isolated * 1e6:.1f} µs = "
        f"{isolated / alone * 100:.2f}% of Clara's (goal < 2%; {fed_turns} turns fed, "
        f"{PAGES} pages open, vs {alone_turns} into nothing)"
    )
    print(
        f"  monitor CPU per turn, its own tasks and record() timed: {own * 1e6:.1f} µs = "
        f"{own / alone * 100:.2f}% of Clara's"
    )


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    if len(sys.argv) in (5, 6) and sys.argv[1] == "--pages":
        port, n, secs = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
        print(json.dumps(asyncio.run(_pages(port, n, secs, quiet=sys.argv[5:] == ["--quiet"]))))
    else:
        main()
