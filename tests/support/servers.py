"""Real PostgreSQL + pgvector and Redis for the test session.

Embedded by default (the same ``storage.embedded`` code Clara runs on); set
``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` to run against external servers
(CI does so once with Debian's PostgreSQL 15 + pgvector and redis-server 7).
The database role needs CREATEDB: every test gets its own database cloned
from a migrated template, which takes milliseconds and isolates completely.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from storage import migrations
from storage.db import create_engine, normalize_database_url
from storage.embedded import EmbeddedPostgres, EmbeddedRedis
from storage.redis import create_redis

TEMPLATE_DB = "clara_test_template"


def _conninfo(sqlalchemy_url: str, dbname: str) -> str:
    url = make_url(normalize_database_url(sqlalchemy_url)).set(database=dbname)
    return url.render_as_string(hide_password=False).replace(
        "postgresql+psycopg://", "postgresql://"
    )


def _with_database(sqlalchemy_url: str, dbname: str) -> str:
    return (
        make_url(normalize_database_url(sqlalchemy_url))
        .set(database=dbname)
        .render_as_string(hide_password=False)
    )


@dataclass
class PostgresForTests:
    url: str  # any database on the server; we only reuse host/credentials
    embedded: EmbeddedPostgres | None = None
    created: list[str] = field(default_factory=list)

    def admin_conninfo(self) -> str:
        return _conninfo(self.url, "postgres")

    async def prepare_template(self) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.admin_conninfo(), autocommit=True
        ) as c:
            await c.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
            await c.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        engine = create_engine(_with_database(self.url, TEMPLATE_DB), pool_size=1)
        try:
            await migrations.upgrade(engine)
        finally:
            await engine.dispose()

    async def create_database(self, *, migrated: bool = True) -> str:
        """A fresh database (a clone of the migrated template, or empty)."""
        name = f"clara_t_{uuid.uuid4().hex[:12]}"
        async with await psycopg.AsyncConnection.connect(
            self.admin_conninfo(), autocommit=True
        ) as c:
            template = f' TEMPLATE "{TEMPLATE_DB}"' if migrated else ""
            await c.execute(f'CREATE DATABASE "{name}"{template}')
        self.created.append(name)
        return _with_database(self.url, name)

    async def drop_database(self, url: str) -> None:
        name = make_url(url).database
        async with await psycopg.AsyncConnection.connect(
            self.admin_conninfo(), autocommit=True
        ) as c:
            await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def close(self) -> None:
        if self.embedded is not None:
            await self.embedded.stop()
            return
        async with await psycopg.AsyncConnection.connect(
            self.admin_conninfo(), autocommit=True
        ) as c:
            for name in [*self.created, TEMPLATE_DB]:
                await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class RedisForTests:
    url: str
    embedded: EmbeddedRedis | None = None
    databases: int = 16
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    async def probe(self) -> None:
        client = create_redis(self.url)
        try:
            self.databases = int((await client.config_get("databases"))["databases"])
        finally:
            await client.aclose()

    def next_url(self) -> str:
        """A Redis URL for a database index no other running test uses."""
        index = next(self._counter) % (self.databases - 1) + 1  # db 0 stays untouched
        if self.url.startswith("unix://"):
            base = self.url.split("?", 1)[0]
            return f"{base}?db={index}"
        base = self.url.rsplit("/", 1)[0] if self.url.count("/") > 2 else self.url
        return f"{base}/{index}"

    async def close(self) -> None:
        if self.embedded is not None:
            await self.embedded.stop()


async def start_postgres(env_url: str | None, data_dir: Path) -> PostgresForTests:
    if env_url:
        pg = PostgresForTests(url=normalize_database_url(env_url))
    else:
        server = EmbeddedPostgres(data_dir)
        pg = PostgresForTests(url=await server.start(), embedded=server)
    await pg.prepare_template()
    return pg


async def start_redis(env_url: str | None, data_dir: Path) -> RedisForTests:
    if env_url:
        rd = RedisForTests(url=env_url)
    else:
        server = EmbeddedRedis(data_dir)
        rd = RedisForTests(url=await server.start(), embedded=server)
    await rd.probe()
    return rd
