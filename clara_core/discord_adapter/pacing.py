"""Per-channel pacing of message writes (sends and edits).

Discord allows about 5 message writes per 5 s per channel.  Streaming edits
are paced below that (DISCORD_EDIT_INTERVAL_SECONDS, default 1.2 s) so Clara
never earns a 429 in normal operation; discord.py still honours retry_after
if one comes anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager


class ChannelPacer:
    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._next: dict[int, float] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    @asynccontextmanager
    async def slot(self, channel_id: int) -> AsyncIterator[None]:
        """Wait for the channel's next write slot, then hold it while writing."""
        lock = self._locks.setdefault(channel_id, asyncio.Lock())
        async with lock:
            wait = self._next.get(channel_id, 0.0) - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._next[channel_id] = self.clock() + self.interval

    def forget(self, channel_id: int) -> None:
        lock = self._locks.get(channel_id)
        if lock is not None and not lock.locked():
            self._locks.pop(channel_id, None)
            self._next.pop(channel_id, None)
