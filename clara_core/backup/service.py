"""Run, list and restore backups: the policy (respawn protection, retention, retries).

Blocking work (boto3, file system) runs in a worker thread and pg_dump/pg_restore
as child processes, so the same code serves the CLI and a scheduled job inside
the running bot without blocking its event loop.  The clock is injected: the
respawn window and retention are decided by the time, and tests pin it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from storage import backup_checks, migrations

from .errors import BackupError, PgDumpTooOld, RestoreRefused
from .names import BackupEntry, backup_name, expired, human_age, newest, parse_name
from .pgtools import PgTools, pg_target
from .stores import PARTIAL_SUFFIX, BackupStore

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from storage.migrations import MigrationStatus

log = logging.getLogger(__name__)

T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetryPolicy:
    """DB_RETRY_ATTEMPTS tries, DB_RETRY_DELAY before the second, doubling after."""

    attempts: int = 5
    delay: float = 2.0

    def delays(self) -> list[float]:
        return [self.delay * 2**i for i in range(self.attempts - 1)]


@dataclass
class RunResult:
    entry: BackupEntry | None = None
    skipped: str | None = None  # why no backup was made (respawn protection)
    deleted: list[BackupEntry] = field(default_factory=list)


class Backups:
    def __init__(
        self,
        store: BackupStore,
        tools: PgTools,
        *,
        scratch_dir: Path,
        retry: RetryPolicy,
        retention_days: float,
        protection_hours: float,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.tools = tools
        self.scratch_dir = scratch_dir
        self.retry = retry
        self.retention_days = retention_days
        self.protection_hours = protection_hours
        self.clock = clock
        self.sleep = sleep

    async def _retrying(self, what: str, step: Callable[[], Awaitable[T]]) -> T:
        """Run ``step``; on an outage try again (RetryPolicy); say how often it failed."""
        delays = self.retry.delays()
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return await step()
            except backup_checks.DatabaseRefused as exc:
                raise BackupError(str(exc)) from exc
            except backup_checks.DatabaseUnreachable as exc:
                error = BackupError(str(exc), transient=True)
                cause: BaseException = exc
            except BackupError as exc:
                if not exc.transient:
                    raise
                error, cause = exc, exc
            if attempt == self.retry.attempts:
                raise BackupError(
                    f"{what} failed after {attempt} tries: {error}. Check that the server "
                    "is up and reachable, then run the backup again"
                ) from cause
            wait = delays[attempt - 1]
            log.warning(
                "%s failed (try %d of %d), retrying in %.1fs: %s",
                what,
                attempt,
                self.retry.attempts,
                wait,
                error,
            )
            await self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def list(self) -> list[BackupEntry]:
        return await self._retrying("listing backups", lambda: asyncio.to_thread(self.store.list))

    async def run(self, database_url: str, engine: AsyncEngine, *, force: bool) -> RunResult:
        """One backup: skip inside the respawn window, dump, store, apply retention."""
        now = self.clock()
        existing = await self.list()
        latest = newest(existing)
        if latest is not None and not force and self.protection_hours > 0:
            age = latest.age(now)
            if age < timedelta(hours=self.protection_hours):
                return RunResult(
                    skipped=(
                        f"the newest backup {latest.name} is {human_age(age)} old, younger than "
                        f"RESPAWN_PROTECTION_HOURS={self.protection_hours:g}; use --force "
                        "(or FORCE_BACKUP=true) to back up anyway"
                    )
                )
        await self._check_versions(engine)
        name = backup_name(now)
        taken = {e.name for e in existing}
        while name in taken:  # two forced runs within one second
            now += timedelta(seconds=1)
            name = backup_name(now)
        entry = await self._dump_and_store(database_url, name)
        result = RunResult(entry=entry)
        try:
            # The listing from the start of the run plus the backup just made: listing
            # the store again (a paginated S3 listing) would tell nothing new.
            result.deleted = await self._apply_retention([*existing, entry], now)
        except BackupError as exc:
            # Still a failure (old backups pile up), but the operator must know this
            # run's backup exists.
            raise BackupError(
                f"the backup {entry.location} is stored, but deleting old ones failed: {exc}"
            ) from exc
        return result

    async def _check_versions(self, engine: AsyncEngine) -> None:
        server = await self._retrying(
            "connecting to the database", lambda: backup_checks.server_version_num(engine)
        )
        server_major = server // 10000
        tools_major = await self.tools.major_version()
        if server_major > tools_major:
            raise PgDumpTooOld(
                f"the database server is PostgreSQL {server_major}, newer than the pg_dump "
                f"{tools_major} in {self.tools.bin_dir}, which cannot dump it. Install "
                f"PostgreSQL {server_major}'s client tools and set BACKUP_PG_BIN_DIR to their "
                f"bin directory (e.g. /usr/lib/postgresql/{server_major}/bin)"
            )

    async def _dump_and_store(self, database_url: str, name: str) -> BackupEntry:
        target = pg_target(database_url)
        await asyncio.to_thread(self.scratch_dir.mkdir, parents=True, exist_ok=True, mode=0o700)
        partial = self.scratch_dir / f"{name}.{os.getpid()}{PARTIAL_SUFFIX}"
        try:

            async def dump() -> None:
                await self.tools.dump(target, partial)
                # pg_dump creates it with the umask; it holds every user's data.
                await asyncio.to_thread(os.chmod, partial, 0o600)

            await self._retrying("pg_dump", dump)
            return await self._retrying(
                "storing the backup", lambda: asyncio.to_thread(self.store.put, partial, name)
            )
        finally:
            await asyncio.to_thread(partial.unlink, True)

    async def _apply_retention(
        self, entries: list[BackupEntry], now: datetime
    ) -> list[BackupEntry]:
        doomed = expired(entries, now, self.retention_days)
        for entry in doomed:
            await self._retrying(
                f"deleting {entry.name}",
                lambda e=entry: asyncio.to_thread(self.store.delete, e.name),  # type: ignore[misc]
            )
            log.info("retention: deleted %s (made %s)", entry.name, entry.created.isoformat())
        return doomed

    async def find(self, name: str) -> BackupEntry:
        """The backup called ``name`` (or the newest for ``latest``)."""
        entries = await self.list()
        if name == "latest":
            found = newest(entries)
            if found is None:
                raise RestoreRefused(f"there are no backups in {self.store.description}")
            return found
        if parse_name(name) is None:
            raise RestoreRefused(
                f"{name!r} is not a backup name (clara_YYYYMMDD_HHMMSS.dump); "
                "`python discord_bot.py backup list` shows them"
            )
        for entry in entries:
            if entry.name == name:
                return entry
        raise RestoreRefused(
            f"no backup {name} in {self.store.description}; "
            "`python discord_bot.py backup list` shows them"
        )

    async def check_empty(self, engine: AsyncEngine, where: str) -> None:
        """Refuse to restore over data: a restore replaces, and nobody asked to lose that."""
        tables = await self._retrying(
            "connecting to the database", lambda: backup_checks.tables_with_data(engine)
        )
        if tables:
            shown = ", ".join(tables[:5]) + (
                f" and {len(tables) - 5} more" if len(tables) > 5 else ""
            )
            raise RestoreRefused(
                f"the database {where} is not empty ({len(tables)} tables hold data: {shown}). "
                "Restore only goes into an empty database. To replace its contents, stop Clara, "
                "back it up (`backup run --force`), then empty it: with the embedded server, move "
                "CLARA_DATA_DIR/postgres away (it is recreated empty); with DATABASE_URL, "
                "DROP DATABASE and CREATE DATABASE it again. Then run the restore again"
            )

    async def restore(
        self, entry: BackupEntry, database_url: str, engine: AsyncEngine
    ) -> MigrationStatus:
        """pg_restore ``entry`` into the (checked empty) database, then read its revision."""
        target = pg_target(database_url)
        await asyncio.to_thread(self.scratch_dir.mkdir, parents=True, exist_ok=True, mode=0o700)
        download = self.scratch_dir / f"{entry.name}.{os.getpid()}.download"
        try:
            local = await self._retrying(
                "fetching the backup",
                lambda: asyncio.to_thread(self.store.fetch, entry.name, download),
            )
            await self._retrying("pg_restore", lambda: self.tools.restore(target, local))
        finally:
            await asyncio.to_thread(download.unlink, True)
        try:
            return await migrations.status(engine)
        except Exception as exc:  # alembic raises plain errors for a revision it doesn't know
            raise BackupError(
                f"the backup {entry.name} is restored, but its schema revision is unknown to "
                f"this Clara ({exc}); it was made by a newer Clara: run that version"
            ) from exc
