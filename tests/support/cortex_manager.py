"""Build a real ``MemoryManager`` for tests: real Redis, real PostgreSQL + pgvector,
the real local embedder, the local emotion heuristic, a controllable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from clara_core.cortex.emotion import HeuristicEmotionScorer
from clara_core.cortex.manager import MemoryManager
from clara_core.cortex.scoring import RetrievalWeights
from tests.support.clock import Clock
from tests.support.cortex import local_embedder


@asynccontextmanager
async def memory_manager(
    *,
    redis: Redis,
    engine: AsyncEngine,
    outbox_dir: Path,
    clock: Clock | None = None,
    watch: bool = False,
    probe_interval: float = 0.1,
    weights: RetrievalWeights | None = None,
) -> AsyncIterator[MemoryManager]:
    manager = MemoryManager(
        redis=redis,
        engine=engine,
        embedder=local_embedder(),
        scorer=HeuristicEmotionScorer(),
        outbox_dir=outbox_dir,
        clock=clock or Clock(),
        probe_interval=probe_interval,
        weights=weights,
    )
    await manager.initialize(watch=watch)
    try:
        yield manager
    finally:
        await manager.close()
