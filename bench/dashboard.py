"""The dashboard's cost and speed (clara_core.monitor + clara_core.dashboard).

A real Monitor on loopback, fed turns the way the Discord adapter feeds it
(``record()``), from BENCH_DASH_CHANNELS conversations (default 100) at
BENCH_DASH_RATE turns/s in all (default 20), with an hour of history already
in the charts (3,600 turns) and the mood of 20 channels from the probe.
Pages are opened by a separate process (so their parsing is not counted as the
monitor's CPU):

1. Page load: GET / (server-rendered, the whole snapshot embedded) p50/p95,
   and the first event of /events after connecting.
2. Live update latency: record() → the snapshot holding that turn parsed by
   each of BENCH_DASH_PAGES open pages (default 5), p50/p95.
3. The monitor's CPU per turn: this process's CPU time over the run divided by
   the turns recorded, with the pages open, and idle (pages open, no turns).
   Compare with a turn's CPU in Clara (bench/pipeline.py): the goal is < 2 %.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # also when run directly: python bench/dashboard.py

from bench.common import summary  # noqa: E402
from clara_core.monitor import Activity, Monitor  # noqa: E402

CHANNELS = int(os.environ.get("BENCH_DASH_CHANNELS", "100"))
RATE = float(os.environ.get("BENCH_DASH_RATE", "20"))
PAGES = int(os.environ.get("BENCH_DASH_PAGES", "5"))
SECONDS = float(os.environ.get("BENCH_DASH_SECONDS", "20"))
LOADS = 50

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
    return {"mood": {str(c): {m: random.random() for m in MOOD} for c in channels}}


# -- the pages (a separate process) --------------------------------------------
async def _pages(port: int, pages: int, seconds: float) -> dict:
    import aiohttp

    base = f"http://127.0.0.1:{port}"
    loads: list[float] = []
    firsts: list[float] = []
    latencies: list[float] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(LOADS):
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
                    line = raw.decode()
                    if not line.startswith("data:"):
                        continue
                    now = time.time()
                    snap = json.loads(line[5:])
                    if first:
                        firsts.append(time.perf_counter() - t0)
                        first = False
                    for row in snap["recent"]:
                        if row["at"] > seen:
                            latencies.append(now - row["at"])
                    seen = max([seen] + [r["at"] for r in snap["recent"]])

        await asyncio.gather(*(page() for _ in range(pages)))
    return {"loads": loads, "firsts": firsts, "latencies": latencies}


# -- the monitor (this process) ------------------------------------------------
async def run() -> None:
    monitor = Monitor(host="127.0.0.1", port=0, state=_state, probe=_probe)
    now = time.time()
    for i in range(3600):  # an hour of chart already there
        monitor.turns.append((now - 3600 + i, random.uniform(0.5, 4), random.random() > 0.02))
    await monitor.start()
    pages = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--pages",
        str(monitor.port),
        str(PAGES),
        str(SECONDS),
        stdout=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(2.0)  # the page loads are done; the streams are open

    async def feed(seconds: float, sink) -> tuple[float, int]:
        cpu0, until, turns = time.process_time(), time.monotonic() + seconds, 0
        while time.monotonic() < until:
            channel = random.randrange(CHANNELS)
            sink(
                Activity(
                    time.time(),
                    f"#chan-{channel}",
                    f"user{random.randrange(1000)}",
                    "gpt-4o",
                    random.uniform(0.5, 4),
                    True,
                    channel_id=1000 + channel,
                )
            )
            turns += 1
            await asyncio.sleep(random.expovariate(RATE))
        return time.process_time() - cpu0, turns

    # The feeding loop's own cost (building activities, sleeping), subtracted below.
    base_cpu, base_turns = await feed(SECONDS * 0.2, lambda a: None)
    cpu_busy, turns = await feed(SECONDS * 0.4, monitor.record)
    idle_s = SECONDS * 0.2
    cpu1 = time.process_time()
    await asyncio.sleep(idle_s)
    cpu_idle = time.process_time() - cpu1
    out, _ = await pages.communicate()
    await monitor.stop()
    result = json.loads(out)

    print(f"dashboard: {CHANNELS} channels, {RATE:g} turns/s, {PAGES} pages open")
    print(f"  page load GET / ({LOADS}x): {summary(result['loads'], 'ms', 1000)}")
    if result["firsts"]:
        print(f"  first event after opening /events: {summary(result['firsts'], 'ms', 1000)}")
        print(f"  live update (record → page): {summary(result['latencies'], 'ms', 1000)}")
    per_turn = cpu_busy / max(turns, 1) - base_cpu / max(base_turns, 1)
    print(
        f"  monitor CPU per turn: {per_turn * 1000:.3f} ms "
        f"({turns} turns in {SECONDS * 0.4:.0f}s, the feeding loop's own "
        f"{base_cpu / max(base_turns, 1) * 1000:.3f} ms/turn subtracted)"
    )
    print(f"  monitor CPU idle with {PAGES} pages open: {cpu_idle / idle_s * 100:.2f}% of a core")


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--pages":
        port, n, secs = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
        print(json.dumps(asyncio.run(_pages(port, n, secs))))
    else:
        main()
