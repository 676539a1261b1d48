"""Code sandbox: latency per backend, as a user waits for it.

Per backend that runs here (bwrap, docker, remote = the service on loopback
over bwrap; ``BENCH_SANDBOX_BACKENDS=bwrap`` for one):
- cold: first command for a new user (sandbox + workspace creation included);
- warm: ``python3 -c "print(1)"`` in an existing sandbox (what ``execute_python``
  costs beyond the program itself), p50/p95;
- 20 users at once, each running a small Python program, p95, with the event
  loop's lag measured meanwhile (p99 of how late a 10 ms timer fires);
- after the idle reaper ran: sandboxes, containers and bwrap processes left.

Docker needs the image from ``.ci/sandbox-setup.sh`` (``BENCH_SANDBOX_IMAGE``,
default clara-sandbox:bookworm).  Goals (issue 10, 2-core machine): warm p50
<= 120 ms Docker / <= 60 ms bwrap, cold <= 1 s, loop lag p99 <= 50 ms.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import percentile, summary
from sandbox.base import SandboxLimits, SandboxUnavailable
from sandbox.manager import SandboxManager

WARM_RUNS = int(os.environ.get("BENCH_WARM_RUNS", "40"))
COLD_USERS = int(os.environ.get("BENCH_COLD_USERS", "5"))
CONCURRENT = int(os.environ.get("BENCH_CONCURRENT_USERS", "20"))
IMAGE = os.environ.get("BENCH_SANDBOX_IMAGE", "clara-sandbox:bookworm")
LIMITS = SandboxLimits(workspace_quota_bytes=32 * 1024 * 1024)


def make(kind: str, root: Path):
    if kind == "bwrap":
        from sandbox.bwrap import BwrapBackend

        return BwrapBackend(root, LIMITS)
    from sandbox.docker import DockerBackend

    return DockerBackend(root, LIMITS, image=IMAGE)


def bwrap_processes() -> int:
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[0].endswith(b"bwrap"):
                        n += 1
            except OSError:
                pass
    return n


async def loop_lag(stop: asyncio.Event, lags: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(0.01)
        lags.append(loop.time() - t - 0.01)


async def bench(kind: str) -> None:
    root = Path(tempfile.mkdtemp(prefix=f"clara-bench-{kind}-", dir="/tmp"))
    root.chmod(0o711)
    service = None
    try:
        if kind == "remote":  # the real service on loopback, over bwrap
            from sandbox.remote import RemoteBackend
            from sandbox.service import start_service

            inner = SandboxManager(make("bwrap", root), idle_timeout=600, max_sandboxes=50)
            runner, url = await start_service(inner, "bench-key-0123456789")
            service = (runner, inner)
            backend = RemoteBackend(url, "bench-key-0123456789")
        else:
            backend = make(kind, root)
    except SandboxUnavailable as exc:
        print(f"{kind}: skipped ({exc})")
        shutil.rmtree(root, ignore_errors=True)
        return
    now = [0.0]
    mgr = SandboxManager(backend, idle_timeout=60, max_sandboxes=50, clock=lambda: now[0])
    hello = ["python3", "-c", "print(1)"]
    try:
        cold = []
        for i in range(COLD_USERS):
            t = time.perf_counter()
            r = await mgr.exec(f"cold-{i}", hello)
            cold.append(time.perf_counter() - t)
            assert r.stdout == "1\n", r
        print(f"{kind}: cold first command  {summary(cold, 'ms', 1000)}")

        await mgr.exec("warm", hello)
        warm = []
        for _ in range(WARM_RUNS):
            t = time.perf_counter()
            await mgr.exec("warm", hello)
            warm.append(time.perf_counter() - t)
        print(f"{kind}: warm execute_python {summary(warm, 'ms', 1000)}")
        true_runs = []
        for _ in range(WARM_RUNS // 2):
            t = time.perf_counter()
            await mgr.exec("warm", ["true"])
            true_runs.append(time.perf_counter() - t)
        print(f"{kind}: warm `true`         {summary(true_runs, 'ms', 1000)}")

        users = [f"many-{i}" for i in range(CONCURRENT)]
        await asyncio.gather(*(mgr.exec(u, ["true"]) for u in users))  # create them first
        code = ["python3", "-c", "print(sum(i * i for i in range(200_000)))"]
        stop, lags = asyncio.Event(), []
        ticker = asyncio.create_task(loop_lag(stop, lags))

        async def one(u: str) -> float:
            t = time.perf_counter()
            await mgr.exec(u, code)
            return time.perf_counter() - t

        t0 = time.perf_counter()
        many = await asyncio.gather(*(one(u) for u in users))
        wall = time.perf_counter() - t0
        stop.set()
        await ticker
        print(
            f"{kind}: {CONCURRENT} users at once  {summary(many, 'ms', 1000)} wall={wall:.2f}s; "
            f"loop lag p99={percentile(lags, 0.99) * 1000:.1f}ms max={max(lags) * 1000:.1f}ms"
        )

        now[0] += 120  # every sandbox idle past the 60 s timeout
        t = time.perf_counter()
        reaped = await mgr.reap_idle()
        left = await backend.live_sandboxes()
        extra = ""
        if kind == "docker":
            extra = f", containers left={await backend.count_containers()}"
        elif kind == "remote":
            extra = f", service sandboxes left={len(service[1].live_users())}"
        else:
            extra = f", bwrap processes left={bwrap_processes()}"
        print(
            f"{kind}: reaper removed {len(reaped)} sandboxes in "
            f"{time.perf_counter() - t:.2f}s; sandboxes left={len(left)}{extra}"
        )
    finally:
        await mgr.close()
        if service is not None:
            await service[0].cleanup()
            await service[1].close()
        shutil.rmtree(root, ignore_errors=True)


async def main() -> None:
    kinds = os.environ.get("BENCH_SANDBOX_BACKENDS", "bwrap,docker,remote").split(",")
    for kind in kinds:
        await bench(kind.strip())


if __name__ == "__main__":
    asyncio.run(main())
