"""The full-text language of the lexical leg (``CORTEX_TEXT_SEARCH_CONFIG``).

``memories.content_tsv`` is a column PostgreSQL generates from ``content`` with
one text search configuration (a ``regconfig``: stemming and stop words of a
language; migration 0005 made it ``'english'``).  A question is parsed with the
same configuration, or its stems would not meet the stored ones ("running" is
``run`` in english, ``running`` in simple).  So:

* at start, ``check`` refuses an unknown configuration (a ``ConfigError``
  naming the setting, exit 2) and one that differs from the column's, naming the
  fix;
* ``cortex reindex-text`` (``reindex``) rebuilds the generated column and its
  GIN index with the configured language, in one transaction (a crash leaves
  the old column), then refreshes the statistics the lexical leg reads.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clara_core.errors import ConfigError

log = logging.getLogger(__name__)

SETTING = "CORTEX_TEXT_SEARCH_CONFIG"
INDEX = "ix_memories_user_content_tsv"
#: What a regconfig name may look like (optionally schema-qualified).  It is put in
#: DDL (a generated column's expression takes no bind parameters), so only a name
#: that is also in pg_ts_config is ever used.
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_STORED = re.compile(r"'([^']+)'::regconfig")


async def known_configs(engine: AsyncEngine) -> list[str]:
    """The text search configurations this PostgreSQL has (schema-qualified outside
    pg_catalog, as ``regconfig`` prints them)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT CASE WHEN n.nspname = 'pg_catalog' THEN c.cfgname "
                "ELSE n.nspname || '.' || c.cfgname END "
                "FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace "
                "ORDER BY 1"
            )
        )
        return [str(r) for r in rows.scalars()]


async def stored_config(engine: AsyncEngine) -> str | None:
    """The configuration ``memories.content_tsv`` is generated with (None: no column)."""
    async with engine.connect() as conn:
        expr = (
            await conn.execute(
                text(
                    "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d "
                    "JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
                    "WHERE d.adrelid = 'memories'::regclass AND a.attname = 'content_tsv'"
                )
            )
        ).scalar_one_or_none()
    if expr is None:
        return None
    found = _STORED.search(str(expr))
    return found.group(1) if found else None


async def validate(engine: AsyncEngine, wanted: str) -> None:
    """``ConfigError`` naming the setting unless ``wanted`` is a configuration here."""
    known = await known_configs(engine)
    if not NAME.match(wanted) or wanted not in known:
        raise ConfigError(
            [
                f"{SETTING}={wanted!r} is not a text search configuration of this "
                f"PostgreSQL; choose one of: {', '.join(known)}"
            ]
        )


async def check(engine: AsyncEngine, wanted: str) -> None:
    """At start: the setting names a configuration, and the stored column uses it."""
    await validate(engine, wanted)
    stored = await stored_config(engine)
    if stored is not None and stored != wanted:
        raise ConfigError(
            [
                f"{SETTING}={wanted!r}, but the stored memories' full-text column was built "
                f"with {stored!r}: run 'python discord_bot.py cortex reindex-text' to "
                f"rebuild it (or set {SETTING}={stored})"
            ],
            headline="Clara's memory search language changed:",
        )


async def reindex(engine: AsyncEngine, wanted: str) -> bool:
    """Rebuild ``content_tsv`` and its index with ``wanted``; False when it already was."""
    await validate(engine, wanted)
    if await stored_config(engine) == wanted:
        return False
    async with engine.begin() as conn:
        # Dropping the column drops its index; both come back in this transaction.
        await conn.execute(text(f"DROP INDEX IF EXISTS {INDEX}"))
        await conn.execute(text("ALTER TABLE memories DROP COLUMN IF EXISTS content_tsv"))
        await conn.execute(
            text(
                "ALTER TABLE memories ADD COLUMN content_tsv tsvector GENERATED ALWAYS AS "
                f"(to_tsvector('{wanted}'::regconfig, content)) STORED"
            )
        )
        await conn.execute(
            text(f"CREATE INDEX {INDEX} ON memories USING gin (user_id, content_tsv)")
        )
    async with engine.begin() as conn:
        # The lexical leg leaves out the words most memories hold, read from these
        # statistics (WarmStore.common_terms); the old column's are gone.
        await conn.execute(text("ANALYZE memories"))
    log.warning("memories.content_tsv rebuilt with text search configuration %r", wanted)
    return True
