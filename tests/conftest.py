"""Session-wide real services and per-test isolation (see tests/support/servers.py)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from storage.db import create_engine, session_factory
from storage.redis import create_redis
from tests.support.servers import PostgresForTests, RedisForTests, start_postgres, start_redis


@pytest.fixture(scope="session", autouse=True)
def _no_outside_clara_settings():
    """A developer's shell (or .env-exporting tool) must not change test results."""
    from clara_core.config import env_names

    names = set(env_names().values()) | {"PROACTIVE_ENABLED"}
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k in names}
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
async def postgres_server(tmp_path_factory) -> AsyncIterator[PostgresForTests]:
    # Short base path: unix socket paths are limited to ~100 bytes.
    pg = await start_postgres(
        os.environ.get("TEST_DATABASE_URL"), tmp_path_factory.mktemp("pg", numbered=True)
    )
    yield pg
    await pg.close()


@pytest.fixture(scope="session")
async def redis_server(tmp_path_factory) -> AsyncIterator[RedisForTests]:
    rd = await start_redis(os.environ.get("TEST_REDIS_URL"), tmp_path_factory.mktemp("redis"))
    yield rd
    await rd.close()


@pytest.fixture
async def database_url(postgres_server: PostgresForTests) -> AsyncIterator[str]:
    """URL of a fresh database at migration head, dropped after the test."""
    url = await postgres_server.create_database()
    yield url
    await postgres_server.drop_database(url)


@pytest.fixture
async def empty_database_url(postgres_server: PostgresForTests) -> AsyncIterator[str]:
    url = await postgres_server.create_database(migrated=False)
    yield url
    await postgres_server.drop_database(url)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=2)
    yield eng
    await eng.dispose()


@pytest.fixture
async def db(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with session_factory(engine)() as session:
        yield session


@pytest.fixture
async def redis_url(redis_server: RedisForTests) -> str:
    return redis_server.next_url()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_url)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()
