"""Cortex at production scale: ingest, retrieval and write latency, rejection, embedding.

Real embedded PostgreSQL 18 + pgvector and Redis in a temporary directory
(or ``BENCH_DATABASE_URL`` / ``BENCH_REDIS_URL``), migrated with alembic, and a
real ``MemoryManager`` (local ONNX embedder, heuristic emotion scorer).

Data (``--scale 1``): 100,000 memories of one user plus 100,000 spread over
1,000 users with 100 each.  Texts come from templates; vectors are a pool of
real embeddings with small perturbations (see ``bench/_cortex_data.py``).

Measured, each with a warm-up first, ``--n`` samples:

- ingest: ``store_many`` with precomputed embeddings, ``to_hot=False``
  (memories/s): the big user in 1000-row calls, the others in 10-row calls,
  interleaved; the HNSW index kept up to date as rows arrive (production), or
  ``--index after`` to build it after the load.  ``--load copy`` loads the bulk
  with binary COPY instead and measures store_many on a 10k slice afterwards;
- ``get_context`` for the 100k-memory user and a 100-memory user, ``search``,
  ``store`` — all with precomputed query/memory embeddings, so they measure
  Cortex and the databases, not the model;
- where a search's time goes: ``WarmStore.search`` alone, the same SQL with
  plain psycopg, PostgreSQL's own execution time, and the plans it can choose;
- ``quick_reject`` over a realistic message mix (µs);
- the local embedder on its own: one query, and batch throughput.

Goals (from the issue): get_context p95 <= 15 ms, store p95 <= 10 ms, rejection
p99 <= 0.1 ms.

``python bench/cortex.py [--scale 0.02] [--n 1000] [--json out.json]
[--pg-set plan_cache_mode=force_custom_plan]``, or ``python bench/run.py cortex``
(then ``BENCH_CORTEX_SCALE`` / ``BENCH_CORTEX_N``).  At ``--scale 1`` it runs
for roughly 20-30 minutes on two cores, most of it the load (~8-10 min) and the
100k-user reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # also when run directly: python bench/x.py

from bench import _cortex_data as data  # noqa: E402
from bench._cortex_env import Services, make_manager, services  # noqa: E402
from bench.common import percentile  # noqa: E402
from clara_core.cortex.embedding.local_onnx import LocalOnnxEmbedder  # noqa: E402
from clara_core.cortex.emotion import HeuristicEmotionScorer  # noqa: E402
from clara_core.cortex.manager import CANDIDATE_FACTOR, MemoryManager, NewMemory  # noqa: E402
from clara_core.cortex.rejection import quick_reject  # noqa: E402
from clara_core.cortex.types import MemoryType  # noqa: E402

MAIN_USER = "bench-main"
SMALL_USER = "bench-u0000"  # one of the 100-memory users
FULL_MAIN = 100_000
FULL_OTHER_USERS = 1_000
PER_OTHER_USER = 100
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
HISTORY_DAYS = 730  # memories spread over two years before NOW


# -- results ----------------------------------------------------------------------


@dataclass
class Latency:
    """One measured operation; times in milliseconds."""

    name: str
    samples: list[float]
    short: int | None = None  # results with fewer rows than asked for (searches only)
    goal: str = ""
    met: bool | None = None

    def stats(self) -> dict[str, float]:
        s = self.samples
        return {
            "n": len(s),
            "p50": percentile(s, 0.5),
            "p95": percentile(s, 0.95),
            "p99": percentile(s, 0.99),
            "mean": statistics.fmean(s),
            "max": max(s),
        }


@dataclass
class Report:
    config: dict[str, Any]
    setup: dict[str, Any] = field(default_factory=dict)
    latencies: list[Latency] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "setup": self.setup,
            "latencies": {
                lat.name: {**lat.stats(), "short": lat.short, "goal": lat.goal, "met": lat.met}
                for lat in self.latencies
            },
            "extra": self.extra,
        }


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB."""
    current = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def log(msg: str) -> None:
    print(f"   .. {msg}", flush=True)


# -- timing -----------------------------------------------------------------------


async def timed(
    n: int,
    warmup: int,
    call: Callable[[int], Awaitable[Any]],
    *,
    after: Callable[[Any], Awaitable[None]] | None = None,
) -> tuple[list[float], list[Any]]:
    """Run ``call(i)`` warmup+n times, one at a time; times (ms) and results of the last n.

    ``after`` runs outside the timed region (e.g. waiting for the access-count
    update a get_context spawns, so it does not bleed into the next sample)."""
    times: list[float] = []
    results: list[Any] = []
    for i in range(warmup + n):
        t0 = time.perf_counter()
        result = await call(i)
        dt = (time.perf_counter() - t0) * 1000
        if after is not None:
            await after(result)
        if i >= warmup:
            times.append(dt)
            results.append(result)
    return times, results


def measure_rejection(messages: Sequence[str]) -> tuple[list[float], float]:
    """Per-call times in µs (perf_counter_ns; its ~50 ns overhead is included) and
    the share of messages rejected."""
    for m in messages[:1000]:  # warm-up: regex caches, branch predictors
        quick_reject(m)
    times: list[float] = []
    rejected = 0
    clock = time.perf_counter_ns
    for m in messages:
        t0 = clock()
        r = quick_reject(m)
        times.append((clock() - t0) / 1000)
        rejected += r
    return times, rejected / len(messages)


# -- data -------------------------------------------------------------------------


@dataclass
class Pool:
    texts: list[str]
    vectors: np.ndarray  # (n, 384) float32, unit length
    emotion: list[float]  # the heuristic scorer's score of each text


def build_pool(embedder: LocalOnnxEmbedder, size: int, rng: random.Random) -> tuple[Pool, float]:
    """Embed ``size`` distinct memory texts once; returns the pool and texts/s."""
    texts = data.distinct_texts(rng, size)
    t0 = time.perf_counter()
    vectors = np.asarray(embedder.embed_sync(texts), dtype=np.float32)
    rate = size / (time.perf_counter() - t0)
    scorer = HeuristicEmotionScorer()
    return Pool(texts, vectors, [scorer.score_sync(t) for t in texts]), rate


@dataclass
class Plan:
    """Which rows go to which user; derived from --scale."""

    main_rows: int
    other_users: int
    per_user: int = PER_OTHER_USER

    @property
    def total(self) -> int:
        return self.main_rows + self.other_users * self.per_user

    def batches(self, batch: int, small: int, seed: int = 5) -> list[tuple[str, int]]:
        """(user_id, rows) per store_many call, in a shuffled order: the big user in
        ``batch``-row calls (an import), every other user's 100 memories in calls of
        ``small`` (what extraction after a few turns stores).  Shuffled so that each
        user's rows end up spread over the table, as months of use leave them."""
        out = [(MAIN_USER, min(batch, self.main_rows - s)) for s in range(0, self.main_rows, batch)]
        for u in range(self.other_users):
            out += [
                (f"bench-u{u:04d}", min(small, self.per_user - s))
                for s in range(0, self.per_user, small)
            ]
        random.Random(seed).shuffle(out)
        return out


@dataclass
class Ingest:
    """Throughput of one loading path, overall, per call size and near the end
    (each insert also updates the HNSW index, which gets slower as it grows)."""

    calls: list[tuple[int, float]] = field(default_factory=list)  # (rows, seconds)

    def to_json(self) -> dict[str, Any]:
        rows = sum(n for n, _ in self.calls)
        secs = sum(t for _, t in self.calls)
        by: dict[int, list[float]] = defaultdict(list)
        for n, t in self.calls:
            by[n].append(t)
        tail = self.calls[int(len(self.calls) * 0.9) :]
        return {
            "rows": rows,
            "seconds": secs,
            "per_s": rows / secs,
            "last_10pct_per_s": sum(n for n, _ in tail) / sum(t for _, t in tail),
            "by_call_size": {
                n: {
                    "calls": len(ts),
                    "per_s": n * len(ts) / sum(ts),
                    "ms_per_call_p50": percentile(ts, 0.5) * 1000,
                }
                for n, ts in sorted(by.items())
            },
        }


def new_memories(
    pool: Pool, n: int, rng: np.random.Generator
) -> tuple[list[NewMemory], list[list[float]], list[int]]:
    """``n`` memories drawn from the pool, dated over the last two years."""
    idx = rng.integers(0, len(pool.texts), n).tolist()
    ages = rng.uniform(0, HISTORY_DAYS * 86400, n)
    kinds = rng.random(n)
    items = [
        NewMemory(
            content=pool.texts[i],
            # Mostly episodic, a quarter semantic: what extraction produces.
            memory_type=MemoryType.SEMANTIC if k < 0.25 else MemoryType.EPISODIC,
            emotional_score=pool.emotion[i],
            created_at=NOW - timedelta(seconds=float(a)),
            metadata={"bench": True},
        )
        for i, a, k in zip(idx, ages, kinds, strict=True)
    ]
    vectors = data.perturbed(pool.vectors, idx, rng).tolist()
    return items, vectors, idx


# -- loading ----------------------------------------------------------------------


async def load_store_many(
    mm: MemoryManager, pool: Pool, batches: list[tuple[str, int]], rng: np.random.Generator
) -> dict[str, Any]:
    """Load through the public API, timing only the store_many calls."""
    ingest = Ingest()
    next_log = time.monotonic() + 30
    for user, n in batches:
        items, vectors, _ = new_memories(pool, n, rng)  # generated outside the timing
        t0 = time.perf_counter()
        await mm.store_many(user, items, embeddings=vectors, to_hot=False)
        ingest.calls.append((n, time.perf_counter() - t0))
        if time.monotonic() > next_log:
            done = ingest.to_json()
            log(f"store_many: {done['rows']:,} rows, {done['per_s']:,.0f}/s")
            next_log = time.monotonic() + 30
    return ingest.to_json()


async def load_copy(
    svc: Services, pool: Pool, batches: list[tuple[str, int]], rng: np.random.Generator
) -> dict[str, Any]:
    """Load with binary COPY (the fast path for the bulk when store_many is too slow)."""
    import psycopg
    from pgvector.psycopg import register_vector_async

    cols = (
        "id, user_id, memory_type, content, embedding, embedding_model, emotional_score, "
        "status, source, created_at"
    )
    types = [
        "uuid", "varchar", "varchar", "text", "vector", "varchar", "float8",
        "varchar", "varchar", "timestamptz",
    ]  # fmt: skip
    ingest = Ingest()
    async with await psycopg.AsyncConnection.connect(svc.conninfo) as conn:
        await register_vector_async(conn)
        for user, n in batches:
            items, vectors, _ = new_memories(pool, n, rng)
            t0 = time.perf_counter()
            copy_sql = f"COPY memories ({cols}) FROM STDIN (FORMAT BINARY)"
            async with conn.cursor() as cur, cur.copy(copy_sql) as cp:
                cp.set_types(types)
                for it, vec in zip(items, vectors, strict=True):
                    await cp.write_row(
                        (
                            uuid.uuid4(),
                            user,
                            it.memory_type.value,
                            it.content,
                            np.asarray(vec, dtype=np.float32),
                            "all-MiniLM-L6-v2-int8",
                            it.emotional_score,
                            "active",
                            "conversation",
                            it.created_at,
                        )
                    )
            await conn.commit()
            ingest.calls.append((n, time.perf_counter() - t0))
    return ingest.to_json()


async def sql(svc: Services, statement: str, *, autocommit: bool = True) -> list[tuple]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(svc.conninfo, autocommit=autocommit) as c:
        cur = await c.execute(statement)
        return await cur.fetchall() if cur.description else []


HNSW_DDL = (
    "CREATE INDEX ix_memories_embedding_hnsw ON memories USING hnsw (embedding vector_cosine_ops)"
)


async def apply_pg_settings(svc: Services, settings: list[str]) -> None:
    """``--pg-set name=value``: a server setting for every session of the bench's
    database, to compare a tuning with the defaults without changing Clara (e.g.
    ``plan_cache_mode=force_custom_plan``)."""
    if not settings:
        return
    (dbname,) = (await sql(svc, "SELECT current_database()"))[0]
    for item in settings:
        name, _, value = item.partition("=")
        await sql(svc, f"ALTER DATABASE \"{dbname}\" SET {name.strip()} = '{value.strip()}'")
    await svc.engine.dispose()  # pooled connections reconnect with the settings


async def build_index(svc: Services) -> float:
    """Build the HNSW index after the load, as an operator would for a rebuild: with
    enough maintenance memory for the graph (else pgvector builds far slower)."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(svc.conninfo, autocommit=True) as c:
        await c.execute("SET maintenance_work_mem = '2GB'")
        await c.execute("SET max_parallel_maintenance_workers = 2")
        t0 = time.perf_counter()
        await c.execute(HNSW_DDL)
        return time.perf_counter() - t0


async def load(
    svc: Services, mm: MemoryManager, pool: Pool, plan: Plan, args: argparse.Namespace
) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    out: dict[str, Any] = {"index": args.index, "load": args.load, "batch": args.batch}
    if args.index == "after":
        await sql(svc, "DROP INDEX ix_memories_embedding_hnsw")
    t0 = time.perf_counter()
    if args.load == "store_many":
        out["store_many"] = await load_store_many(
            mm, pool, plan.batches(args.batch, args.small_batch), rng
        )
    else:
        # COPY per user in one go: a COPY of 10 rows would measure round trips.
        out["copy"] = await load_copy(svc, pool, plan.batches(args.batch, PER_OTHER_USER), rng)
    out["load_wall_s"] = time.perf_counter() - t0
    if args.index == "after":
        out["index_build_s"] = await build_index(svc)
    if args.load == "copy":
        # The bulk went in by COPY; store_many's throughput is measured on a slice
        # of extra users on the full table (so with the full index cost).
        extra = Plan(main_rows=0, other_users=max(1, args.slice // PER_OTHER_USER))
        slice_batches = [
            (u.replace("bench-u", "bench-s"), n) for u, n in extra.batches(1, args.small_batch)
        ]
        out["store_many"] = {
            **await load_store_many(mm, pool, slice_batches, rng),
            "slice": True,
        }
    t0 = time.perf_counter()
    # Autovacuum would get here on its own; the planner needs the statistics to
    # choose between the HNSW index and the per-user btree.
    await sql(svc, "VACUUM ANALYZE memories")
    out["vacuum_analyze_s"] = time.perf_counter() - t0
    return out


# -- the measured calls -----------------------------------------------------------


async def seed_hot_tier(mm: MemoryManager, pool: Pool, user: str) -> None:
    """Identity facts and a few recent memories, so get_context reads a populated
    Redis as it would mid-conversation."""
    await mm.update_identity(user, "name", "Sam")
    await mm.update_identity(user, "city", "Leeds")
    for i in range(10):
        await mm.store(
            user,
            pool.texts[i],
            emotional_score=pool.emotion[i],
            embedding=pool.vectors[i].tolist(),
            created_at=mm.clock(),
        )


async def measure_reads(
    mm: MemoryManager, queries: list[tuple[str, list[float]]], n: int, warmup: int
) -> list[Latency]:
    out = []
    drain = mm.drain_background

    async def settle(_: Any) -> None:
        await drain()  # the access-count update spawned by get_context

    for label, user in (("100k-memory user", MAIN_USER), ("100-memory user", SMALL_USER)):
        limit = mm.max_retrieved

        async def ctx_call(i: int, user: str = user) -> Any:
            q, vec = queries[i % len(queries)]
            return await mm.get_context(user, q, query_embedding=vec)

        times, results = await timed(n, warmup, ctx_call, after=settle)
        skipped = sum(1 for r in results if r.notes)
        if skipped:
            log(f"{skipped} get_context calls skipped retrieval: {results[0].notes}")
        short = sum(1 for r in results if len(r.retrieved) < limit)
        goal = "p95 <= 15 ms" if user == MAIN_USER else ""
        lat = Latency(f"get_context, {label}", times, short=short, goal=goal)
        if goal:
            lat.met = percentile(times, 0.95) <= 15.0
        out.append(lat)

    for label, user in (("100k-memory user", MAIN_USER), ("100-memory user", SMALL_USER)):

        async def search_call(i: int, user: str = user) -> Any:
            q, vec = queries[(i + 7) % len(queries)]
            return await mm.search(user, q, limit=20, query_embedding=vec)

        times, results = await timed(n, warmup, search_call)
        short = sum(1 for r in results if len(r.memories) < 20)
        out.append(Latency(f"search limit=20, {label}", times, short=short))

    # One layer down: the warm tier's query alone (what get_context asks it for),
    # to split the time between the manager and WarmStore/SQLAlchemy.
    k = mm.max_retrieved * CANDIDATE_FACTOR
    for label, user in (("100k-memory user", MAIN_USER), ("100-memory user", SMALL_USER)):

        async def warm_call(i: int, user: str = user) -> Any:
            return await mm.warm.search(user, queries[(i + 13) % len(queries)][1], limit=k)

        times, results = await timed(n, warmup, warm_call)
        short = sum(1 for r in results if len(r) < k)
        out.append(Latency(f"WarmStore.search limit={k}, {label}", times, short=short))
    if mm.retrieval.lexical:
        # The lexical leg alone (it runs beside the vector leg in get_context).
        for label, user in (("100k-memory user", MAIN_USER), ("100-memory user", SMALL_USER)):

            async def lexical_call(i: int, user: str = user) -> Any:
                return await mm.warm.lexical_search(
                    user,
                    queries[(i + 13) % len(queries)][0],
                    limit=k,
                    max_matches=mm.retrieval.lexical_max_matches,
                )

            times, _ = await timed(n, warmup, lexical_call)
            out.append(Latency(f"WarmStore.lexical_search limit={k}, {label}", times))
        # Both legs as get_context runs them: one statement, one round trip.
        for label, user in (("100k-memory user", MAIN_USER), ("100-memory user", SMALL_USER)):

            async def hybrid_call(i: int, user: str = user) -> Any:
                q, vec = queries[(i + 13) % len(queries)]
                return await mm.warm.hybrid_search(
                    user, vec, q, limit=k, max_matches=mm.retrieval.lexical_max_matches
                )

            times, _ = await timed(n, warmup, hybrid_call)
            out.append(Latency(f"WarmStore.hybrid_search limit={k}, {label}", times))
    return out


async def measure_store(mm: MemoryManager, pool: Pool, n: int, warmup: int) -> Latency:
    rng = np.random.default_rng(5)
    idx = rng.integers(0, len(pool.texts), warmup + n).tolist()
    vectors = data.perturbed(pool.vectors, idx, rng).tolist()

    async def call(i: int) -> Any:
        j = idx[i]
        result = await mm.store(
            MAIN_USER,
            pool.texts[j],
            emotional_score=pool.emotion[j],
            embedding=vectors[i],
        )
        assert result.success and not result.queued, result
        return result

    times, _ = await timed(n, warmup, call)
    lat = Latency("store (hot + warm), 100k-memory user", times, goal="p95 <= 10 ms")
    lat.met = percentile(times, 0.95) <= 10.0
    return lat


async def measure_embedding(
    embedder: LocalOnnxEmbedder, texts: list[str], n: int, warmup: int
) -> Latency:
    """One query at a time through the async path (worker thread), never cached."""

    async def call(i: int) -> Any:
        return await embedder.embed_batch([texts[i]])

    times, _ = await timed(min(n, len(texts) - warmup), warmup, call)
    return Latency("embed one query (local ONNX)", times)


SEARCH_SQL = (
    # WarmStore.search's statement written out (same columns, filters, order, limit).
    "SELECT id, user_id, project_id, memory_type, content, emotional_score, importance, "
    "confidence, access_count, last_accessed, status, supersedes, source, tags, metadata, "
    "created_at, embedding <=> %(q)s::vector AS distance FROM memories "
    "WHERE embedding IS NOT NULL AND user_id = %(u)s AND status = 'active' "
    "ORDER BY distance LIMIT %(k)s"
)


def _plan_text(rows: list[tuple]) -> str:
    text = (r[0].strip() for r in rows)
    return " | ".join(re.sub(r"'\[[^\]]*\]'::vector", "$query", t) for t in text)


async def search_breakdown(
    svc: Services, vectors: list[list[float]], limit: int
) -> tuple[dict[str, str], list[Latency]]:
    """Where a search's time goes: the plans PostgreSQL can pick, its own execution
    time (EXPLAIN ANALYZE) and the round trip with plain psycopg — to set against
    ``search``/``get_context``, whose difference is the Python side.

    Both plans are shown because the driver prepares a statement after five runs,
    and PostgreSQL may then switch to a *generic* plan, made without knowing which
    user is asked for, so the same one for a 100-memory and a 100k-memory user."""
    import psycopg

    plans: dict[str, str] = {}
    out: list[Latency] = []
    ef = f"SET LOCAL hnsw.ef_search = {max(100, limit * 2)}"
    async with await psycopg.AsyncConnection.connect(svc.conninfo) as conn:
        for label, user in (("100k-memory user", MAIN_USER), ("100-memory user", SMALL_USER)):
            server, client = [], []
            for i, vec in enumerate(vectors):
                literal = "[" + ",".join(f"{x:.7f}" for x in vec) + "]"
                params = {"q": literal, "u": user, "k": limit}
                await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                await conn.execute(ef)
                if i == 0:
                    cur = await conn.execute("EXPLAIN " + SEARCH_SQL, params)
                    plans[f"{user}, custom plan"] = _plan_text(await cur.fetchall())
                cur = await conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + SEARCH_SQL, params)
                server.append((await cur.fetchone())[0][0]["Execution Time"])
                t0 = time.perf_counter()
                # prepare=False: never prepared, so always planned for this user.
                await (await conn.execute(SEARCH_SQL, params, prepare=False)).fetchall()
                client.append((time.perf_counter() - t0) * 1000)
                await conn.rollback()
            out.append(Latency(f"search SQL, server time (EXPLAIN ANALYZE), {label}", server))
            out.append(Latency(f"search SQL via plain psycopg, {label}", client))
        positional = SEARCH_SQL.replace("%(u)s", "$1").replace("%(q)s", "$2").replace("%(k)s", "$3")
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE bench_search(text, vector, int) AS {positional}")
        literal = "[" + ",".join(f"{x:.7f}" for x in vectors[0]) + "]"
        cur = await conn.execute(
            f"EXPLAIN EXECUTE bench_search('{MAIN_USER}', '{literal}', {int(limit)})"
        )
        plans["generic plan (any user)"] = _plan_text(await cur.fetchall())
        await conn.rollback()
    return plans, out


async def sizes(svc: Services) -> dict[str, float]:
    (row,) = await sql(
        svc,
        "SELECT pg_database_size(current_database()), pg_total_relation_size('memories'), "
        "pg_relation_size('ix_memories_embedding_hnsw'), count(*) FROM memories",
    )
    mib = 1024 * 1024
    return {
        "database_mib": row[0] / mib,
        "memories_table_total_mib": row[1] / mib,
        "hnsw_index_mib": row[2] / mib,
        "rows": row[3],
    }


# -- orchestration ----------------------------------------------------------------


async def run(args: argparse.Namespace) -> Report:
    plan = Plan(
        main_rows=max(100, round(FULL_MAIN * args.scale)),
        other_users=max(1, round(FULL_OTHER_USERS * args.scale)),
    )
    n, warmup = args.n, max(20, args.n // 10)
    report = Report(config={**vars(args), "rows": plan.total, "main_rows": plan.main_rows})
    rng = random.Random(3)
    t_start = time.perf_counter()

    t0 = time.perf_counter()
    embedder = LocalOnnxEmbedder()
    embedder.embed_sync(["warm up"])
    report.setup["embedder_load_s"] = time.perf_counter() - t0
    pool_size = min(args.pool, max(500, round(args.pool * args.scale)))
    pool, pool_rate = build_pool(embedder, pool_size, rng)
    report.setup["pool"] = {"texts": pool_size, "embed_texts_per_s": pool_rate}
    log(f"pool of {pool_size} texts embedded at {pool_rate:.0f} texts/s")
    query_texts = data.distinct_texts(rng, warmup + n, data.query_text)
    qvecs = embedder.embed_sync(query_texts)
    queries = list(zip(query_texts, qvecs, strict=True))

    # The embedder and the rejection check alone, before the databases are busy.
    fresh = data.distinct_texts(random.Random(99), warmup + n)
    embed_lat = await measure_embedding(embedder, fresh, n, warmup)
    t0 = time.perf_counter()
    batch_texts = data.distinct_texts(random.Random(98), 1024)
    embedder.embed_sync(batch_texts)
    report.setup["embed_batch_texts_per_s"] = len(batch_texts) / (time.perf_counter() - t0)
    rej_times, rej_share = measure_rejection(data.message_mix(rng, max(10_000, n * 20)))
    rej = Latency("quick_reject (µs)", rej_times, goal="p99 <= 100 µs")
    rej.met = percentile(rej_times, 0.99) <= 100.0
    report.extra["rejected_share"] = rej_share

    async with services() as svc:
        await apply_pg_settings(svc, args.pg_set)
        mm = make_manager(svc, embedder, clock=lambda: NOW)
        if args.retrieval == "vector":  # the pre-issue-14 ranking, for a before/after
            mm.retrieval = mm.retrieval.off()
        await mm.initialize(watch=False)
        try:
            log(f"loading {plan.total:,} memories ({args.load}, HNSW {args.index}) ...")
            report.setup.update(await load(svc, mm, pool, plan, args))
            report.setup.update(await sizes(svc))
            log("measuring get_context / search / store ...")
            await seed_hot_tier(mm, pool, MAIN_USER)
            await seed_hot_tier(mm, pool, SMALL_USER)
            report.latencies += await measure_reads(mm, queries, n, warmup)
            plans, breakdown = await search_breakdown(
                svc, qvecs[: min(n, 200)], mm.max_retrieved * CANDIDATE_FACTOR
            )
            report.latencies += breakdown
            report.extra["plans"] = plans
            report.latencies.append(await measure_store(mm, pool, n, warmup))
            info = await svc.redis.info("memory")
            report.extra["redis_used_mib"] = info["used_memory"] / (1024 * 1024)
        finally:
            await mm.close()
            await embedder.aclose()
    report.latencies += [embed_lat, rej]
    cur, peak = rss_mib()
    report.extra.update(
        {"rss_mib": cur, "peak_rss_mib": peak, "total_s": time.perf_counter() - t_start}
    )
    return report


def print_report(r: Report) -> None:
    s = r.setup
    print(
        f"data: {r.config['rows']:,} memories ({r.config['main_rows']:,} for one user, "
        f"the rest 100 per user), scale {r.config['scale']}; pool of {s['pool']['texts']} "
        "embedded texts, vectors perturbed per row"
    )
    if r.config.get("pg_set"):
        print(f"PostgreSQL settings for the bench database: {', '.join(r.config['pg_set'])}")
    sm = s["store_many"]
    how = "a separate slice after the COPY bulk load" if sm.get("slice") else "the whole load"
    print(
        f"ingest, store_many(embeddings=..., to_hot=False) over {how}: {sm['rows']:,} rows "
        f"in {sm['seconds']:.1f}s = {sm['per_s']:,.0f} memories/s "
        f"(last 10% of calls: {sm['last_10pct_per_s']:,.0f}/s)"
    )
    for size, b in sm["by_call_size"].items():
        print(
            f"  calls of {size:>4} rows: {b['calls']:>6,} calls, {b['per_s']:,.0f} memories/s, "
            f"p50 {b['ms_per_call_p50']:.1f} ms per call"
        )
    if "copy" in s:
        c = s["copy"]
        print(f"bulk COPY: {c['rows']:,} rows in {c['seconds']:.1f}s = {c['per_s']:,.0f} rows/s")
    if s["index"] == "after":
        print(f"HNSW index built after the load in {s['index_build_s']:.1f}s")
    else:
        print("HNSW index maintained as rows arrived (as in production)")
    print(
        f"VACUUM ANALYZE {s['vacuum_analyze_s']:.1f}s; database {s['database_mib']:.0f} MiB, "
        f"HNSW index {s['hnsw_index_mib']:.0f} MiB, {s['rows']:,} rows"
    )
    print(
        f"embedder: load {s['embedder_load_s']:.2f}s, batch {s['embed_batch_texts_per_s']:.0f} "
        f"texts/s (1024 texts), pool {s['pool']['embed_texts_per_s']:.0f} texts/s"
    )
    print()
    w = max(len(lat.name) for lat in r.latencies)
    head = f"{'what':<{w}} {'n':>6} {'p50':>8} {'p95':>8} {'p99':>8} {'mean':>8}  short  goal"
    print(head)
    print("-" * len(head))
    for lat in r.latencies:
        st = lat.stats()
        verdict = "" if lat.met is None else (" met" if lat.met else " NOT met")
        short = "" if lat.short is None else str(lat.short)
        print(
            f"{lat.name:<{w}} {st['n']:>6} {st['p50']:>8.3f} {st['p95']:>8.3f} "
            f"{st['p99']:>8.3f} {st['mean']:>8.3f}  {short:>5}  {lat.goal}{verdict}"
        )
    print("(ms unless marked µs; short = results with fewer rows than the limit asked for)")
    e = r.extra
    print(f"quick_reject rejected {e['rejected_share']:.0%} of the message mix")
    for which, plan in e["plans"].items():
        print(f"plan, {which}: {plan}")
    print(
        f"RSS {e['rss_mib']:.0f} MiB (peak {e['peak_rss_mib']:.0f} MiB); "
        f"Redis {e['redis_used_mib']:.1f} MiB; total {e['total_s']:.0f}s"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_CORTEX_SCALE", 1)))
    p.add_argument("--n", type=int, default=int(os.environ.get("BENCH_CORTEX_N", 1000)))
    p.add_argument("--json", type=Path, help="write all figures to this file")
    p.add_argument("--pool", type=int, default=5000, help="distinct embedded texts (at scale 1)")
    p.add_argument("--batch", type=int, default=1000, help="rows per store_many call (big user)")
    p.add_argument(
        "--small-batch", type=int, default=10, help="rows per store_many call (other users)"
    )
    p.add_argument("--load", choices=("store_many", "copy"), default="store_many")
    p.add_argument(
        "--retrieval",
        choices=("default", "vector"),
        default="default",
        help="default: hybrid retrieval as shipped; vector: the vector leg alone",
    )
    p.add_argument("--index", choices=("online", "after"), default="online")
    p.add_argument("--slice", type=int, default=10_000, help="store_many rows after a COPY")
    p.add_argument(
        "--pg-set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="PostgreSQL setting for the bench database (repeatable), e.g. "
        "plan_cache_mode=force_custom_plan",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv or [])
    report = asyncio.run(run(args))
    print_report(report)
    if args.json:
        payload = report.to_json()
        payload["config"]["json"] = str(args.json)
        args.json.write_text(json.dumps(payload, indent=2, default=str))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main(sys.argv[1:])
