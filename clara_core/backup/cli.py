"""``python discord_bot.py backup [run|list|restore]``.

Exit codes as for the rest of the CLI: 0 done (also: a run skipped by respawn
protection), 1 the work failed (after the retries), 2 refused as asked (a restore
over data, no confirmation, an unknown backup) or bad configuration (among it a
database server newer than the pg_dump in BACKUP_PG_BIN_DIR).  Messages go
through the log redactor: no password or key is ever printed.

The parser part stays light (no boto3, no SQLAlchemy): it is built on every
``discord_bot.py`` invocation.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clara_core.config import Settings

    from .service import Backups

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_REFUSED = 2

HELP = """\
Back up Clara's PostgreSQL database with pg_dump (custom format, compressed) to
clara_YYYYMMDD_HHMMSS.dump in S3_BUCKET (under backups/clara/) or, without a
bucket, in BACKUP_DIR (default CLARA_DATA_DIR/backups)."""

RESTORE_HELP = """\
Restore a backup into an EMPTY database (Clara's tables without rows, or no
tables at all); a database holding data is refused with how to empty it.  Stop
Clara first.  Asks for confirmation unless --yes.  Afterwards the schema revision
is compared with this Clara's migrations."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backup", help="back up, list or restore the database", description=HELP)
    actions = p.add_subparsers(dest="backup_action", metavar="ACTION")
    run = actions.add_parser("run", help="make a backup now (the default)")
    run.add_argument(
        "--force",
        action="store_true",
        help="back up even inside RESPAWN_PROTECTION_HOURS (like FORCE_BACKUP=true)",
    )
    actions.add_parser("list", help="the backups with size and age")
    restore = actions.add_parser(
        "restore", help="restore a backup into an empty database", description=RESTORE_HELP
    )
    restore.add_argument(
        "name", nargs="?", default="latest", help="clara_YYYYMMDD_HHMMSS.dump or latest (default)"
    )
    restore.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def make_backups(settings: Settings) -> Backups:
    """The service as the settings configure it (also for a scheduled job)."""
    from storage.embedded import postgres_bin_dir

    from .pgtools import PgTools
    from .service import Backups, RetryPolicy
    from .stores import BackupStore, LocalStore, S3Store

    backup_dir = settings.backup_dir or settings.clara_data_dir / "backups"
    store: BackupStore
    if settings.s3_bucket:
        store = S3Store(
            settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key=settings.s3_access_key.get_secret_value()
            if settings.s3_access_key
            else None,
            secret_key=settings.s3_secret_key.get_secret_value()
            if settings.s3_secret_key
            else None,
        )
    else:
        store = LocalStore(backup_dir)
    return Backups(
        store,
        PgTools(settings.backup_pg_bin_dir or postgres_bin_dir()),
        scratch_dir=backup_dir,
        retry=RetryPolicy(settings.db_retry_attempts, settings.db_retry_delay),
        retention_days=settings.backup_retention_days,
        protection_hours=settings.respawn_protection_hours,
    )


async def run(settings: Settings, args: argparse.Namespace, redact: Callable[[str], str]) -> int:
    from clara_core.errors import ClaraError, ConfigError

    from .errors import PgDumpTooOld, RestoreRefused

    def say(text: str, *, err: bool = False) -> None:
        print(redact(text), file=sys.stderr if err else sys.stdout, flush=True)

    action = args.backup_action or "run"
    try:
        backups = make_backups(settings)
        if action == "list":
            return await _list(backups, say)
        if action == "restore":
            return await _restore(settings, backups, args, say)
        force = getattr(args, "force", False) or settings.force_backup  # bare `backup` = run
        return await _run(settings, backups, force=force, say=say)
    except RestoreRefused as exc:
        say(f"restore refused: {exc}", err=True)
        return EXIT_REFUSED
    except PgDumpTooOld as exc:
        say(f"backup {action} refused: {exc}", err=True)
        return EXIT_REFUSED
    except ConfigError as exc:
        say(exc.render(), err=True)
        return EXIT_REFUSED
    except ClaraError as exc:
        log.debug("backup %s failed", action, exc_info=True)
        say(f"backup {action} failed: {exc}", err=True)
        return EXIT_FAILURE


async def _list(backups: Backups, say: Callable[..., None]) -> int:
    from storage.local_files import human_size

    from .names import human_age

    entries = await backups.list()
    if not entries:
        say(f"no backups in {backups.store.description}")
        return EXIT_OK
    now = backups.clock()
    say(f"{len(entries)} backup(s) in {backups.store.description}, newest last:")
    for e in entries:
        say(f"  {e.name}  {human_size(e.size):>10}  {human_age(e.age(now)):>8} old")
    return EXIT_OK


class _Database:
    """Clara's database for one command: DATABASE_URL, or the embedded server.

    Embedded: a running Clara's server is reused for a backup (attach), while a
    restore needs Clara stopped (attach=False refuses while she holds the data dir).
    """

    def __init__(self, settings: Settings, *, attach: bool) -> None:
        self.settings = settings
        self.attach = attach
        self.url = ""
        self.engine = None
        self._storage = None

    async def __aenter__(self) -> _Database:
        from storage.db import create_engine

        s = self.settings
        if s.database_url is not None:
            self.url = s.database_url.get_secret_value()
            self.engine = create_engine(self.url, pool_size=1)
            return self
        from storage.services import Storage

        self._storage = await Storage.open(
            s.clara_data_dir,
            redis_url=s.redis_url.get_secret_value() if s.redis_url else None,
            attach=self.attach,
        )
        self.url = self._storage.database_url
        self.engine = self._storage.engine
        return self

    @property
    def where(self) -> str:
        from storage.db import redact_url

        return redact_url(self.url) if self.settings.database_url else "(embedded server)"

    async def __aexit__(self, *exc: object) -> None:
        if self._storage is not None:
            await self._storage.close()
        elif self.engine is not None:
            await self.engine.dispose()


async def _run(
    settings: Settings, backups: Backups, *, force: bool, say: Callable[..., None]
) -> int:
    from storage.local_files import human_size

    async with _Database(settings, attach=True) as db:
        result = await backups.run(db.url, db.engine, force=force)
    if result.skipped:
        say(f"backup skipped: {result.skipped}")
        return EXIT_OK
    assert result.entry is not None
    say(f"backup stored: {result.entry.location} ({human_size(result.entry.size)})")
    for e in result.deleted:
        say(
            f"retention: deleted {e.name} (older than BACKUP_RETENTION_DAYS={settings.backup_retention_days:g})"
        )
    return EXIT_OK


async def _restore(
    settings: Settings, backups: Backups, args: argparse.Namespace, say: Callable[..., None]
) -> int:
    from clara_core.errors import EmbeddedServerError
    from storage.local_files import human_size

    from .errors import RestoreRefused
    from .names import human_age

    entry = await backups.find(args.name)
    try:
        db = _Database(settings, attach=False)
        await db.__aenter__()
    except EmbeddedServerError as exc:
        # A running Clara holds the data directory: restoring under her is refused.
        if "in use by another Clara" in str(exc):
            raise RestoreRefused(str(exc)) from exc
        raise
    try:
        await backups.check_empty(db.engine, db.where)
        summary = (
            f"{entry.name} ({human_size(entry.size)}, {human_age(entry.age(backups.clock()))} old) "
            f"from {backups.store.description} into the database {db.where}"
        )
        if not args.yes:
            if not sys.stdin.isatty():
                raise RestoreRefused(
                    f"restoring {summary} needs confirmation; no terminal to ask on: "
                    "add --yes to confirm"
                )
            answer = await asyncio.to_thread(input, f"Restore {summary}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                say("restore cancelled; nothing changed")
                return EXIT_REFUSED
        say(f"restoring {summary} ...")
        status = await backups.restore(entry, db.url, db.engine)
    finally:
        await db.__aexit__(None, None, None)
    say(f"restored {entry.name}")
    say(f"schema revision: {status.current or '(none)'}; this Clara's head: {status.head}")
    if status.pending:
        say(
            "the backup's schema is older: Clara migrates it at her next start "
            "(or now: python discord_bot.py migrate upgrade)"
        )
    return EXIT_OK
