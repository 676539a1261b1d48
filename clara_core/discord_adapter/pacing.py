"""Pacing of Clara's Discord writes: per channel, and globally with priorities.

Discord allows about 5 message writes per 5 s per channel and 50 requests
per second per bot overall.  Two layers keep Clara under both, so she never
earns a 429 in normal operation (discord.py still honours retry_after if one
comes anyway):

- ``ChannelPacer``: at most one write per DISCORD_EDIT_INTERVAL_SECONDS in a
  channel (default 1.2 s) while replies stream.
- ``GlobalBudget``: at most DISCORD_GLOBAL_REQUESTS_PER_SECOND (45 by
  default, Discord allows 50) requests in any one-second window, shared by
  every channel.  When it is the bottleneck (hundreds of conversations at once),
  waiters are served by priority: a reply's *first* message before further
  edits, and typing indicators last, so people see an answer start quickly.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import IntEnum


class Priority(IntEnum):
    FIRST_MESSAGE = 0  # a reply becoming visible, notices, stop confirmations
    EDIT = 1  # a reply growing
    TYPING = 2
    LOG = 3  # mirrored log lines: only what conversations leave over


class GlobalBudget:
    """At most ``rate`` grants in any ``window`` seconds (a sliding-window log).

    A token bucket would need a small burst to keep every one-second window
    under Discord's 50 (45/s + burst 5): then 20 simultaneous first messages
    trickle out over 300 ms.  The log allows the whole allowance at once and
    then exactly one grant per expiring one, so no window — Discord's fixed
    ones included — ever holds more than ``rate`` requests.
    """

    def __init__(
        self,
        rate: float,
        *,
        window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = max(1, int(rate * window))
        self.window = window
        self.clock = clock
        self._granted: deque[float] = deque()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    async def acquire(self, priority: Priority = Priority.EDIT) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (int(priority), next(self._seq), future))
        self._dispatch()
        await future

    def try_acquire(self, *, headroom: int = 0) -> bool:
        """A grant now, for an optional request: only if nobody waits and ``headroom``
        grants of this window stay free for the requests people are waiting on."""
        now = self.clock()
        while self._granted and self._granted[0] <= now - self.window:
            self._granted.popleft()
        if self._waiters or len(self._granted) + headroom >= self.limit:
            return False
        self._granted.append(now)
        return True

    def _dispatch(self) -> None:
        now = self.clock()
        while self._granted and self._granted[0] <= now - self.window:
            self._granted.popleft()
        while self._waiters and len(self._granted) < self.limit:
            _, _, future = heapq.heappop(self._waiters)
            if future.done():  # cancelled while waiting
                continue
            self._granted.append(now)
            future.set_result(None)
        if self._waiters and self._timer is None:
            delay = max(0.001, self._granted[0] + self.window - now)
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()


class ChannelPacer:
    def __init__(
        self,
        interval: float,
        *,
        budget: GlobalBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.budget = budget
        self.clock = clock
        self._next: dict[int, float] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    @asynccontextmanager
    async def slot(
        self, channel_id: int, priority: Priority = Priority.EDIT
    ) -> AsyncIterator[None]:
        """Wait for the channel's next write slot (and a global token), then write."""
        lock = self._locks.setdefault(channel_id, asyncio.Lock())
        async with lock:
            wait = self._next.get(channel_id, 0.0) - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            if self.budget is not None:
                await self.budget.acquire(priority)
            try:
                yield
            finally:
                self._next[channel_id] = self.clock() + self.interval
