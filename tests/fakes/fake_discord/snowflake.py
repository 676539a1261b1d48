"""Discord snowflake ids.

A snowflake is ``(ms since 2015-01-01) << 22 | worker << 17 | process << 12 | increment``.
discord.py derives ``created_at`` from it and picks the message-delete sub-rate-limit
from the message's age, so fake ids must carry real timestamps.
"""

from __future__ import annotations

import datetime
import time

DISCORD_EPOCH_MS = 1_420_070_400_000


class SnowflakeGenerator:
    """Strictly increasing snowflakes stamped with the current wall-clock time."""

    def __init__(self, worker_id: int = 1, process_id: int = 0) -> None:
        self._worker = worker_id & 0x1F
        self._process = process_id & 0x1F
        self._last_ms = 0
        self._increment = 0

    def next(self) -> int:
        now_ms = int(time.time() * 1000)
        if now_ms <= self._last_ms:
            # Same (or an earlier, if the clock stepped back) millisecond: keep ids monotonic.
            now_ms = self._last_ms
            self._increment += 1
            if self._increment > 0xFFF:
                now_ms += 1
                self._increment = 0
        else:
            self._increment = 0
        self._last_ms = now_ms
        return (
            ((now_ms - DISCORD_EPOCH_MS) << 22)
            | (self._worker << 17)
            | (self._process << 12)
            | self._increment
        )


def snowflake_time(snowflake: int) -> datetime.datetime:
    """The UTC creation time encoded in ``snowflake``."""
    ms = (snowflake >> 22) + DISCORD_EPOCH_MS
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)


def iso_timestamp(when: datetime.datetime | None = None) -> str:
    """An ISO-8601 timestamp in the form Discord sends (``+00:00`` offset)."""
    return (when or datetime.datetime.now(datetime.UTC)).isoformat()
