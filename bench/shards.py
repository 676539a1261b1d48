"""Sharded Clara: 4 shard processes × 250 guilds against one fake Discord.

Everything runs on loopback, each part in its own process so no CPU time is
misattributed:

* one PostgreSQL (pgvector) and one Redis, started as Clara's embedded servers
  but shared: every Clara process gets them as DATABASE_URL / REDIS_URL;
* ``bench/_fake_discord_server.py --guilds G --shards S``: the fake Discord with
  Discord's real global limit (50 requests/s per bot token) and per-channel
  limits, G guilds with one channel each, routed to shard ``(guild_id >> 22) % S``;
* ``bench/_fake_llm_server.py instant``: a short streamed reply;
* P Clara processes, each the real ``discord_bot.py`` with its own
  CLARA_DATA_DIR, DISCORD_SHARD_COUNT=S and its share of DISCORD_SHARD_IDS (P=1:
  one process runs all S shards).  They run under a thin wrapper (this file with
  ``--clara-child``) that adds an event-loop lag probe: a callback every 10 ms
  that records how late it ran.

Then a burst: one mention in each of C channels spread over all guilds, sent as
fast as the fake can.  Printed per configuration:

* global 429s across processes (must be 0) and per-route 429s;
* every message answered exactly once, with the intact text;
* p50/p95 MESSAGE_CREATE → first visible bot message, and beside it the floor
  the global limit imposes: with the budget B requests/s and at least one request
  per answer, the k-th answer of a simultaneous burst cannot start before
  ``floor((k-1)/B)`` s, so p95 >= ``floor((ceil(0.95·C)-1)/B)`` s;
* event-loop lag p99 per process (idle and during the burst);
* RSS per process (idle after start-up, peak during the burst);
* PostgreSQL connections in use (pg_stat_activity; idle and peak).

Knobs (environment): BENCH_SHARDS_PROCESSES (comma list of configurations to
compare, default ``4,1``), BENCH_SHARDS_COUNT (shards, default 4),
BENCH_SHARDS_GUILDS (default 1000), BENCH_SHARDS_CHANNELS (burst size, default
400), BENCH_SHARDS_TIMEOUT (seconds to wait for all answers, default 120).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # also when run directly: python bench/shards.py
ENTRY = ROOT / "discord_bot.py"
EXPECTED = "Hi! Nice to meet you."  # bench/_fake_llm_server.py instant
LAG_INTERVAL = 0.010


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# ------------------------------------------------------------------ the child


def _child() -> None:
    """Run ``discord_bot.py`` with an event-loop lag probe on every loop it creates.

    The probe is a ``call_later`` chain, so it needs no task and nothing inside
    Clara; a daemon thread appends the samples (``loop-id monotonic lag``) to
    BENCH_LAG_FILE twice a second, so the bench can cut them by time."""
    import runpy

    lag_file = Path(os.environ.pop("BENCH_LAG_FILE"))
    samples: collections.deque[tuple[int, float, float]] = collections.deque()

    class ProbedPolicy(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            loop = super().new_event_loop()
            loop_id = id(loop)

            def tick(expected: float) -> None:
                now = loop.time()
                samples.append((loop_id, time.monotonic(), max(0.0, now - expected)))
                loop.call_later(LAG_INTERVAL, tick, now + LAG_INTERVAL)

            loop.call_soon(tick, loop.time())
            return loop

    def writer() -> None:
        with lag_file.open("a") as out:
            while True:
                time.sleep(0.5)
                while samples:
                    loop_id, at, lag = samples.popleft()
                    out.write(f"{loop_id} {at:.4f} {lag:.5f}\n")
                out.flush()

    asyncio.set_event_loop_policy(ProbedPolicy())
    threading.Thread(target=writer, name="bench-lag-writer", daemon=True).start()
    sys.argv = [str(ENTRY)]
    runpy.run_path(str(ENTRY), run_name="__main__")


# ------------------------------------------------------------------ helpers


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def visible_text(content: str) -> str:
    return "\n".join(line for line in content.split("\n") if not line.startswith("-# ")).strip()


class JsonLineProcess:
    """A helper server in its own process: one JSON line out at start, then a
    JSON-lines control channel on stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, hello: Any) -> None:
        self.proc = proc
        self.hello = hello
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, *argv: str) -> JsonLineProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 26,
        )
        line = await asyncio.wait_for(proc.stdout.readline(), 120)  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"{argv[0]} exited before it said where it listens")
        return cls(proc, json.loads(line))

    async def request(self, payload: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        async with self._lock:
            self.proc.stdin.write((json.dumps(payload) + "\n").encode())
            await self.proc.stdin.drain()
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"fake Discord: {answer['error']}")
        return answer

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.request({"cmd": "quit"}, timeout=5)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()


@dataclass
class ShardProcess:
    index: int
    shard_ids: list[int]
    root: Path
    proc: subprocess.Popen[bytes] | None = None
    rss_idle_kib: int = 0
    rss_peak_kib: int = 0

    @property
    def log(self) -> Path:
        return self.root / "clara.out"

    @property
    def lag_file(self) -> Path:
        return self.root / "lag.txt"

    def start(self, env: dict[str, str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--clara-child"],
                env={**env, "BENCH_LAG_FILE": str(self.lag_file)},
                cwd=self.root,  # no developer .env
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"Clara process {self.index} exited:\n{tail}")
        return "connected to Discord" in self.log.read_text(errors="replace")

    def lags(self, start: float, end: float) -> list[float]:
        """Lag samples of the process's main loop (the one with most samples) in [start, end]."""
        by_loop: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
        with contextlib.suppress(OSError):
            for line in self.lag_file.read_text().splitlines():
                parts = line.split()
                if len(parts) == 3:
                    by_loop[parts[0]].append((float(parts[1]), float(parts[2])))
        if not by_loop:
            return []
        main = max(by_loop.values(), key=len)
        return [lag for at, lag in main if start <= at <= end]

    async def stop(self) -> None:
        from tests.support.clara_process import stop_process

        if self.proc is not None:
            await stop_process(self.proc)


@dataclass
class Result:
    processes: int
    shards: int
    guilds: int
    channels: int
    startup_s: float = 0.0
    burst_s: float = 0.0
    global_429: int = 0
    route_429: int = 0
    answered_once: int = 0
    intact: int = 0
    problems: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    floor_p95: float = 0.0
    budget: float = 45.0
    lag_idle_p99: list[float] = field(default_factory=list)
    lag_burst_p99: list[float] = field(default_factory=list)
    rss_idle_mib: list[float] = field(default_factory=list)
    rss_peak_mib: list[float] = field(default_factory=list)
    pg_idle: int = 0
    pg_peak: int = 0
    requests: dict[str, int] = field(default_factory=dict)


async def pg_connections(admin_conninfo: str, database: str) -> int:
    import psycopg

    async with await psycopg.AsyncConnection.connect(admin_conninfo, autocommit=True) as c:
        cur = await c.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0


# ------------------------------------------------------------------ one run


async def run_config(
    n_processes: int,
    *,
    shards: int,
    guilds: int,
    channels: int,
    timeout: float,
    database_url: str,
    redis_url: str,
    admin_conninfo: str,
    work: Path,
) -> Result:
    result = Result(n_processes, shards, guilds, channels)
    fake = await JsonLineProcess.start(
        str(ROOT / "bench" / "_fake_discord_server.py"),
        "--guilds",
        str(guilds),
        "--shards",
        str(shards),
    )
    llm_proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "_fake_llm_server.py"),
        "instant",
        stdout=asyncio.subprocess.PIPE,
    )
    procs: list[ShardProcess] = []
    try:
        llm_port = int(await asyncio.wait_for(llm_proc.stdout.readline(), 60))  # type: ignore[union-attr]
        info = fake.hello
        base_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DISCORD_", "CLARA_", "LLM_", "DATABASE_", "REDIS_"))
        }
        base_env.update(
            PYTHONUNBUFFERED="1",
            DISCORD_BOT_TOKEN=info["token"],
            DISCORD_API_BASE=info["api_base"],
            DISCORD_GATEWAY_URL=info["gateway_url"],
            DISCORD_SHARD_COUNT=str(shards),
            DISCORD_MONITOR_ENABLED="false",
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            LLM_PROVIDER="openai",
            CUSTOM_OPENAI_API_KEY="k",
            CUSTOM_OPENAI_BASE_URL=f"http://127.0.0.1:{llm_port}/v1",
            PROACTIVE_ENABLED="false",
        )
        result.budget = float(base_env.get("DISCORD_GLOBAL_REQUESTS_PER_SECOND", 45))
        envs = []
        for i in range(n_processes):
            ids = list(range(i, shards, n_processes))
            env = {**base_env, "CLARA_DATA_DIR": str(work / f"p{i}" / "data")}
            if n_processes > 1:  # one process: all shards, as DISCORD_SHARD_IDS unset means
                env["DISCORD_SHARD_IDS"] = ",".join(map(str, ids))
            procs.append(ShardProcess(i, ids, work / f"p{i}"))
            envs.append(env)
        t0 = time.monotonic()
        for p, env in zip(procs, envs, strict=True):
            p.start(env)
        while not all(p.ready() for p in procs):
            if time.monotonic() - t0 > 180:
                raise RuntimeError("Clara processes not connected after 180 s")
            await asyncio.sleep(0.2)
        result.startup_s = time.monotonic() - t0
        await asyncio.sleep(2.0)  # start-up requests out of the window, loops settled
        idle_start = time.monotonic()
        await asyncio.sleep(3.0)
        idle_end = time.monotonic()
        for p in procs:
            assert p.proc is not None
            p.rss_idle_kib = p.rss_peak_kib = rss_kib(p.proc.pid)
        result.pg_idle = result.pg_peak = await pg_connections(admin_conninfo, "clara")

        # The burst: one mention per channel, spread over every guild.
        all_channels: list[int] = info["channel_ids"]
        step = len(all_channels) / channels
        chosen = [all_channels[int(i * step)] for i in range(channels)]
        burst_start = time.monotonic()
        await fake.request({"cmd": "send_all", "content": "hello there", "channels": chosen})
        deadline = burst_start + timeout
        done = 0
        while time.monotonic() < deadline:
            for p in procs:
                assert p.proc is not None
                p.rss_peak_kib = max(p.rss_peak_kib, rss_kib(p.proc.pid))
            result.pg_peak = max(result.pg_peak, await pg_connections(admin_conninfo, "clara"))
            done = (await fake.request({"cmd": "progress", "expected": EXPECTED}))["done"]
            if done >= channels:
                break
            await asyncio.sleep(0.5)
        burst_end = time.monotonic()
        result.burst_s = burst_end - burst_start
        await asyncio.sleep(2.0)  # time for a wrong second answer
        report = await fake.request({"cmd": "report"})

        result.global_429 = report["rate_limited"]["earned_global"]
        result.route_429 = report["rate_limited"]["earned"] - result.global_429
        result.requests = report["request_counts"]
        for ch in report["channels"]:
            msgs = [m for m in ch["bot_messages"] if not m["deleted"]]
            if len(msgs) == 1:
                result.answered_once += 1
            else:
                result.problems.append(f"channel {ch['id']}: {len(msgs)} answers")
            if msgs and all(visible_text(m["content"]) == EXPECTED for m in msgs):
                result.intact += 1
            if msgs and msgs[0]["revisions"] and ch["sent_at"] is not None:
                result.latencies.append(msgs[0]["revisions"][0][0] - ch["sent_at"])
        k = math.ceil(0.95 * channels)
        result.floor_p95 = math.floor((k - 1) / result.budget)
        for p in procs:
            result.lag_idle_p99.append(percentile(p.lags(idle_start, idle_end), 0.99) * 1000)
            result.lag_burst_p99.append(percentile(p.lags(burst_start, burst_end), 0.99) * 1000)
            result.rss_idle_mib.append(p.rss_idle_kib / 1024)
            result.rss_peak_mib.append(p.rss_peak_kib / 1024)
        if done < channels:
            result.problems.append(f"only {done}/{channels} answered within {timeout:.0f}s")
        for p in procs:
            if "Traceback" in p.log.read_text(errors="replace"):
                result.problems.append(f"process {p.index} logged a traceback ({p.log})")
    finally:
        await asyncio.gather(*(p.stop() for p in procs))
        await fake.stop()
        if llm_proc.returncode is None:
            llm_proc.terminate()
            await llm_proc.wait()
    return result


def print_result(r: Result) -> None:
    ms = lambda v: f"{v:.0f}"  # noqa: E731
    print(
        f"-- {r.processes} process(es), {r.shards} shards, {r.guilds} guilds, "
        f"burst in {r.channels} channels"
    )
    print(f"   start-up until every process connected: {r.startup_s:.1f}s")
    print(
        f"   429s: global {r.global_429} (must be 0), per-route {r.route_429}; "
        f"answered exactly once {r.answered_once}/{r.channels}, intact text "
        f"{r.intact}/{r.channels}; burst answered in {r.burst_s:.1f}s"
    )
    if r.latencies:
        print(
            f"   MESSAGE_CREATE -> first visible message: p50 {percentile(r.latencies, 0.5):.2f}s "
            f"p95 {percentile(r.latencies, 0.95):.2f}s max {max(r.latencies):.2f}s "
            f"(floor for p95 at {r.budget:.0f} req/s: {r.floor_p95:.0f}s)"
        )
    print(
        "   event-loop lag p99 per process (ms): idle "
        + ", ".join(map(ms, r.lag_idle_p99))
        + "; burst "
        + ", ".join(map(ms, r.lag_burst_p99))
    )
    print(
        "   RSS per process (MiB): idle "
        + ", ".join(f"{v:.0f}" for v in r.rss_idle_mib)
        + "; peak in burst "
        + ", ".join(f"{v:.0f}" for v in r.rss_peak_mib)
    )
    print(f"   PostgreSQL connections (pg_stat_activity): idle {r.pg_idle}, peak {r.pg_peak}")
    bot_requests = {k: v for k, v in sorted(r.requests.items()) if not k.startswith("gateway")}
    print(f"   fake Discord requests by kind:outcome: {bot_requests}")
    for problem in r.problems[:10]:
        print(f"   PROBLEM: {problem}")


async def bench() -> list[Result]:
    # Imported here: ``--clara-child`` must not pay for them.
    from storage import migrations
    from storage.db import create_engine
    from storage.embedded import EmbeddedPostgres, EmbeddedRedis

    configs = [int(x) for x in os.environ.get("BENCH_SHARDS_PROCESSES", "4,1").split(",")]
    shards = _env_int("BENCH_SHARDS_COUNT", 4)
    guilds = _env_int("BENCH_SHARDS_GUILDS", 1000)
    channels = min(_env_int("BENCH_SHARDS_CHANNELS", 400), guilds)
    timeout = float(os.environ.get("BENCH_SHARDS_TIMEOUT", 120))
    results = []
    with tempfile.TemporaryDirectory(prefix="clara-bench-shards-") as tmp:
        work = Path(tmp)
        pg = EmbeddedPostgres(work / "servers")
        redis = EmbeddedRedis(work / "servers")
        database_url = await pg.start()
        redis_url = await redis.start()
        try:
            engine = create_engine(database_url, pool_size=1)
            try:
                await migrations.upgrade(engine)  # once, before N processes start
            finally:
                await engine.dispose()
            for n in configs:
                if shards % n:
                    print(f"-- skipped {n} processes: {shards} shards don't split evenly")
                    continue
                result = await run_config(
                    n,
                    shards=shards,
                    guilds=guilds,
                    channels=channels,
                    timeout=timeout,
                    database_url=database_url,
                    redis_url=redis_url,
                    admin_conninfo=pg.admin_conninfo(),
                    work=work / f"run{n}",
                )
                print_result(result)
                results.append(result)
        finally:
            await redis.stop()
            await pg.stop()
    return results


def main() -> None:
    asyncio.run(bench())


if __name__ == "__main__":
    # Run as a script: the repository (not bench/) on the path.
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _here]
    sys.path.insert(0, str(ROOT))
    if sys.argv[1:2] == ["--clara-child"]:
        _child()
    else:
        main()
