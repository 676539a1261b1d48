"""Start-up time and resident memory of Clara, as a user sees them.

Views:
- servers: EmbeddedPostgres/EmbeddedRedis start in-process (initdb included when cold);
- first run: ``python discord_bot.py`` with no token on a new data dir (imports, initdb,
  migrations, the missing-token exit);
- connect (warm data dir, loopback fake Discord + fake LLM in this process): from spawn to
  the gateway's IDENTIFY, to the "connected to Discord" log line, and to the first answer
  of a mention that is posted the instant the gateway session exists ("ready to answer"),
  and the CPU time Clara used until then (wall time on a busy machine is mostly waiting
  for a core: the CPU figure shows what the start-up itself costs);
- memory: the main process's RSS once it answered, and what it is made of (RSS after
  importing each big module in a fresh interpreter, then after loading the embedder).

``BENCH_COLD_RUNS`` / ``BENCH_WARM_RUNS`` set the repetitions.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # also when run directly: python bench/x.py

from bench.common import summary  # noqa: E402

COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "3"))
WARM_RUNS = int(os.environ.get("BENCH_WARM_RUNS", "5"))

GOAL_IDENTIFY_S = 1.0
GOAL_ANSWER_S = 2.5


async def _servers_once(data_dir: Path) -> tuple[float, float]:
    from storage.embedded import EmbeddedPostgres, EmbeddedRedis

    pg, rd = EmbeddedPostgres(data_dir), EmbeddedRedis(data_dir)
    t0 = time.perf_counter()
    await pg.start()
    t1 = time.perf_counter()
    await rd.start()
    t2 = time.perf_counter()
    await rd.stop()
    await pg.stop()
    return t1 - t0, t2 - t1


def _clean_env(data_dir: Path) -> dict[str, str]:
    from clara_core.config import env_names

    clara_vars = set(env_names().values())
    env = {k: v for k, v in os.environ.items() if k not in clara_vars}
    env["CLARA_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _process_once(data_dir: Path) -> float:
    env = _clean_env(data_dir)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(ROOT / "discord_bot.py")],
        env=env,
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - t0
    assert result.returncode == 2, result.stderr
    return elapsed


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process used so far (its children excluded)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _connect_once(data_dir: Path) -> dict[str, float]:
    """Spawn Clara against loopback fakes; times are seconds from spawn."""
    from tests.fakes.fake_discord import FakeDiscord
    from tests.fakes.fake_llm import FakeLLM, Reply

    def answer(request) -> Reply:
        if "long-term memory" in str(request.body.get("messages", "")):
            return Reply('{"facts": []}')
        return Reply("Hi! Nice to meet you.")

    async with (
        FakeDiscord(heartbeat_interval_ms=5000) as discord_fake,
        FakeLLM(api_keys={"k"}, default=answer) as llm,
    ):
        alice = discord_fake.add_user("alice", global_name="Alice")
        guild = discord_fake.add_guild("Home", members=[alice.id])
        channel = guild.text_channels[0]
        env = _clean_env(data_dir)
        env.update(
            DISCORD_BOT_TOKEN=discord_fake.token,
            DISCORD_API_BASE=discord_fake.api_base,
            DISCORD_GATEWAY_URL=discord_fake.gateway_url,
            DISCORD_MONITOR_ENABLED="false",
            LLM_PROVIDER="openai",
            CUSTOM_OPENAI_API_KEY="k",
            CUSTOM_OPENAI_BASE_URL=llm.openai_base_url,
        )
        lines: list[tuple[float, str]] = []
        t0 = time.monotonic()
        # Popen itself, not asyncio's: the spawn is what is timed, and it returns at once.
        proc = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, str(ROOT / "discord_bot.py")],
            env=env,
            cwd=data_dir.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

        def read_stderr() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append((time.monotonic(), line.rstrip()))

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        try:
            await discord_fake.wait_until(
                lambda: discord_fake.gateway.live_sessions(), timeout=60, interval=0.002
            )
            t_identify = next(f.at for f in discord_fake.gateway.received if f.op == 2)
            t_mention = time.monotonic()
            await discord_fake.send_message(
                channel.id, alice.id, f"<@{discord_fake.bot.id}> hello!"
            )
            await discord_fake.wait_until(
                lambda: discord_fake.bot_messages(channel.id), timeout=60, interval=0.002
            )
            t_answer = time.monotonic()
            cpu = _cpu_s(proc.pid)
            await discord_fake.wait_until(
                lambda: any("connected to Discord" in line for _, line in lines),
                timeout=30,
                interval=0.005,
            )
            t_connected = next(t for t, line in lines if "connected to Discord" in line)
            rss = _rss_mib(proc.pid)
        finally:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 60)
            except subprocess.TimeoutExpired:
                proc.kill()
            reader.join(5)
        if proc.returncode != 0:
            raise RuntimeError(f"Clara exited with {proc.returncode}:\n{lines[-20:]}")
        if os.environ.get("BENCH_TIMELINE"):  # Clara's log, stamped from spawn
            for at, line in lines:
                print(f"  {at - t0:6.3f}  {line[:150]}")
        return {
            "identify": t_identify - t0,
            "connected": t_connected - t0,
            "mention_posted": t_mention - t0,
            "answer": t_answer - t0,
            "rss_mib": rss,
            "cpu_s": cpu,
        }


# Imported one after the other in a fresh interpreter; each row is the RSS increase.
MEMORY_STEPS = [
    ("interpreter", ""),
    ("clara_core.config (pydantic)", "import clara_core.config"),
    ("discord.py + aiohttp", "import discord"),
    (
        "storage: SQLAlchemy, psycopg, alembic, redis",
        "import storage.services, storage.migrations",
    ),
    ("openai SDK (+ httpx2)", "import clara_core.llm.providers.openai_chat"),
    ("the Discord adapter and pipeline", "import clara_core.discord_adapter.conversation"),
    (
        "Cortex (manager, stores, consolidation)",
        "import clara_core.cortex.manager, clara_core.cortex.consolidation",
    ),
    ("onnxruntime + tokenizers + numpy", "import onnxruntime, tokenizers, numpy"),
    (
        "the local embedder model (ONNX session)",
        "from clara_core.config import load_settings\n"
        "from clara_core.cortex.embedding import build_embedder\n"
        "_e = build_embedder(load_settings())",
    ),
    # Not loaded unless a configured provider speaks the Anthropic wire.
    ("anthropic SDK (LLM_PROVIDER=anthropic only)", "import anthropic"),
]


def _memory_breakdown(data_dir: Path) -> list[tuple[str, float, float]]:
    script = "import json, sys, gc\n" + "def rss():\n"
    script += "    for l in open('/proc/self/status'):\n"
    script += "        if l.startswith('VmRSS:'): return int(l.split()[1]) / 1024\n"
    script += "out = []\n"
    for name, code in MEMORY_STEPS:
        script += f"{code}\ngc.collect()\nout.append(({name!r}, rss()))\n"
    script += "print(json.dumps(out))\n"
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=_clean_env(data_dir),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    steps = json.loads(result.stdout.strip().splitlines()[-1])
    rows, prev = [], 0.0
    for name, rss in steps:
        rows.append((name, rss - prev, rss))
        prev = rss
    return rows


def _verdict(values: list[float], goal: float) -> str:
    worst = max(values)
    return f"(goal <= {goal:.1f}s: {'met' if worst <= goal else 'NOT met'}, worst {worst:.2f}s)"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="clara-bench-") as tmp:
        base = Path(tmp)
        cold_pg, cold_rd, warm_pg, warm_rd = [], [], [], []
        for i in range(COLD_RUNS):
            d = base / f"servers-cold-{i}"
            pg, rd = asyncio.run(_servers_once(d))
            cold_pg.append(pg)
            cold_rd.append(rd)
        for _ in range(WARM_RUNS):
            pg, rd = asyncio.run(_servers_once(base / "servers-cold-0"))
            warm_pg.append(pg)
            warm_rd.append(rd)
        print(f"embedded PostgreSQL cold (initdb+start): {summary(cold_pg)}")
        print(f"embedded PostgreSQL warm (start):        {summary(warm_pg)}")
        print(f"embedded Redis cold:                     {summary(cold_rd)}")
        print(f"embedded Redis warm:                     {summary(warm_rd)}")

        cold_proc = [_process_once(base / f"proc-cold-{i}" / "data") for i in range(COLD_RUNS)]
        print(f"process cold (imports+initdb+migrate+exit): {summary(cold_proc)}")

        # Connect runs reuse the first cold data dir: warm servers, migrated database.
        data = base / "proc-cold-0" / "data"
        asyncio.run(_connect_once(data))  # a first run warms the OS page cache
        runs = [asyncio.run(_connect_once(data)) for _ in range(WARM_RUNS)]
        identify = [r["identify"] for r in runs]
        answer = [r["answer"] for r in runs]
        print(
            f"spawn -> IDENTIFY:                 {summary(identify)} "
            f"{_verdict(identify, GOAL_IDENTIFY_S)}"
        )
        print(f"spawn -> 'connected to Discord':  {summary([r['connected'] for r in runs])}")
        print(f"spawn -> mention posted (READY):  {summary([r['mention_posted'] for r in runs])}")
        print(
            f"spawn -> first answer visible:    {summary(answer)} {_verdict(answer, GOAL_ANSWER_S)}"
        )
        print(f"CPU used by then (main process):  {summary([r['cpu_s'] for r in runs])}")
        print(f"main process RSS after answering: {summary([r['rss_mib'] for r in runs], 'MiB')}")

        print("resident memory, module by module (fresh interpreter):")
        for name, delta, total in _memory_breakdown(data):
            print(f"  {name:<42} +{delta:6.1f} MiB  (total {total:6.1f} MiB)")


if __name__ == "__main__":
    main()
