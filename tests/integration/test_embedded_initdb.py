"""An interrupted first start leaves no half-made PostgreSQL cluster behind."""

from __future__ import annotations

import asyncio

from storage.embedded import EmbeddedPostgres


async def test_cancelled_initdb_leaves_nothing_a_later_start_would_trust(tmp_path):
    pg = EmbeddedPostgres(tmp_path / "data")
    staging = tmp_path / "data" / "postgres.initdb"
    start = asyncio.create_task(pg.start())
    async with asyncio.timeout(60):
        while not (staging.exists() or pg.pgdata.exists()):
            assert not start.done(), start  # no initdb happened?
            await asyncio.sleep(0.005)
    await asyncio.sleep(0.3)  # initdb is well under way (it writes PG_VERSION early)
    start.cancel()
    try:
        await start
    except asyncio.CancelledError:
        pass
    else:  # a very fast initdb finished first: nothing was interrupted
        await pg.stop()
        return
    # PG_VERSION is what start() takes for "a cluster exists": it must not be there.
    for _ in range(20):  # and stay absent (no initdb left running on)
        assert not (pg.pgdata / "PG_VERSION").exists()
        await asyncio.sleep(0.1)
    assert not staging.exists()
    again = EmbeddedPostgres(tmp_path / "data")
    try:
        await asyncio.wait_for(again.start(), 60)
    finally:
        await again.stop()
