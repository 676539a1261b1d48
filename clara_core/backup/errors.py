"""The backup command's errors: each says what the operator can do."""

from __future__ import annotations

from clara_core.errors import ClaraError


class BackupError(ClaraError):
    """A backup step failed.  ``transient``: an outage a later try may get past."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class RestoreRefused(BackupError):
    """Restore will not run as asked (data in the database, no confirmation): exit 2."""


class PgDumpTooOld(BackupError):
    """The database server is newer than the pg_dump configured, which would refuse
    to dump it: a setting to change (BACKUP_PG_BIN_DIR), not an outage: exit 2."""
