"""Run alembic programmatically on Clara's async engine.

There is no alembic.ini: the configuration is built here, so ``python
discord_bot.py migrate ...`` and Clara's own start-up share one code path.
A transaction-level advisory lock serialises concurrent migrators (two Clara
replicas starting at once).
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ProgrammingError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from clara_core.errors import MigrationError

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

_LOCK_KEY = 0x636C617261  # "clara"


@dataclass
class MigrationStatus:
    current: str | None
    head: str | None
    pending: list[str]

    @property
    def up_to_date(self) -> bool:
        return not self.pending


def _is_script_dir(path: Path) -> bool:
    # The *library* is also a directory named "alembic" (next to ``storage`` in
    # site-packages after a non-editable install): only ours has env.py and
    # revision files.
    return (path / "env.py").is_file() and any((path / "versions").glob("*.py"))


def script_directory() -> Path:
    """Where Clara's migration scripts are: the source tree's ``alembic/``, or,
    after ``pip install .``, the copy installed as data files under
    ``<prefix>/share/clara/alembic`` (pyproject's ``data-files``)."""
    candidates = [
        Path(__file__).resolve().parent.parent / "alembic",
        Path(sys.prefix) / "share" / "clara" / "alembic",
    ]
    for path in candidates:
        if _is_script_dir(path):
            return path
    # Running no migration and reporting success would leave an empty database
    # that every query then fails on: refuse loudly instead.
    raise MigrationError(
        "Clara's migration scripts were not found (looked in "
        + ", ".join(str(p) for p in candidates)
        + "); reinstall Clara (pip install .) or run from a source checkout"
    )


def alembic_config() -> Config:
    # alembic (with its templating and highlighting imports) costs ~0.4 s of CPU at
    # start-up; it is only imported when a migration really has to run (see upgrade()).
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_directory()))
    return cfg


def _run_command(engine: AsyncEngine, fn_name: str, revision: str):
    from alembic.util.exc import CommandError

    from alembic import command

    cfg = alembic_config()

    def run(sync_conn: Connection) -> None:
        sync_conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
        cfg.attributes["connection"] = sync_conn
        getattr(command, fn_name)(cfg, revision)

    async def go() -> None:
        try:
            async with engine.connect() as conn:
                await conn.run_sync(run)
                await conn.commit()
        except (SQLAlchemyError, CommandError) as exc:
            raise MigrationError(f"{fn_name} to {revision} failed: {exc}") from exc

    return go()


_REVISION = re.compile(r"^revision(?::[^=]*)?=\s*[\"']([^\"']+)[\"']", re.M)
_DOWN = re.compile(r"^down_revision(?::[^=]*)?=\s*(?:None|[\"']([^\"']+)[\"'])", re.M)


def _head_from_files() -> str | None:
    """The head revision as the revision files name it, read without alembic; None
    when that is not one clear answer (then alembic decides)."""
    revisions: set[str] = set()
    downs: set[str] = set()
    for path in (script_directory() / "versions").glob("*.py"):
        source = path.read_text()
        rev, down = _REVISION.search(source), _DOWN.search(source)
        if rev is None or down is None:
            return None
        revisions.add(rev.group(1))
        if down.group(1):
            downs.add(down.group(1))
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 else None


async def _current_revision(engine: AsyncEngine) -> str | None:
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    except ProgrammingError:
        return None  # no alembic_version table: an empty database
    return rows[0][0] if len(rows) == 1 else None


async def upgrade(engine: AsyncEngine, revision: str = "head") -> MigrationStatus:
    if revision == "head":
        # Every start but the first finds the schema at head: one query answers that,
        # without importing alembic.
        head = _head_from_files()
        if head is not None and await _current_revision(engine) == head:
            return MigrationStatus(current=head, head=head, pending=[])
    before = await status(engine)
    if before.pending or revision != "head":
        await _run_command(engine, "upgrade", revision)
        after = await status(engine)
        log.info("database migrated %s -> %s", before.current or "empty", after.current)
        return after
    return before


async def downgrade(engine: AsyncEngine, revision: str) -> MigrationStatus:
    await _run_command(engine, "downgrade", revision)
    return await status(engine)


async def status(engine: AsyncEngine) -> MigrationStatus:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    if head is None:
        raise MigrationError(f"no migration revisions in {script.dir}; the installation is broken")

    def current(sync_conn: Connection) -> str | None:
        return MigrationContext.configure(sync_conn).get_current_revision()

    async with engine.connect() as conn:
        cur = await conn.run_sync(current)
    pending = (
        [
            rev.revision
            for rev in reversed(list(script.iterate_revisions(head, cur)))
            if rev.revision != cur
        ]
        if head
        else []
    )
    return MigrationStatus(current=cur, head=head, pending=pending)
