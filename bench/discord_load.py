"""200 conversations in 200 channels at once, end to end through a fake Discord.

Clara's real ``ClaraDiscordClient`` (discord.py + the real pipeline) runs in
this process against two fakes, each in its own process so their CPU time
doesn't count against Clara's event loop:

* ``bench/_fake_discord_server.py``: a ``FakeDiscord`` with Discord's default
  rules (5 message writes / 5 s per channel, 50 requests / s globally), one
  guild with N channels and one human user;
* ``bench/_fake_llm_server.py stream40``: every answer is 40 chunks at
  40 tokens/s, first token at once.

The human mentions Clara in every channel at once.  Measured:

* time from the user's message (MESSAGE_CREATE) to Clara's first visible
  message, p50/p95/max (goal: p95 < 300 ms plus the model's first token,
  which is ~0 here), and to the final text;
* 429s Clara *earned* (per channel and global): must be 0;
* every final text intact (equal to the model's answer, ``-# `` lines aside);
* event-loop lag in Clara's process (how late a 10 ms sleep wakes up;
  goal p99 < 50 ms), and RSS.

``BENCH_CHANNELS`` (default 200) sets N; ``BENCH_TIMEOUT`` (default 120 s) how
long to wait for every final text.  ``--runs K`` repeats the whole run K times
(fresh fakes and client each time) and ends with the per-run 429 counts and
first-visible-message latencies, e.g.
``BENCH_CHANNELS=100 python bench/discord_load.py --runs 20``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import discord  # noqa: E402
from discord.gateway import DiscordWebSocket  # noqa: E402

from bench.common import percentile  # noqa: E402
from clara_core.config import load_settings  # noqa: E402
from clara_core.discord_adapter.endpoints import configure_discord_endpoints  # noqa: E402
from clara_core.discord_adapter.runner import ClaraDiscordClient  # noqa: E402
from tests.support.llm import build_runner  # noqa: E402

CHANNELS = int(os.environ.get("BENCH_CHANNELS", "200"))
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "120"))
#: What ``_fake_llm_server.py stream40`` answers.
EXPECTED = "".join(f"word{i} " for i in range(40)).strip()
FIRST_MESSAGE_GOAL_S = 0.300
LAG_GOAL_S = 0.050


def visible_text(content: str) -> str:
    return "\n".join(line for line in content.split("\n") if not line.startswith("-# ")).strip()


def ms(value: float) -> str:
    return f"{value * 1000:.0f}ms"


def stats_line(values: list[float]) -> str:
    if not values:
        return "n=0"
    return (
        f"n={len(values)} p50={ms(percentile(values, 0.5))} p95={ms(percentile(values, 0.95))} "
        f"max={ms(max(values))} mean={ms(statistics.fmean(values))}"
    )


def rss_now_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rss_line() -> str:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return f"current {rss_now_kib() / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB"


class LogCounter(logging.Handler):
    """Counts warnings instead of printing hundreds of them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.name}: {str(record.msg)[:90]}"] += 1


class TimedClient(ClaraDiscordClient):
    """Clara's client, noting when each channel's user message reached it."""

    def __init__(self, received: dict[int, float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.received = received

    async def on_message(self, message: discord.Message) -> None:
        if not message.author.bot:
            self.received.setdefault(message.channel.id, time.monotonic())
        await super().on_message(message)


class FakeDiscordProcess:
    """The fake Discord subprocess and its JSON-lines control channel."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, n_channels: int) -> tuple[FakeDiscordProcess, dict[str, Any]]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bench" / "_fake_discord_server.py"),
            str(n_channels),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 26,
        )
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if not line:
                raise RuntimeError("fake Discord exited before it printed its address")
            return cls(proc), json.loads(line)
        except BaseException:
            await stop_process(proc)
            raise

    async def request(self, payload: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        async with self._lock:
            self.proc.stdin.write((json.dumps(payload) + "\n").encode())
            await self.proc.stdin.drain()
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("fake Discord exited")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"fake Discord: {answer['error']}")
        return answer

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.request({"cmd": "quit"}, timeout=5)
        await stop_process(self.proc)


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def start_fake_llm() -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "_fake_llm_server.py"),
        "stream40",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError("fake LLM exited before it printed its port")
        return proc, int(line)
    except BaseException:
        await stop_process(proc)
        raise


async def wait_ready(client: discord.Client, task: asyncio.Task, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not client.is_ready():
        if task.done():
            task.result()
            raise RuntimeError("discord client stopped before it was ready")
        if time.monotonic() > deadline:
            raise TimeoutError(f"discord client not ready after {timeout}s")
        await asyncio.sleep(0.01)


class LagProbe:
    """How late a 10 ms sleep wakes up, sampled for as long as it runs."""

    def __init__(self) -> None:
        self.start_at = time.monotonic()
        self.samples: list[tuple[float, float]] = []  # (time.monotonic() slept at, lateness)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.start_at = time.monotonic()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            await asyncio.sleep(0.01)
            self.samples.append((t, time.monotonic() - t - 0.01))

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of this process (``pid`` None) or of a child."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Run(NamedTuple):
    wall: float
    probe: LagProbe
    rss_before: str
    rss_after: str
    cpu: str


async def run_conversations(
    fake: FakeDiscordProcess,
    llm_pid: int,
    client: TimedClient,
    task: asyncio.Task,
) -> Run:
    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        "(Clara, the fake Discord and the fake LLM share them)"
    )
    pids = {"Clara": None, "fake Discord": fake.proc.pid, "fake LLM": llm_pid}
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    rss_before = rss_line()
    probe = LagProbe()
    probe.start()
    t0 = time.monotonic()
    await fake.request({"cmd": "send_all", "content": "tell me a story"})
    done = 0
    finished = False
    while time.monotonic() - t0 < TIMEOUT:
        if task.done():  # the client died; the report says what got through
            error = None if task.cancelled() else task.exception()
            print(f"FAIL: Clara's Discord client stopped during the run: {error!r}")
            break
        done = (await fake.request({"cmd": "progress", "expected": EXPECTED}))["done"]
        if done >= CHANNELS:
            finished = True
            break
        await asyncio.sleep(0.25)
    wall = time.monotonic() - t0
    await probe.stop()
    cpu = ", ".join(
        f"{name} {cpu_seconds(pid) - cpu_before[name]:.2f}s" for name, pid in pids.items()
    )
    cpu = f"{cpu} in {wall:.2f}s wall"
    rss_after = rss_line()
    if not finished:
        print(f"FAIL: only {done}/{CHANNELS} final texts after {wall:.1f}s")
    # Let the answers finish completely (final edits, clean-up) before the report.
    queue = client.conversation.queue if client.conversation is not None else None
    deadline = time.monotonic() + 10
    while queue is not None and time.monotonic() < deadline:
        if not any(queue.busy(channel_id) for channel_id in client.received):
            break
        await asyncio.sleep(0.05)
    return Run(wall, probe, rss_before, rss_after, cpu)


def summarize(
    report: dict[str, Any], received: dict[int, float], run: Run, logs: LogCounter
) -> dict[str, Any]:
    wall, probe = run.wall, run.probe
    channels = report["channels"]
    first_visible, to_final, delivery, handling = [], [], [], []
    intact = garbled = multi = 0
    example: list[tuple[int, bool, float, str]] | None = None
    kinds: Counter[str] = Counter()
    final_times: list[float] = []
    sends = [c["sent_at"] for c in channels if c["sent_at"] is not None]
    for c in channels:
        sent = c["sent_at"]
        for kind, _, outcome in c["requests"]:
            kinds[kind if outcome == "ok" else f"{kind}({outcome})"] += 1
        if c["id"] in received and sent is not None:
            delivery.append(received[c["id"]] - sent)
        live = [m for m in c["bot_messages"] if not m["deleted"]]
        if not c["bot_messages"] or sent is None:
            continue
        first_at = min(m["revisions"][0][0] for m in c["bot_messages"])
        first_visible.append(first_at - sent)
        if c["id"] in received:
            handling.append(first_at - received[c["id"]])
        if len(live) != 1:
            multi += 1
            if example is None:
                example = [
                    (len(m["revisions"]), m["deleted"], m["revisions"][0][0] - sent, m["content"])
                    for m in c["bot_messages"]
                ]
        if live and visible_text(live[-1]["content"]) == EXPECTED:
            intact += 1
            at = next(at for at, text in live[-1]["revisions"] if visible_text(text) == EXPECTED)
            to_final.append(at - sent)
            final_times.append(at)
        for m in c["bot_messages"]:
            for _, text in m["revisions"]:
                shown = visible_text(text)
                if shown not in ("", "…") and not EXPECTED.startswith(shown):
                    garbled += 1
                    break

    n = len(channels)
    print(
        f"N={n} conversations (channels) at once; fake LLM 40 tok @ 40 tok/s, first token at once"
    )
    span = max(final_times) - min(sends) if final_times and sends else float("nan")
    print(
        f"wall time until all finals: {span:.2f}s (first user message -> last final text; "
        f"benchmark saw it after {wall:.2f}s)"
    )
    print(
        f"first visible message (MESSAGE_CREATE -> Clara's first message stored): "
        f"{stats_line(first_visible)}"
    )
    if first_visible:
        p95 = percentile(first_visible, 0.95)
        verdict = "ok" if p95 < FIRST_MESSAGE_GOAL_S else "MISSED"
        print(f"  goal p95 < {ms(FIRST_MESSAGE_GOAL_S)} + first token: {verdict}")
    print(f"  of which gateway delivery to Clara: {stats_line(delivery)}")
    print(f"  of which Clara received -> message stored: {stats_line(handling)}")
    print(f"time to final text: {stats_line(to_final)}")
    rl = report["rate_limited"]
    print(
        f"429s earned: per-channel={rl['earned']} global={rl['earned_global']} "
        f"(injected={rl['injected']})"
    )
    if rl["earned"] or rl["earned_global"]:
        print(
            f"FAIL: Clara earned {rl['earned']} per-channel and {rl['earned_global']} global 429s "
            "(goal: 0)"
        )
    print(
        f"final text intact: {intact}/{n} channels; channels with != 1 bot message: {multi}; "
        f"channels with a revision that isn't a prefix of the answer: {garbled}"
    )
    if example is not None:
        print("  e.g. a channel with != 1 bot message (revisions, deleted, sent after, content):")
        for revisions, deleted, after, content in example:
            print(f"    {revisions} {deleted} +{ms(after)} {content[:60]!r}")
    if intact != n:
        print(f"FAIL: {n - intact} channels without the intact final text")
    lags = [lag for _, lag in probe.samples]
    if lags:
        worst_at, worst = max(probe.samples, key=lambda sample: sample[1])
        after_100ms = [lag for at, lag in probe.samples if at - probe.start_at > 0.1]
        burst_end = max(received.values(), default=probe.start_at) + 0.1
        after_burst = [lag for at, lag in probe.samples if at > burst_end]
        p99 = percentile(lags, 0.99)
        print(
            f"event-loop lag: p50={percentile(lags, 0.5) * 1000:.1f}ms "
            f"p99={p99 * 1000:.1f}ms max={worst * 1000:.0f}ms "
            f"(at t={worst_at - probe.start_at:.2f}s) "
            f"(goal p99 < {ms(LAG_GOAL_S)}: {'ok' if p99 < LAG_GOAL_S else 'MISSED'}); "
            f"p99 after the first 100 ms: {percentile(after_100ms, 0.99) * 1000:.1f}ms; "
            f"p99 from 100 ms after the last MESSAGE_CREATE reached Clara "
            f"(t={burst_end - probe.start_at:.2f}s): {percentile(after_burst, 0.99) * 1000:.1f}ms"
        )
    print(f"RSS before: {run.rss_before}; after: {run.rss_after}")
    print(f"CPU during the run: {run.cpu}")
    per = ", ".join(f"{k}={v / n:.2f}" for k, v in sorted(kinds.items()))
    print(f"REST requests per conversation: {sum(kinds.values()) / n:.2f} ({per})")
    print(f"all REST requests by kind:outcome: {report['request_counts']}")
    if report["internal_errors"] or report["unknown_routes"]:
        print(
            f"FAIL: fake Discord internal errors {report['internal_errors'][:3]}, "
            f"unknown routes {report['unknown_routes'][:3]}"
        )
    if logs.counts:
        print("warnings logged in Clara's process:")
        for text, count in logs.counts.most_common(6):
            print(f"  {count:5d} x {text}")
    return {
        "earned": rl["earned"],
        "earned_global": rl["earned_global"],
        "first_visible": first_visible,
        "intact": intact,
        "n": n,
    }


async def bench() -> dict[str, Any]:
    logs = LogCounter()
    logging.getLogger().addHandler(logs)
    previous_endpoints = (discord.http.Route.BASE, str(DiscordWebSocket.DEFAULT_GATEWAY))
    fake: FakeDiscordProcess | None = None
    llm_proc: asyncio.subprocess.Process | None = None
    try:
        fake, info = await FakeDiscordProcess.start(CHANNELS)
        llm_proc, port = await start_fake_llm()
        settings = load_settings(
            env_file=None,
            llm_provider="openai",
            custom_openai_api_key="k",
            custom_openai_base_url=f"http://127.0.0.1:{port}/v1",
            discord_bot_token=info["token"],
            discord_api_base=info["api_base"],
            discord_gateway_url=info["gateway_url"],
        )
        runner, service = build_runner(settings)
        received: dict[int, float] = {}
        client = TimedClient(received, runner=runner, settings=settings, guild_ready_timeout=0.05)
        configure_discord_endpoints(info["api_base"], info["gateway_url"])
        task = asyncio.create_task(client.start(info["token"]), name="discord-client")
        try:
            await wait_ready(client, task)
            run = await run_conversations(fake, llm_proc.pid, client, task)
            report = await fake.request({"cmd": "report"})
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 15)
            done, _ = await asyncio.wait({task}, timeout=10)
            if not done:
                task.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
            await service.aclose()
        return summarize(report, received, run, logs)
    finally:
        configure_discord_endpoints(*previous_endpoints)
        logging.getLogger().removeHandler(logs)
        if fake is not None:
            await fake.stop()
        if llm_proc is not None:
            await stop_process(llm_proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=int, default=1, help="repeat the whole run (fresh fakes and client)"
    )
    runs = parser.parse_args().runs
    results = []
    for i in range(runs):
        if runs > 1:
            print(f"\n=== run {i + 1}/{runs} ===")
        results.append(asyncio.run(bench()))
    if runs > 1:
        print(f"\n=== {runs} runs of N={CHANNELS} ===")
        print("global 429s per run:", [r["earned_global"] for r in results])
        print("per-channel 429s per run:", [r["earned"] for r in results])
        print("runs with any 429:", sum(1 for r in results if r["earned"] or r["earned_global"]))
        print("intact finals per run:", [f"{r['intact']}/{r['n']}" for r in results])
        p50s = [percentile(r["first_visible"], 0.5) for r in results if r["first_visible"]]
        p95s = [percentile(r["first_visible"], 0.95) for r in results if r["first_visible"]]
        if p50s:
            print(
                f"first visible message: p50 per run median={ms(statistics.median(p50s))} "
                f"max={ms(max(p50s))}; p95 per run median={ms(statistics.median(p95s))} "
                f"max={ms(max(p95s))}"
            )


if __name__ == "__main__":
    main()
