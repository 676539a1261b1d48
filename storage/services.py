"""Open Clara's storage: external servers when configured, embedded otherwise.

``Storage.open()`` is the only place that decides between the two, so the
rest of Clara sees one ``AsyncEngine`` and one Redis client either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from clara_core.errors import StorageError, StorageLoginError
from clara_core.proc import pid_alive

from .datadir import DataDirLock, Endpoints, clear_endpoints, read_endpoints, write_endpoints
from .db import create_engine, redact_url
from .embedded import EmbeddedPostgres, EmbeddedRedis
from .redis import create_redis

log = logging.getLogger(__name__)


@dataclass
class Storage:
    database_url: str
    redis_url: str
    engine: AsyncEngine
    redis: Redis
    data_dir: Path
    embedded_postgres: EmbeddedPostgres | None = None
    embedded_redis: EmbeddedRedis | None = None
    lock: DataDirLock | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return self.embedded_postgres is not None or self.embedded_redis is not None

    @classmethod
    async def open(
        cls,
        data_dir: Path,
        *,
        database_url: str | None = None,
        redis_url: str | None = None,
        attach: bool = False,
    ) -> Storage:
        """Connect to (and if needed start) Postgres and Redis.

        With ``attach=True`` (CLI tools), a Clara already running on this data
        directory is reused instead of refused.
        """
        data_dir = data_dir.resolve()
        lock: DataDirLock | None = None
        pg: EmbeddedPostgres | None = None
        rd: EmbeddedRedis | None = None
        timings: dict[str, float] = {}
        if database_url is None or redis_url is None:
            lock = DataDirLock(data_dir)
            if not lock.try_acquire():
                running = read_endpoints(data_dir)
                if attach and running is not None and pid_alive(running.pid):
                    log.info("attaching to the servers of running Clara (pid %s)", running.pid)
                    database_url = database_url or running.database_url
                    redis_url = redis_url or running.redis_url
                    lock = None
                else:
                    lock.acquire_or_raise()  # raises with the holder's pid
        try:
            if database_url is None:
                pg = EmbeddedPostgres(data_dir)
                t0 = time.monotonic()
                database_url = await pg.start()
                timings["postgres_start_s"] = time.monotonic() - t0
            if redis_url is None:
                rd = EmbeddedRedis(data_dir)
                t0 = time.monotonic()
                redis_url = await rd.start()
                timings["redis_start_s"] = time.monotonic() - t0
        except BaseException:
            for server in (rd, pg):
                if server is not None:
                    await server.stop()
            if lock is not None:
                lock.release()
            raise
        if lock is not None:
            write_endpoints(
                data_dir,
                Endpoints(
                    os.getpid(),
                    pg.url if pg else None,
                    rd.url if rd else None,
                ),
            )
        assert database_url is not None and redis_url is not None
        return cls(
            database_url=database_url,
            redis_url=redis_url,
            engine=create_engine(database_url),
            redis=create_redis(redis_url),
            data_dir=data_dir,
            embedded_postgres=pg,
            embedded_redis=rd,
            lock=lock,
            timings=timings,
        )

    async def close(self) -> None:
        """Close clients, then stop embedded servers (redis persists on SIGTERM)."""
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        with contextlib.suppress(Exception):
            await self.engine.dispose()
        for server in (self.embedded_redis, self.embedded_postgres):
            if server is not None:
                await server.stop()
        if self.lock is not None:
            clear_endpoints(self.data_dir)
            self.lock.release()
            self.lock = None


async def wait_until_reachable(storage: Storage, *, timeout: float) -> None:
    """Wait for both servers to answer, with backoff; raise a plain error at the deadline.

    External servers may come up after Clara (compose, a restarting database);
    waiting here turns a start-up race into a short delay instead of a crash.
    """
    deadline = time.monotonic() + timeout
    delay = 0.25
    attempt = 0
    while True:
        attempt += 1
        problems: list[str] = []
        refused: list[str] = []
        pg_at = f"PostgreSQL at {redact_url(storage.database_url)}"
        redis_at = f"Redis at {redact_url(storage.redis_url)}"
        try:
            async with storage.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            reason = _postgres_login_refusal(exc)
            if reason is not None:
                refused.append(f"DATABASE_URL: {pg_at} {reason}")
            else:
                problems.append(f"{pg_at}: {_first_line(exc)}")
        try:
            await storage.redis.ping()
        except AuthenticationError as exc:
            # WRONGPASS / NOAUTH / AUTH without a configured password.
            refused.append(
                f"REDIS_URL: {redis_at} refused the login ({_first_line(exc)}); set the "
                "password in REDIS_URL (redis://:PASSWORD@host:6379/0, or "
                "redis://USER:PASSWORD@... with ACL users)"
            )
        except (RedisError, OSError) as exc:
            problems.append(f"{redis_at}: {_first_line(exc)}")
        if refused:
            # The server answered and said no: waiting cannot change that.
            raise StorageLoginError(refused)
        if not problems:
            if attempt > 1:
                log.info("storage reachable after %d attempts", attempt)
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StorageError(
                "cannot reach " + "; ".join(problems) + ". Check that the server runs and the "
                "URL is right, or unset DATABASE_URL/REDIS_URL to use the embedded servers"
            )
        log.warning(
            "waiting for %s (retrying in %.1fs)", "; ".join(problems), min(delay, remaining)
        )
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, 5.0)


# libpq's words for "the server answered and refused this login" (SQLSTATE class 28,
# 3D000, 42501 on CONNECT); psycopg reports no SQLSTATE for a failed connection.
# Anything else (refused, timed out, "starting up", too many clients) may pass.
_PG_REFUSALS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"password authentication failed for user \"?([^\"\s]+)", re.I),
        "refused the password for user {0}: fix the password in DATABASE_URL",
    ),
    (
        re.compile(r"role \"([^\"]+)\" does not exist", re.I),
        "has no role (user) {0}: fix the user name in DATABASE_URL or create the role "
        "(CREATE ROLE ... LOGIN PASSWORD ...)",
    ),
    (
        re.compile(r"database \"([^\"]+)\" does not exist", re.I),
        "has no database {0}: create it (createdb {0}) or fix the database name in DATABASE_URL",
    ),
    (
        re.compile(r"role \"([^\"]+)\" is not permitted to log in", re.I),
        "does not let role {0} log in: ALTER ROLE {0} LOGIN, or use another user",
    ),
    (
        re.compile(r"permission denied for database \"?([^\"\s]+)", re.I),
        "does not let this user connect to database {0}: GRANT CONNECT, or use another user",
    ),
    (
        re.compile(r"no pg_hba\.conf entry for [^,\n]*", re.I),
        "refuses this client in pg_hba.conf ({0}): allow it there, or connect as another user",
    ),
    (
        re.compile(r"no password supplied", re.I),
        "wants a password: add it to DATABASE_URL (postgresql://user:PASSWORD@host/db)",
    ),
    (
        re.compile(r"(\w+) authentication failed for user", re.I),
        "refused the login ({0} authentication): fix the user in DATABASE_URL",
    ),
]


def _postgres_login_refusal(exc: BaseException) -> str | None:
    """What the server said if it refused the login (None for an outage)."""
    message = str(getattr(exc, "orig", None) or exc)
    for pattern, explain in _PG_REFUSALS:
        m = pattern.search(message)
        if m is not None:
            return explain.format(*(m.groups() or (m.group(0),)))
    return None


def _first_line(exc: BaseException) -> str:
    text_ = str(exc).strip().splitlines()
    return text_[0] if text_ else type(exc).__name__
