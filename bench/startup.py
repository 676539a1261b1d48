"""Start-up time of the embedded default, cold (new data dir) and warm (reused).

Two views:
- servers: EmbeddedPostgres/EmbeddedRedis start in-process (initdb included when cold);
- process: ``python discord_bot.py`` with no token, i.e. interpreter + imports +
  embedded servers + migrations + the missing-token exit, as a user sees it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # also when run directly: python bench/x.py

from bench.common import summary  # noqa: E402

COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "3"))
WARM_RUNS = int(os.environ.get("BENCH_WARM_RUNS", "5"))


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


def _process_once(data_dir: Path) -> float:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DISCORD_", "DATABASE_URL", "REDIS_URL"))
    }
    env["CLARA_DATA_DIR"] = str(data_dir)
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
        warm_proc = [_process_once(base / "proc-cold-0" / "data") for _ in range(WARM_RUNS)]
        print(f"process cold (imports+initdb+migrate+exit): {summary(cold_proc)}")
        print(f"process warm (imports+start+check+exit):    {summary(warm_proc)}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
