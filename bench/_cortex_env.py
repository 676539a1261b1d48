"""Real PostgreSQL + pgvector and Redis for the Cortex benchmarks.

Embedded by default (the same ``storage.embedded`` servers Clara runs on, in a
temporary directory), or external servers named by ``BENCH_DATABASE_URL`` /
``BENCH_REDIS_URL`` (the same convention as the tests' ``TEST_*_URL``).  On an
external PostgreSQL a fresh database is created and dropped afterwards (the
role needs CREATEDB), so a benchmark never touches data it did not make.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from redis.asyncio import Redis
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from clara_core.cortex.embedding.local_onnx import LocalOnnxEmbedder
from clara_core.cortex.emotion import HeuristicEmotionScorer
from clara_core.cortex.manager import MemoryManager
from clara_core.cortex.scoring import RetrievalWeights
from storage import migrations
from storage.db import create_engine, normalize_database_url
from storage.embedded import EmbeddedPostgres, EmbeddedRedis
from storage.redis import create_redis


@dataclass
class Services:
    """Connections to one fresh, migrated database and a Redis database."""

    engine: AsyncEngine
    redis: Redis
    database_url: str  # SQLAlchemy URL of the fresh database
    redis_url: str
    conninfo: str  # the same database for plain psycopg (COPY, ad-hoc SQL)
    workdir: Path
    embedded: bool


def _psycopg_conninfo(sqlalchemy_url: str) -> str:
    url = make_url(normalize_database_url(sqlalchemy_url))
    return url.render_as_string(hide_password=False).replace(
        "postgresql+psycopg://", "postgresql://"
    )


async def _fresh_database(server_url: str) -> str:
    """Create an empty database next to ``server_url``'s and return its URL."""
    url = make_url(normalize_database_url(server_url))
    name = f"clara_bench_{uuid.uuid4().hex[:10]}"
    admin = _psycopg_conninfo(url.set(database="postgres").render_as_string(hide_password=False))
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


async def _drop_database(database_url: str) -> None:
    url = make_url(database_url)
    admin = _psycopg_conninfo(url.set(database="postgres").render_as_string(hide_password=False))
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


@asynccontextmanager
async def services(*, pool_size: int = 10) -> AsyncIterator[Services]:
    """Start (or connect to) the servers, migrate a fresh database, yield, clean up."""
    ext_pg = os.environ.get("BENCH_DATABASE_URL")
    ext_redis = os.environ.get("BENCH_REDIS_URL")
    with tempfile.TemporaryDirectory(prefix="clara-bench-cortex-") as tmp:
        workdir = Path(tmp)
        pg = None if ext_pg else EmbeddedPostgres(workdir / "pg")
        rd = None if ext_redis else EmbeddedRedis(workdir / "redis")
        try:
            server_url = ext_pg or await pg.start()  # type: ignore[union-attr]
            redis_url = ext_redis or await rd.start()  # type: ignore[union-attr]
            # The embedded server's "clara" database is already fresh; an external
            # server gets a throw-away database.
            db_url = await _fresh_database(server_url) if ext_pg else server_url
            engine = create_engine(db_url, pool_size=pool_size)
            redis = create_redis(redis_url)
            try:
                await migrations.upgrade(engine)
                if ext_redis:
                    await redis.flushdb()  # the bench's keys must not mix with old ones
                yield Services(
                    engine=engine,
                    redis=redis,
                    database_url=db_url,
                    redis_url=redis_url,
                    conninfo=_psycopg_conninfo(db_url),
                    workdir=workdir,
                    embedded=pg is not None,
                )
            finally:
                await redis.aclose()
                await engine.dispose()
                if ext_pg:
                    await _drop_database(db_url)
        finally:
            if rd is not None:
                await rd.stop()
            if pg is not None:
                await pg.stop()


def make_manager(
    svc: Services,
    embedder: LocalOnnxEmbedder,
    *,
    weights: RetrievalWeights | None = None,
    clock: Callable[[], datetime] | None = None,
    name: str = "outbox",
) -> MemoryManager:
    """A real MemoryManager (local embedder, heuristic emotion scorer) on ``svc``."""
    extra = {"clock": clock} if clock is not None else {}
    return MemoryManager(
        redis=svc.redis,
        engine=svc.engine,
        embedder=embedder,
        scorer=HeuristicEmotionScorer(),
        outbox_dir=svc.workdir / name,
        weights=weights,
        **extra,
    )
