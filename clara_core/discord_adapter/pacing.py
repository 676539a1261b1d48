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

The budget sits where every request leaves: an aiohttp trace hook on the
client's HTTP session (discord.py's documented ``http_trace`` option), so the
requests discord.py sends on its own — its retries after a 429 or a 5xx — pass
it too.  Callers only say how urgent their request is (:func:`request_priority`, or
``ChannelPacer.slot``).
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from enum import IntEnum
from types import SimpleNamespace
from typing import Any

import aiohttp


class Priority(IntEnum):
    FIRST_MESSAGE = 0  # a reply becoming visible, notices, stop confirmations
    EDIT = 1  # a reply growing
    TYPING = 2
    LOG = 3  # mirrored log lines: only what conversations leave over


#: How urgent the requests made in this context are.  Unset: someone waits on the
#: request (a command's answer, a reply chain being read), so it goes first.
_priority: contextvars.ContextVar[Priority] = contextvars.ContextVar(
    "discord_request_priority", default=Priority.FIRST_MESSAGE
)


@contextmanager
def request_priority(level: Priority) -> Iterator[None]:
    """Requests sent inside this block wait for the global budget at ``level``."""
    token = _priority.set(level)
    try:
        yield
    finally:
        _priority.reset(token)


class Grant:
    """One request's place in the budget, held until its response has arrived."""

    __slots__ = ("_budget", "released")

    def __init__(self, budget: GlobalBudget) -> None:
        self._budget = budget
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._budget._release()


class GlobalBudget:
    """At most ``limit`` requests in any ``window`` seconds *as the server counts them*.

    Discord counts a request when it arrives, which is some time after we let it
    go and before its response comes back.  So a grant occupies the budget from
    the moment it is given until ``window`` seconds after the response arrived:
    however the latency of each request falls, every ``window`` on the server's
    clock then holds at most ``limit`` arrivals.  (Counting from the grant, as a
    plain sliding log does, lets a burst that left slowly and a burst that left
    quickly one window later land in the same server window.)

    The whole allowance may go out at once, so 20 simultaneous first messages
    don't trickle out; after that, one grant per expiring one.
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
        self._inflight = 0
        self._finished: deque[float] = deque()  # response times, oldest first
        self._waiters: list[tuple[int, int, asyncio.Future[Grant]]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def in_use(self) -> int:
        """Grants that count now: in flight, or answered within the last window."""
        self._expire(self.clock())
        return self._inflight + len(self._finished)

    async def acquire(self, priority: Priority = Priority.EDIT) -> Grant:
        """Wait for a grant; the caller must ``release()`` it when the response came."""
        future: asyncio.Future[Grant] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (int(priority), next(self._seq), future))
        self._dispatch()
        try:
            return await future
        except asyncio.CancelledError:
            # Granted just as we were cancelled: give the place back at once.
            if future.done() and not future.cancelled():
                grant = future.result()
                grant.released = True
                self._inflight -= 1
                self._dispatch()
            raise

    def has_room(self, *, headroom: int = 0) -> bool:
        """For an optional request: is the budget free enough to spend on it now?

        True only if nobody waits and ``headroom`` places of the window stay free
        for the requests people are waiting on.  (The request itself still passes
        the budget when it is sent.)"""
        return not self._waiters and self.in_use + headroom < self.limit

    def trace_config(self) -> aiohttp.TraceConfig:
        """An aiohttp trace that puts every request the bot token signs through the budget.

        Pass it to the client as ``http_trace``.  Interaction callbacks and webhook
        calls carry no bot token and don't count against Discord's global limit;
        the gateway handshake and CDN downloads neither."""
        trace = aiohttp.TraceConfig()

        async def on_start(
            _session: aiohttp.ClientSession,
            ctx: SimpleNamespace,
            params: aiohttp.TraceRequestStartParams,
        ) -> None:
            if params.headers.get("Authorization", "").startswith("Bot "):
                ctx.grant = await self.acquire(_priority.get())

        async def on_done(_session: aiohttp.ClientSession, ctx: SimpleNamespace, _: Any) -> None:
            grant: Grant | None = getattr(ctx, "grant", None)
            if grant is not None:
                grant.release()

        trace.on_request_start.append(on_start)
        trace.on_request_end.append(on_done)
        trace.on_request_exception.append(on_done)
        return trace

    def _release(self) -> None:
        self._inflight -= 1
        self._finished.append(self.clock())
        self._dispatch()

    def _expire(self, now: float) -> None:
        while self._finished and self._finished[0] <= now - self.window:
            self._finished.popleft()

    def _dispatch(self) -> None:
        now = self.clock()
        self._expire(now)
        while self._waiters and self._inflight + len(self._finished) < self.limit:
            _, _, future = heapq.heappop(self._waiters)
            if future.done():  # cancelled while waiting
                continue
            self._inflight += 1
            future.set_result(Grant(self))
        # Drop cancelled waiters at the top so an idle budget keeps no timer.
        while self._waiters and self._waiters[0][2].done():
            heapq.heappop(self._waiters)
        if self._waiters and self._timer is None and self._finished:
            # Otherwise every place is in flight, and the next release dispatches.
            delay = max(0.001, self._finished[0] + self.window - now)
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()


class ChannelPacer:
    """Spaces the writes of each channel.  ``budget`` is the global budget the
    client's requests pass (through its trace, not here); kept for callers that
    need to know how busy Discord's global limit is."""

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
        """Wait for the channel's next write slot, then write at ``priority``
        (the request waits for the global budget, if any, when it is sent)."""
        lock = self._locks.setdefault(channel_id, asyncio.Lock())
        async with lock:
            wait = self._next.get(channel_id, 0.0) - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                with request_priority(priority):
                    yield
            finally:
                self._next[channel_id] = self.clock() + self.interval
