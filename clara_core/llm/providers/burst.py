"""Spread request starts over event-loop iterations.

Opening a connection (socket, connect, first write) is a few hundred
microseconds of synchronous work.  When hundreds of turns start in the same
instant — a cold connection pool after start-up — every one of them does it
in the *same* loop iteration, and measured here that one iteration took
~190 ms: every other conversation's stream stalls for that long.  The gate
admits at most ``per_tick`` request starts per iteration; the rest start in
the following iterations, microseconds later, so no single iteration carries
the whole burst.  In normal traffic (fewer starts than ``per_tick`` at once)
it never waits.
"""

from __future__ import annotations

import asyncio
from collections import deque

PER_TICK = 4


class BurstGate:
    def __init__(self, per_tick: int = PER_TICK) -> None:
        self.per_tick = per_tick
        self._loop: asyncio.AbstractEventLoop | None = None
        self._admitted = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._scheduled = False

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (tests, a restart): forget the old state
            self._loop = loop
            self._admitted = 0
            self._waiters.clear()
            self._scheduled = False
        return loop

    async def wait(self) -> None:
        loop = self._bind()
        if self._admitted < self.per_tick and not self._waiters:
            self._admitted += 1
            self._schedule(loop)
            return
        future: asyncio.Future[None] = loop.create_future()
        self._waiters.append(future)
        self._schedule(loop)
        await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._tick)  # runs in the next iteration

    def _tick(self) -> None:
        self._scheduled = False
        self._admitted = 0
        while self._waiters and self._admitted < self.per_tick:
            future = self._waiters.popleft()
            if not future.done():  # skip the cancelled
                future.set_result(None)
                self._admitted += 1
        if self._waiters and self._loop is not None:
            self._schedule(self._loop)


#: Shared by every provider: the burst is the process's, whichever endpoint it hits.
REQUEST_GATE = BurstGate()
