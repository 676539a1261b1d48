"""The database questions a backup and a restore ask (kept here: only storage/ speaks SQL).

- ``server_version_num``: pg_dump refuses a server newer than itself, so the
  backup command checks first and says which pg_dump it needs.
- ``tables_with_data``: restore goes into an empty database only; an empty
  Clara schema (after ``migrate upgrade``) counts as empty.
- ``table_row_counts``: what a restore must reproduce, row for row (tests, bench).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clara_core.errors import StorageError

from .services import _first_line, _postgres_login_refusal

T = TypeVar("T")


class DatabaseUnreachable(StorageError):
    """The server did not answer (an outage): a later try may succeed."""


class DatabaseRefused(StorageError):
    """The server answered and refused the login or the database: retrying cannot help."""


async def _checked(engine: AsyncEngine, query: Callable[[], Awaitable[T]]) -> T:
    """Run ``query``; a failure to reach the server becomes one of the two errors above."""
    try:
        return await query()
    except (SQLAlchemyError, OSError) as exc:
        where = f"PostgreSQL at {engine.url.render_as_string(hide_password=True)}"
        reason = _postgres_login_refusal(exc)
        if reason is not None:
            raise DatabaseRefused(f"DATABASE_URL: {where} {reason}") from exc
        raise DatabaseUnreachable(f"cannot reach {where}: {_first_line(exc)}") from exc


# alembic's bookkeeping row is not data: a migrated but unused database is empty.
_NOT_DATA = frozenset({"public.alembic_version"})

_USER_TABLES = text(
    "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' "
    "ORDER BY 1, 2"
)


def _quote(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


async def _tables(conn: AsyncConnection) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in (await conn.execute(_USER_TABLES)).all()]


async def server_version_num(engine: AsyncEngine) -> int:
    """The server's version as PostgreSQL numbers it (180001 for 18.1)."""

    async def go() -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SHOW server_version_num"))).scalar_one())

    return await _checked(engine, go)


async def tables_with_data(engine: AsyncEngine) -> list[str]:
    """Qualified names of the tables that hold at least one row (alembic's own excepted)."""

    async def go() -> list[str]:
        found = []
        async with engine.connect() as conn:
            for schema, table in await _tables(conn):
                name = f"{schema}.{table}"
                if name in _NOT_DATA:
                    continue
                q = text(f"SELECT EXISTS (SELECT 1 FROM {_quote(schema)}.{_quote(table)})")
                if (await conn.execute(q)).scalar_one():
                    found.append(name)
        return found

    return await _checked(engine, go)


async def table_row_counts(engine: AsyncEngine) -> dict[str, int]:
    """Exact row count of every user table, by qualified name."""
    counts = {}
    async with engine.connect() as conn:
        for schema, table in await _tables(conn):
            q = text(f"SELECT count(*) FROM {_quote(schema)}.{_quote(table)}")
            counts[f"{schema}.{table}"] = int((await conn.execute(q)).scalar_one())
    return counts
