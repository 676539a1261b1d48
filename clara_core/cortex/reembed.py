"""Re-embed stored memories with the configured embedder (``cortex reembed``).

Two uses:

* **A new embedder** (another model or dimension): ``MemoryManager.initialize()``
  refuses to start with ``EmbedderMismatch`` because vectors of two models are
  not comparable.  Every memory whose vector came from another model is
  embedded again.  When the *dimension* changes, the ``memories.embedding``
  column itself is converted first: the HNSW index is dropped, the column's
  type becomes ``vector(N)`` (all vectors are set to NULL: the old ones cannot
  be cast), every memory is embedded again and the index is rebuilt after the
  vectors are in (building it once is much faster than updating it per row).
* **``--missing``**: memories stored without a vector during an embedding outage
  get theirs.

A memory is embedded exactly as ingest embeds it (``retrieval.embed_for_storage``):
with contextual embeddings on (``CORTEX_CONTEXTUAL_EMBEDDING``), a memory stored
with metadata ``speaker`` and ``context`` gets "speaker: content" blended with its
context's vector again, not the bare content's vector.

This works below ``MemoryManager`` on purpose — the manager is exactly what
refuses to run while the vectors don't match.  The embedder is recorded in
``cortex_meta`` only when no vector of another model is left, so an interrupted
run is finished by running it again (it picks up where it stopped: converted
rows no longer match its query).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from .manager import EMBEDDER_META_KEY
from .ports import Embedder
from .retrieval import RetrievalConfig, embed_for_storage
from .types import CortexError
from .warm import WarmStore

log = logging.getLogger(__name__)

HNSW_INDEX = "ix_memories_embedding_hnsw"
#: pgvector's HNSW index takes ``vector`` columns of at most 2000 dimensions.
HNSW_MAX_DIMS = 2000
DEFAULT_BATCH = 64
#: Consecutive failed batches after which the embedder is considered down.
MAX_FAILED_BATCHES = 3

Progress = Callable[[int, int], None]


class ReembedError(CortexError):
    """Re-embedding cannot run as asked (the operator changes the command or setup)."""


@dataclass
class ReembedPlan:
    model: str
    dims: int
    column_dims: int
    recorded: dict | None
    #: Memories the run would embed (before a column conversion: those with a vector
    #: of another model; after it, every memory).
    candidates: int
    total: int
    missing_only: bool

    @property
    def converts_column(self) -> bool:
        return self.column_dims != self.dims


@dataclass
class ReembedReport:
    plan: ReembedPlan
    embedded: int = 0
    failed: int = 0
    #: Vectors of another model still stored after the run.
    other_model_left: int = 0
    index_rebuilt: bool = False
    index_skipped: bool = False
    recorded: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        # --missing leaves other models' vectors alone; a full run must convert them all.
        return self.failed == 0 and (self.plan.missing_only or self.recorded)


def _where(missing_only: bool) -> str:
    if missing_only:
        return "embedding IS NULL"
    return (
        "embedding IS NULL OR embedding_model IS DISTINCT FROM :model "
        "OR vector_dims(embedding) <> :dims"
    )


async def plan_reembed(
    engine: AsyncEngine, embedder: Embedder, *, missing_only: bool = False
) -> ReembedPlan:
    warm = WarmStore(engine)
    column_dims = await warm.embedding_column_dims()
    recorded = await warm.get_meta(EMBEDDER_META_KEY)
    params = {"model": embedder.model_id, "dims": embedder.dims}
    async with engine.connect() as conn:
        total = int((await conn.execute(text("SELECT count(*) FROM memories"))).scalar_one())
        if column_dims != embedder.dims:
            candidates = total  # the conversion clears every vector
        else:
            stmt = text(f"SELECT count(*) FROM memories WHERE {_where(missing_only)}")
            candidates = int((await conn.execute(stmt, params)).scalar_one())
    return ReembedPlan(
        model=embedder.model_id,
        dims=embedder.dims,
        column_dims=column_dims,
        recorded=recorded,
        candidates=candidates,
        total=total,
        missing_only=missing_only,
    )


async def convert_column(engine: AsyncEngine, dims: int) -> None:
    """Make ``memories.embedding`` a ``vector(dims)``; every stored vector becomes NULL."""
    if not 1 <= int(dims) <= 16000:  # pgvector's limit for the vector type
        raise ReembedError(f"cannot store {dims}-dimensional vectors (pgvector allows 1-16000)")
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP INDEX IF EXISTS {HNSW_INDEX}"))
        await conn.execute(
            text(
                f"ALTER TABLE memories ALTER COLUMN embedding TYPE vector({int(dims)}) "
                f"USING NULL::vector({int(dims)})"
            )
        )
        await conn.execute(text("UPDATE memories SET embedding_model = NULL"))
    log.warning("memories.embedding is now vector(%d); every vector is re-made", dims)


async def ensure_index(engine: AsyncEngine, dims: int) -> bool:
    """Create the HNSW index if it is missing; False when pgvector cannot index ``dims``."""
    if dims > HNSW_MAX_DIMS:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP INDEX IF EXISTS {HNSW_INDEX}"))
        return False
    async with engine.begin() as conn:
        await conn.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {HNSW_INDEX} ON memories "
                "USING hnsw (embedding vector_cosine_ops)"
            )
        )
    return True


async def _index_exists(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT 1 FROM pg_indexes WHERE tablename = 'memories' AND indexname = :name"),
            {"name": HNSW_INDEX},
        )
        return found.first() is not None


async def reembed(
    engine: AsyncEngine,
    embedder: Embedder,
    plan: ReembedPlan,
    *,
    batch: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    retrieval: RetrievalConfig | None = None,
) -> ReembedReport:
    """Run ``plan`` (from :func:`plan_reembed`).  ``retrieval`` says how ingest embeds
    (contextual or not; the running configuration, CORTEX_* settings)."""
    config = retrieval or RetrievalConfig()
    started = time.monotonic()
    report = ReembedReport(plan=plan)
    if plan.converts_column:
        if plan.missing_only:
            raise ReembedError(
                f"the memories table stores {plan.column_dims}-dimensional vectors and "
                f"{plan.model!r} makes {plan.dims}: run 'cortex reembed' without --missing "
                "to convert every memory"
            )
        await convert_column(engine, plan.dims)
    warm = WarmStore(engine)
    params = {"model": plan.model, "dims": plan.dims}
    where = _where(plan.missing_only)
    last = uuid.UUID(int=0)
    failed_in_a_row = 0
    done = 0
    if progress is not None:
        progress(0, plan.candidates)
    while True:
        # Keyset pagination by id: rows that fail keep matching the query, so an
        # offset would skip rows; "id > last" never sees a row twice.
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        f"SELECT id, content, metadata FROM memories WHERE ({where}) AND id > :last "
                        "ORDER BY id LIMIT :limit"
                    ),
                    {**params, "last": last, "limit": max(1, batch)},
                )
            ).all()
        if not rows:
            break
        last = rows[-1].id
        try:
            vectors = await embed_for_storage(
                embedder, [(r.content, r.metadata or {}) for r in rows], config
            )
        except CortexError as exc:
            report.failed += len(rows)
            failed_in_a_row += 1
            log.warning("embedding %d memories failed: %s", len(rows), exc)
            if failed_in_a_row >= MAX_FAILED_BATCHES:
                remaining = await _count(engine, where, params, after=last)
                report.failed += remaining
                log.error("the embedder keeps failing; stopping (%d memories left)", remaining)
                break
        else:
            failed_in_a_row = 0
            await warm.set_embeddings(
                [(str(r.id), v) for r, v in zip(rows, vectors, strict=True)], model=plan.model
            )
            report.embedded += len(rows)
        done += len(rows)
        if progress is not None:
            progress(min(done, plan.candidates), max(plan.candidates, done))

    if plan.converts_column or not await _index_exists(engine):
        report.index_rebuilt = await ensure_index(engine, plan.dims)
        report.index_skipped = not report.index_rebuilt
    report.other_model_left = await _count(
        engine, "embedding IS NOT NULL AND embedding_model IS DISTINCT FROM :model", params
    )
    if report.other_model_left == 0:
        await warm.set_meta(EMBEDDER_META_KEY, {"model": plan.model, "dims": plan.dims})
        report.recorded = True
    report.seconds = time.monotonic() - started
    return report


async def _count(
    engine: AsyncEngine, where: str, params: dict, *, after: uuid.UUID | None = None
) -> int:
    extra = " AND id > :after" if after is not None else ""
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text(f"SELECT count(*) FROM memories WHERE ({where}){extra}"),
                    {**params, "after": after},
                )
            ).scalar_one()
        )
