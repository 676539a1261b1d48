"""Backup names: ``clara_YYYYMMDD_HHMMSS.dump`` (UTC), the seed service's scheme with pg_dump's
custom format instead of gzipped SQL.

A backup's age is the time in its name, not a file's mtime or an object's
LastModified: copying a backup (rsync, a bucket migration) resets those, and
retention must not then delete a fresh-looking old backup or keep a stale one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

NAME_RE = re.compile(r"^clara_(\d{8}_\d{6})\.dump$")
_STAMP = "%Y%m%d_%H%M%S"


def backup_name(at: datetime) -> str:
    return f"clara_{at.astimezone(UTC).strftime(_STAMP)}.dump"


def parse_name(name: str) -> datetime | None:
    """When the backup called ``name`` was made; None for anything that is not Clara's."""
    m = NAME_RE.match(name)
    if m is None:
        return None
    try:
        return datetime.strptime(m.group(1), _STAMP).replace(tzinfo=UTC)
    except ValueError:  # clara_20261399_... matches the pattern but is no date
        return None


@dataclass(frozen=True)
class BackupEntry:
    name: str
    created: datetime
    size: int
    location: str  # a path or s3://bucket/key, for the operator

    def age(self, now: datetime) -> timedelta:
        return now - self.created


def human_age(age: timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def newest(entries: list[BackupEntry]) -> BackupEntry | None:
    return max(entries, key=lambda e: e.created, default=None)


def expired(entries: list[BackupEntry], now: datetime, keep_days: float) -> list[BackupEntry]:
    """The backups retention deletes: older than ``keep_days``, never the newest one."""
    latest = newest(entries)
    cutoff = now - timedelta(days=keep_days)
    return [e for e in entries if e.created < cutoff and e is not latest]
