"""SQLAlchemy async engine for PostgreSQL (psycopg 3)."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def normalize_database_url(url: str) -> str:
    """Accept the usual postgres:// spellings and select the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {redact_url(url)}")


def redact_url(url: str) -> str:
    """The URL with its password hidden, safe for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a malformed URL must not leak through the error path
        return "<unparseable database URL>"


#: Session settings for every connection, sent in the startup packet (no round trip).
#: - plan_cache_mode: psycopg prepares a statement after 5 runs and PostgreSQL may then
#:   switch to a generic plan that doesn't know the user a vector search filters on;
#:   measured, that plan sorted all of a big user's rows instead of using HNSW
#:   (61 vs 12 ms p95 at 25k memories, bench/cortex.py).
#: - hnsw.iterative_scan / ef_search (pgvector; placeholders until the extension
#:   loads): a filtered HNSW scan keeps going until the filter is satisfied.
SESSION_OPTIONS = (
    "-c plan_cache_mode=force_custom_plan "
    "-c hnsw.iterative_scan=relaxed_order "
    "-c hnsw.ef_search=100"
)


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    return create_async_engine(
        normalize_database_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # A restarted server leaves dead pooled connections; test before use.
        pool_pre_ping=True,
        pool_recycle=1800,
        echo=echo,
        connect_args={"options": SESSION_OPTIONS},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
