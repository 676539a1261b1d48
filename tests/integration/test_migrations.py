"""Alembic is the only schema path: upgrade, downgrade, status, model parity."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from storage import migrations
from storage.db import create_engine
from storage.models import Base

pytestmark = pytest.mark.storage

#: Every revision, oldest first, as the files in alembic/versions name them; the
#: chain's order is checked against this (a revision out of order fails here).
REVISIONS = sorted(
    p.name.split("_", 1)[0]
    for p in (Path(__file__).resolve().parents[2] / "alembic" / "versions").glob("0*.py")
)
HEAD = REVISIONS[-1]

CORE_TABLES = {
    "projects",
    "sessions",
    "messages",
    "channel_summaries",
    "user_preferences",
    "memories",
}


async def _tables(engine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_empty_database_upgrades_to_head_and_back(empty_database_url):
    engine = create_engine(empty_database_url, pool_size=1)
    try:
        st = await migrations.status(engine)
        assert st.current is None and st.pending == REVISIONS

        st = await migrations.upgrade(engine)
        assert st.up_to_date and st.current == st.head == HEAD
        assert await _tables(engine) >= CORE_TABLES
        async with engine.connect() as conn:
            ext = (
                await conn.execute(
                    text("SELECT extversion FROM pg_extension WHERE extname='vector'")
                )
            ).scalar_one()
        assert ext  # pgvector is enabled by the first migration

        st = await migrations.downgrade(engine, "0001")  # one step at a time
        assert st.current == "0001" and st.pending == REVISIONS[1:]
        assert "user_preferences" not in await _tables(engine)

        st = await migrations.downgrade(engine, "base")
        assert st.current is None
        assert not (CORE_TABLES & await _tables(engine))

        st = await migrations.upgrade(engine)
        assert st.current == HEAD
        assert {"project_members", "contradictions", "consolidation_logs"} <= await _tables(engine)
        assert {"companion_state", "companion_history"} <= await _tables(engine)
    finally:
        await engine.dispose()


async def test_upgrade_is_idempotent(engine):
    first = await migrations.upgrade(engine)
    second = await migrations.upgrade(engine)
    assert first.current == second.current == HEAD


async def test_models_match_migrations(engine):
    """The ORM models and the migrations describe the same schema."""

    def diff(sync_conn):
        ctx = MigrationContext.configure(
            sync_conn, opts={"compare_type": True, "compare_server_default": False}
        )
        return compare_metadata(ctx, Base.metadata)

    async with engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


_UPGRADE_AND_REPORT = """
import asyncio, sys
from storage import migrations
from storage.db import create_engine

async def main(url):
    engine = create_engine(url, pool_size=1)
    try:
        st = await migrations.upgrade(engine)
    finally:
        await engine.dispose()
    print(st.current, st.up_to_date, "alembic" in sys.modules)

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.parametrize("at_head", [True, False])
async def test_a_start_at_head_does_not_import_alembic(at_head, database_url, empty_database_url):
    """Every start but the first finds the schema at head: one query says so, and the
    ~0.4 s alembic import is left out (a database behind head still migrates)."""
    import asyncio
    import subprocess
    import sys

    url = database_url if at_head else empty_database_url
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _UPGRADE_AND_REPORT, url],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    current, up_to_date, imported = out.stdout.split()
    assert (current, up_to_date) == (HEAD, "True")
    assert imported == ("False" if at_head else "True")
