"""What one more user and one more memory cost in Redis and PostgreSQL (docs/scaling.md).

Two measurements on Clara's own embedded servers and schema:

* **Redis per active user**: ``INFO memory`` ``used_memory`` before and after
  N users' hot-tier data, written through Clara's own stores: Cortex's
  ``HotStore`` (identity hash, session hash, working memories, the recent list
  at its cap, meta) and the companion's ``MoodCache`` (one mood per user).
  The per-user shape (field counts, memory lengths) is stated in the output.
* **pgvector HNSW per million memories**: M rows in ``memories`` (the migrated
  schema: 384-dim embeddings, random unit vectors, ~120-character contents,
  500 users), the HNSW index built as the migration defines it (m=16,
  ef_construction=64, cosine), then ``pg_relation_size`` of the index and of the
  table with its other indexes.  Per million is extrapolated linearly (HNSW
  holds one element tuple per row plus a fixed neighbour list per layer, so its
  size grows linearly with rows).

Knobs: BENCH_FOOTPRINT_USERS (default 2000), BENCH_FOOTPRINT_MEMORIES
(default 50000).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

USERS = int(os.environ.get("BENCH_FOOTPRINT_USERS", 2000))
MEMORIES = int(os.environ.get("BENCH_FOOTPRINT_MEMORIES", 50_000))
WORKING_PER_USER = 10
RECENT_PER_USER = 50  # HotStore's cap
HORMONE_LEVELS = 6


async def redis_per_user(work: Path) -> None:
    from redis.asyncio import Redis

    from clara_core.cortex.hot import HotStore
    from clara_core.cortex.types import Memory, MemoryType
    from storage.companion import StoredMood
    from storage.companion_cache import MoodCache
    from storage.embedded import EmbeddedRedis

    server = EmbeddedRedis(work / "redis")
    url = await server.start()
    redis = Redis.from_url(url, decode_responses=True)
    try:
        hot = HotStore(redis)
        moods = MoodCache(redis)
        before = (await redis.info("memory"))["used_memory"]
        now = datetime.now(UTC)
        for u in range(USERS):
            user = f"discord-{100_000_000_000_000_000 + u}"
            await hot.update_identity(
                user,
                {
                    "name": f"User {u}",
                    "pronouns": "they/them",
                    "timezone": "Europe/Berlin",
                    "language": "en",
                    "likes": ["tea", "climbing", "sci-fi"],
                },
            )
            await hot.update_session(
                user, {"channel": "123456789012345678", "topic": "weekend plans", "turns": 12}
            )
            for w in range(WORKING_PER_USER):
                await hot.add_working(
                    Memory(
                        content=f"User {u} mentioned detail {w}: " + "x" * 90,
                        user_id=user,
                        memory_type=MemoryType.WORKING,
                        emotional_score=0.5,
                    )
                )
            for _ in range(RECENT_PER_USER):
                await hot.push_recent(user, str(Memory(content="", user_id=user).id))
            await hot.update_meta(user, {"turns": 42, "last_consolidated": now.isoformat()})
            await moods.put(
                f"user:{user}",
                StoredMood(
                    levels={f"h{i}": 0.5 for i in range(HORMONE_LEVELS)},
                    at=now,
                    last_user_at=now,
                    last_clara_at=now,
                    owner_user_id=user,
                ),
            )
        after = (await redis.info("memory"))["used_memory"]
        per_user = (after - before) / USERS
        print(
            f"   Redis: {USERS} active users: used_memory {before / 1e6:.2f} MB -> "
            f"{after / 1e6:.2f} MB: {per_user / 1024:.1f} KiB per user "
            f"(identity 5 fields, session 4, {WORKING_PER_USER} working memories of "
            f"~120 chars, recent list {RECENT_PER_USER} ids, meta 2, one mood)"
        )
        print(
            f"   -> 100k active users ≈ {per_user * 100_000 / 2**30:.2f} GiB (linear extrapolation)"
        )
    finally:
        await redis.aclose()
        await server.stop()


async def hnsw_per_million(work: Path) -> None:
    import psycopg

    from storage import migrations
    from storage.db import create_engine
    from storage.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(work / "pg")
    url = await pg.start()
    try:
        engine = create_engine(url, pool_size=1)
        try:
            await migrations.upgrade(engine)
        finally:
            await engine.dispose()
        conninfo = pg.admin_conninfo("clara")
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as c:
            # Bulk load without the index (as a restore does), then build it once:
            # the same index the migration creates, the way CREATE INDEX builds it.
            row = await (
                await c.execute(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_memories_embedding_hnsw'"
                )
            ).fetchone()
            assert row is not None, "migration did not create the HNSW index"
            indexdef = row[0]
            await c.execute("DROP INDEX ix_memories_embedding_hnsw")
            t0 = time.monotonic()
            await c.execute(
                """
                INSERT INTO memories (id, user_id, memory_type, content, embedding,
                                      embedding_model, created_at, updated_at)
                SELECT gen_random_uuid(), 'discord-' || (i %% 500), 'semantic',
                       'Memory ' || i || ': ' || repeat('likes long walks ', 6),
                       (SELECT l2_normalize(array_agg(random() - 0.5)::vector)
                          FROM generate_series(1, 384) WHERE i > 0),
                       'bench', now(), now()
                  FROM generate_series(1, %s) AS i
                """,
                (MEMORIES,),
            )
            load_s = time.monotonic() - t0
            await c.execute("SET maintenance_work_mem = '512MB'")
            t0 = time.monotonic()
            await c.execute(indexdef)
            build_s = time.monotonic() - t0
            await c.execute("ANALYZE memories")
            sizes = await (
                await c.execute(
                    "SELECT pg_relation_size('ix_memories_embedding_hnsw'),"
                    " pg_table_size('memories'), pg_indexes_size('memories'),"
                    " pg_total_relation_size('memories')"
                )
            ).fetchone()
        assert sizes is not None
        index, table, indexes, total = sizes
        per_row = index / MEMORIES
        print(
            f"   PostgreSQL: {MEMORIES} memories loaded in {load_s:.0f}s, HNSW built in "
            f"{build_s:.0f}s; HNSW index {index / 2**20:.1f} MiB ({per_row:.0f} B/row), "
            f"table+TOAST {table / 2**20:.1f} MiB, all indexes {indexes / 2**20:.1f} MiB, "
            f"total {total / 2**20:.1f} MiB"
        )
        print(
            f"   -> per million memories (linear extrapolation): HNSW "
            f"{per_row * 1e6 / 2**30:.2f} GiB, everything {total / MEMORIES * 1e6 / 2**30:.2f} GiB"
        )
    finally:
        await pg.stop()


async def bench() -> None:
    with tempfile.TemporaryDirectory(prefix="clara-bench-footprint-") as tmp:
        await redis_per_user(Path(tmp))
        await hnsw_per_million(Path(tmp))


def main() -> None:
    asyncio.run(bench())


if __name__ == "__main__":
    import sys

    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _here]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
