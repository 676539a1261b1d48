"""Run alembic programmatically on Clara's async engine.

There is no alembic.ini: the configuration is built here, so ``python
discord_bot.py migrate ...`` and Clara's own start-up share one code path.
A transaction-level advisory lock serialises concurrent migrators (two Clara
replicas starting at once).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from alembic import command
from clara_core.errors import MigrationError

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
    cfg = Config()
    cfg.set_main_option("script_location", str(script_directory()))
    return cfg


def _run_command(engine: AsyncEngine, fn_name: str, revision: str):
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


async def upgrade(engine: AsyncEngine, revision: str = "head") -> MigrationStatus:
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
