"""Start-up waits for servers that come up late instead of crashing."""

from __future__ import annotations

import asyncio

import pytest

from clara_core.errors import StorageError
from storage.db import create_engine
from storage.embedded import EmbeddedRedis
from storage.redis import create_redis
from storage.services import Storage, wait_until_reachable

pytestmark = pytest.mark.storage


def _storage(database_url: str, redis_url: str, tmp_path) -> Storage:
    return Storage(
        database_url=database_url,
        redis_url=redis_url,
        engine=create_engine(database_url, pool_size=1),
        redis=create_redis(redis_url),
        data_dir=tmp_path,
    )


async def test_waits_for_a_redis_that_starts_late(tmp_path, database_url):
    late = EmbeddedRedis(tmp_path / "late")
    storage = _storage(database_url, late.url, tmp_path)
    waiter = asyncio.create_task(wait_until_reachable(storage, timeout=30))
    await asyncio.sleep(1.0)
    assert not waiter.done()
    await late.start()
    try:
        await asyncio.wait_for(waiter, 15)
        assert await storage.redis.ping()
    finally:
        await storage.close()
        await late.stop()


async def test_gives_up_at_the_deadline_naming_the_server(tmp_path, database_url):
    storage = _storage(database_url, f"unix://{tmp_path}/nothing.sock", tmp_path)
    try:
        with pytest.raises(StorageError, match="cannot reach Redis at unix://"):
            await wait_until_reachable(storage, timeout=0.5)
    finally:
        await storage.close()
