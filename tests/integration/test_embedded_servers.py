"""The embedded default: real child servers, reuse, persistence, orphans, privacy."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from clara_core.errors import EmbeddedServerError
from clara_core.proc import pid_alive
from storage.embedded import EmbeddedPostgres, EmbeddedRedis
from storage.redis import create_redis
from storage.services import Storage

REPO = Path(__file__).resolve().parents[2]


async def _pg_exec(pg: EmbeddedPostgres, sql: str, dbname: str = "clara"):
    async with await psycopg.AsyncConnection.connect(
        pg.admin_conninfo(dbname), autocommit=True
    ) as c:
        cur = await c.execute(sql)
        return await cur.fetchall() if cur.description else None


async def test_postgres_restart_reuses_cluster_and_keeps_data(tmp_path):
    pg = EmbeddedPostgres(tmp_path)
    await pg.start()
    try:
        await _pg_exec(pg, "CREATE TABLE keep (v text); INSERT INTO keep VALUES ('kept')")
        version_file = pg.pgdata / "PG_VERSION"
        mtime = version_file.stat().st_mtime_ns
    finally:
        await pg.stop()
    pg2 = EmbeddedPostgres(tmp_path)
    await pg2.start()
    try:
        assert await _pg_exec(pg2, "SELECT v FROM keep") == [("kept",)]
        assert version_file.stat().st_mtime_ns == mtime  # no second initdb
    finally:
        await pg2.stop()


async def test_postgres_is_private(tmp_path):
    pg = EmbeddedPostgres(tmp_path)
    await pg.start()
    try:
        assert await _pg_exec(pg, "SHOW listen_addresses") == [("",)]  # no TCP
        assert stat.S_IMODE(pg.socket_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE(pg.pgdata.stat().st_mode) == 0o700
        if os.geteuid() == 0:
            # Root: the server runs in a user namespace as an ordinary uid.
            uid_map = Path(f"/proc/{pg.pid}/uid_map").read_text().split()
            assert uid_map[:3] == ["1000", "0", "1"]
    finally:
        await pg.stop()


async def test_orphaned_postgres_is_stopped_and_replaced(tmp_path):
    first = EmbeddedPostgres(tmp_path)
    await first.start()
    orphan_pid = first.pid
    first.proc = None  # forget it, as a crashed Clara would
    second = EmbeddedPostgres(tmp_path)
    await second.start()
    try:
        assert second.pid != orphan_pid
        await asyncio.sleep(0.1)
        assert not pid_alive(orphan_pid)
        assert await _pg_exec(second, "SELECT 1") == [(1,)]
    finally:
        await second.stop()


async def test_redis_persists_across_graceful_restart(tmp_path):
    rd = EmbeddedRedis(tmp_path)
    client = create_redis(await rd.start())
    await client.set("hot", "state")
    await client.aclose()
    await rd.stop()
    rd2 = EmbeddedRedis(tmp_path)
    client = create_redis(await rd2.start())
    try:
        assert await client.get("hot") == "state"
        assert (await client.config_get("port"))["port"] == "0"  # no TCP
    finally:
        await client.aclose()
        await rd2.stop()


async def test_redis_aof_survives_kill_9(tmp_path):
    rd = EmbeddedRedis(tmp_path)
    client = create_redis(await rd.start())
    await client.set("durable", "yes")
    await client.aclose()
    await asyncio.sleep(1.5)  # appendfsync everysec
    rd.proc.kill()
    await rd.proc.wait()
    rd2 = EmbeddedRedis(tmp_path)
    client = create_redis(await rd2.start())
    try:
        assert await client.get("durable") == "yes"
    finally:
        await client.aclose()
        await rd2.stop()


async def test_long_data_dir_uses_short_socket_dir(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    pg = EmbeddedPostgres(deep)
    assert len(str(pg.socket_dir)) < 100 and not str(pg.socket_dir).startswith(str(deep))
    await pg.start()
    try:
        assert await _pg_exec(pg, "SELECT 2") == [(2,)]
    finally:
        await pg.stop()


async def test_data_dir_has_one_owner_and_tools_can_attach(tmp_path):
    owner = await Storage.open(tmp_path)
    try:
        with pytest.raises(EmbeddedServerError, match=f"pid {os.getpid()}"):
            await Storage.open(tmp_path)
        guest = await Storage.open(tmp_path, attach=True)
        try:
            assert guest.embedded_postgres is None  # attached, not a second server
            await guest.redis.set("via-guest", "1")
            assert await owner.redis.get("via-guest") == "1"
        finally:
            await guest.close()
        assert await owner.redis.ping()  # closing the guest left the owner's servers up
    finally:
        await owner.close()


async def test_servers_die_with_a_killed_clara(tmp_path):
    """SIGKILL of the owning process takes the embedded servers down (no orphans)."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from storage.services import Storage
        async def main():
            st = await Storage.open(Path({str(tmp_path)!r}))
            print(st.embedded_postgres.pid, st.embedded_redis.pid, flush=True)
            await asyncio.sleep(3600)
        asyncio.run(main())
        """
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=REPO, stdout=asyncio.subprocess.PIPE
    )
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    pg_pid, redis_pid = map(int, line.split())
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    for _ in range(100):
        if not pid_alive(pg_pid) and not pid_alive(redis_pid):
            break
        await asyncio.sleep(0.1)
    assert not pid_alive(pg_pid), "postgres outlived its parent"
    assert not pid_alive(redis_pid), "redis outlived its parent"
    # and the data directory is immediately usable again
    st = await Storage.open(tmp_path)
    try:
        assert await st.redis.ping()
    finally:
        await st.close()
