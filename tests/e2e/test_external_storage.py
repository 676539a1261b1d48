"""With DATABASE_URL / REDIS_URL set, Clara uses those servers (and waits for them)."""

from __future__ import annotations

import asyncio

import pytest

from storage import migrations
from storage.db import create_engine
from tests.support.clara_process import clara_env, run_clara

pytestmark = [pytest.mark.slow, pytest.mark.storage]


async def test_clara_migrates_the_external_database(tmp_path, empty_database_url, redis_url):
    env = clara_env(tmp_path, DATABASE_URL=empty_database_url, REDIS_URL=redis_url)
    result = await asyncio.to_thread(run_clara, env=env, cwd=tmp_path)
    assert result.returncode == 2 and "DISCORD_BOT_TOKEN is not set" in result.stderr
    assert not (tmp_path / "data" / "postgres").exists()  # no embedded server started
    engine = create_engine(empty_database_url, pool_size=1)
    try:
        assert (await migrations.status(engine)).up_to_date
    finally:
        await engine.dispose()


def test_unreachable_external_postgres_is_a_plain_error(tmp_path):
    env = clara_env(
        tmp_path,
        DATABASE_URL="postgresql://clara:sekret-pw@127.0.0.1:9/clara",
        CLARA_STARTUP_TIMEOUT="1.5",
    )
    for args in ((), ("migrate", "status")):
        result = run_clara(*args, env=env, cwd=tmp_path)
        assert result.returncode == 1, (args, result.stderr)
        assert (
            "cannot reach PostgreSQL at postgresql://clara:***@127.0.0.1:9/clara" in result.stderr
        )
        assert "sekret-pw" not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr, (args, result.stderr)
        assert "waiting for PostgreSQL" in result.stderr  # it retried before giving up
