"""A controllable clock for anything with idle times, TTLs or schedules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float = 0, *, seconds: float = 0) -> None:
        self.now += timedelta(minutes=minutes, seconds=seconds)
