"""Backup and restore time for Clara's database with 200,000 memories.

Real embedded PostgreSQL 18 + pgvector in a temporary directory (or
``BENCH_DATABASE_URL``), migrated with alembic, loaded with ``--memories``
memories (default 200,000; texts from bench/_cortex_data.py, 384-dim unit
vectors) over 1,000 users by binary COPY, the HNSW index built after the load as
in production.  Then, through the real service (``clara_core.backup``):

- ``backup``: ``Backups.run`` (pg_dump custom format into BACKUP_DIR, or with
  ``--s3`` uploaded to moto's S3 server on loopback): seconds, archive size;
- ``restore``: ``Backups.restore`` into a fresh empty database (pg_restore in one
  transaction, which rebuilds every index, HNSW included, then the head check):
  seconds; the memories are counted afterwards.

``python bench/backup.py [--memories 20000] [--s3] [--json out.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _cortex_data as data
from bench._cortex_env import Services, _drop_database, _fresh_database, services

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
USERS = 1000
HNSW_DDL = (
    "CREATE INDEX ix_memories_embedding_hnsw ON memories USING hnsw (embedding vector_cosine_ops)"
)


def log(msg: str) -> None:
    print(f"[backup bench] {msg}", file=sys.stderr, flush=True)


async def load(svc: Services, n: int) -> dict[str, float]:
    """COPY ``n`` memories, then build the HNSW index (both timed, for context)."""
    import psycopg
    from pgvector.psycopg import register_vector_async

    rng = random.Random(7)
    nrng = np.random.default_rng(7)
    texts = data.distinct_texts(rng, min(5000, n))
    cols = "id, user_id, memory_type, content, embedding, embedding_model, emotional_score, status, source, created_at"
    types = [
        "uuid", "varchar", "varchar", "text", "vector", "varchar", "float8",
        "varchar", "varchar", "timestamptz",
    ]  # fmt: skip
    out: dict[str, float] = {}
    async with await psycopg.AsyncConnection.connect(svc.conninfo, autocommit=True) as conn:
        await conn.execute("DROP INDEX IF EXISTS ix_memories_embedding_hnsw")
        await register_vector_async(conn)
        t0 = time.perf_counter()
        batch = 10_000
        for start in range(0, n, batch):
            size = min(batch, n - start)
            vectors = nrng.standard_normal((size, 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            async with (
                conn.cursor() as cur,
                cur.copy(f"COPY memories ({cols}) FROM STDIN (FORMAT BINARY)") as cp,
            ):
                cp.set_types(types)
                for i in range(size):
                    k = start + i
                    await cp.write_row(
                        (
                            uuid.uuid4(),
                            f"bench-u{k % USERS:04d}",
                            "semantic" if k % 4 == 0 else "episodic",
                            texts[k % len(texts)],
                            vectors[i],
                            "all-MiniLM-L6-v2-int8",
                            0.0,
                            "active",
                            "conversation",
                            NOW - timedelta(minutes=k),
                        )
                    )
        out["copy_s"] = time.perf_counter() - t0
        await conn.execute("SET maintenance_work_mem = '1GB'")
        t0 = time.perf_counter()
        await conn.execute(HNSW_DDL)
        out["hnsw_build_s"] = time.perf_counter() - t0
        await conn.execute("VACUUM ANALYZE memories")
    return out


async def count_memories(conninfo: str) -> int:
    import psycopg

    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        cur = await conn.execute("SELECT count(*) FROM memories")
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from bench._cortex_env import _psycopg_conninfo
    from clara_core.backup.cli import make_backups
    from clara_core.config import load_settings
    from storage.db import create_engine

    fake_s3 = None
    result: dict[str, Any] = {"memories": args.memories, "store": "s3" if args.s3 else "dir"}
    async with services(pool_size=2) as svc:
        log(f"loading {args.memories:,} memories")
        result["load"] = await load(svc, args.memories)
        log(f"loaded: {result['load']}")
        overrides: dict[str, Any] = {}
        if args.s3:
            from tests.fakes.fake_s3 import FakeS3

            fake_s3 = FakeS3().start()
            bucket = fake_s3.create_bucket("clara-bench")
            s3 = fake_s3.settings(bucket)
            overrides = {
                "s3_bucket": bucket,
                "s3_endpoint_url": s3["S3_ENDPOINT_URL"],
                "s3_access_key": s3["S3_ACCESS_KEY"],
                "s3_secret_key": s3["S3_SECRET_KEY"],
            }
        try:
            settings = load_settings(
                env_file=None,
                database_url=svc.database_url,
                backup_dir=svc.workdir / "backups",
                **overrides,
            )
            backups = make_backups(settings)
            t0 = time.perf_counter()
            run = await backups.run(svc.database_url, svc.engine, force=True)
            result["backup_s"] = time.perf_counter() - t0
            assert run.entry is not None
            result["archive_mib"] = run.entry.size / 2**20
            log(f"backup: {result['backup_s']:.1f}s, {result['archive_mib']:.1f} MiB")

            target = await _fresh_database(svc.database_url)
            engine = create_engine(target, pool_size=1)
            try:
                t0 = time.perf_counter()
                await backups.restore(run.entry, target, engine)
                result["restore_s"] = time.perf_counter() - t0
            finally:
                await engine.dispose()
            restored = await count_memories(_psycopg_conninfo(target))
            await _drop_database(target)
            if restored != args.memories:
                raise SystemExit(f"restore lost rows: {restored} of {args.memories}")
            result["restored_memories"] = restored
            log(f"restore: {result['restore_s']:.1f}s, {restored:,} memories back")
        finally:
            if fake_s3 is not None:
                fake_s3.stop()
    return result


def main(argv: list[str] | None = None) -> None:
    """``python bench/backup.py [--memories N] [--s3] [--json FILE]`` (also ``bench/run.py backup``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=200_000)
    parser.add_argument("--s3", action="store_true", help="through moto's S3 server on loopback")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    ns = parser.parse_args(argv if argv is not None else [])
    figures = asyncio.run(measure(ns))
    print(json.dumps(figures, indent=2))
    if ns.json:
        ns.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
