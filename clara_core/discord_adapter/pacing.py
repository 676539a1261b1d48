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

Several processes on one bot token share one budget when given a
``SharedBudgetPort`` (storage/rate_budget.py, Redis): each grant is then a
place in the shared window, while priorities stay local (this process's queue
decides who asks next).  When the port fails or is slow, the process falls back
to its share of the budget (limit / N, N the processes on the token seen
recently) until the port answers again.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from enum import IntEnum
from types import SimpleNamespace
from typing import Any, Protocol

import aiohttp

log = logging.getLogger(__name__)

#: How long a shared place may stay in flight before the other processes take it
#: for lost (its holder crashed).  Longer than any request of Clara's takes.
SHARED_LEASE_SECONDS = 15.0
#: How often a process says it is alive on the shared budget; N for the fallback
#: counts the processes seen within HEARTBEAT_TTL.
HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_TTL = 5.0


class SharedBudgetPort(Protocol):
    """Where processes on one bot token keep their shared budget (storage.rate_budget).

    Each call may raise (Redis down) or time out: the budget falls back then."""

    def new_token(self) -> str: ...

    async def try_acquire(
        self, key: str, token: str, *, limit: int, window_ms: int, lease_ms: int
    ) -> tuple[bool, int]: ...

    async def release(self, key: str, token: str, *, window_ms: int, age_ms: int = 0) -> None: ...

    async def heartbeat(self, key: str, member: str, *, ttl_ms: int) -> int: ...

    async def route_take(self, key: str, route: str, major: str) -> int: ...

    async def route_seen(
        self,
        key: str,
        route: str,
        major: str,
        *,
        bucket: str | None,
        limit: int = 0,
        remaining: int = 0,
        reset_after_ms: int = 0,
        unlimited: bool = False,
    ) -> None: ...

    async def aclose(self) -> None: ...


#: Path segments that start a route with a major parameter (Discord keys a
#: bucket by its hash and this id).
_MAJOR_ROOTS = frozenset({"channels", "guilds", "webhooks"})
#: The longest a request waits for a shared route bucket before going anyway
#: (discord.py still honours a 429 if the shared state was wrong).
ROUTE_WAIT_CAP_S = 60.0


def route_of(method: str, url: Any) -> tuple[str, str] | None:
    """``("POST channels/{major}/messages", "123")`` for a REST request to
    ``…/api/v10/channels/123/messages``; ids other than the major one and reaction
    emoji become placeholders, so every request in one bucket names one route.
    None for what is not the REST API (CDN downloads)."""
    parts = [p for p in str(getattr(url, "path", url)).split("/") if p]
    for i, part in enumerate(parts):
        if part == "api":
            parts = parts[i + 2 :] if i + 1 < len(parts) and parts[i + 1][:1] == "v" else []
            break
    else:
        return None
    if not parts:
        return None
    major = ""
    shape: list[str] = []
    for i, part in enumerate(parts):
        if i == 1 and parts[0] in _MAJOR_ROOTS and part.isdigit():
            major = part
            shape.append("{major}")
        elif part.isdigit():
            shape.append("{id}")
        elif i > 0 and parts[i - 1] == "reactions":
            shape.append("{emoji}")
        else:
            shape.append(part)
    return f"{method.upper()} {'/'.join(shape)}", major


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

    __slots__ = ("_budget", "released", "token")

    def __init__(self, budget: GlobalBudget, token: str | None = None) -> None:
        self._budget = budget
        self.released = False
        #: Its place in the shared budget (None: a local-only budget).
        self.token = token

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._budget._release(self)


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
        shared: SharedBudgetPort | None = None,
        key: str = "",
        processes_hint: int = 1,
        lease: float = SHARED_LEASE_SECONDS,
    ) -> None:
        self.limit = max(1, int(rate * window))
        self.window = window
        self.clock = clock
        self._inflight = 0
        self._finished: deque[float] = deque()  # response times, oldest first
        self._waiters: list[tuple[int, int, asyncio.Future[Grant]]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        # The shared budget, if any (see the module docstring).
        self._shared = shared
        self._key = key
        self._lease = lease
        #: Clara processes on this bot token: from the heartbeats while the shared
        #: budget answers, else the hint (DISCORD_SHARD_COUNT / this process's shards).
        self.processes = max(1, processes_hint)
        #: True while the shared budget doesn't answer and this process paces
        #: itself at its share.
        self.fallback = False
        self._member = uuid.uuid4().hex
        self._pump_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        #: Places answered while the shared budget could not be told: (token, when),
        #: handed over when it answers again so its window still counts them.
        self._unreported: deque[tuple[str, float]] = deque()
        #: When this process last came back to the shared budget (see _shared_limit).
        self._recovered_at: float | None = None
        self._processes_before = 1  # the count when Redis went away

    @property
    def shared(self) -> bool:
        """Whether grants come from the shared budget right now."""
        return self._shared is not None and not self.fallback

    @property
    def local_limit(self) -> int:
        """What this process may use on its own: all of it, or its share in a fallback."""
        if self._shared is not None and self.fallback:
            return max(1, self.limit // self.processes)
        return self.limit

    @property
    def in_use(self) -> int:
        """Grants that count now: in flight, or answered within the last window."""
        self._expire(self.clock())
        return self._inflight + len(self._finished)

    async def acquire(self, priority: Priority = Priority.EDIT) -> Grant:
        """Wait for a grant; the caller must ``release()`` it when the response came."""
        future: asyncio.Future[Grant] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (int(priority), next(self._seq), future))
        if self._shared is not None and self._heartbeat_task is None:
            self._heartbeat_task = asyncio.create_task(self._heartbeat_loop())
        self._dispatch()
        try:
            return await future
        except asyncio.CancelledError:
            # Granted just as we were cancelled: give the place back at once.
            if future.done() and not future.cancelled():
                grant = future.result()
                grant.released = True
                self._inflight -= 1
                if grant.token is not None:
                    self._forget_remote(grant.token)
                self._dispatch()
            raise

    def has_room(self, *, headroom: int = 0) -> bool:
        """For an optional request: is the budget free enough to spend on it now?

        True only if nobody waits and ``headroom`` places of the window stay free
        for the requests people are waiting on.  (The request itself still passes
        the budget when it is sent.)"""
        return not self._waiters and self.in_use + headroom < self.local_limit

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
                ctx.route = route_of(params.method, params.url) if self.shared else None
                if ctx.route is not None:
                    # The route's bucket first: a place in the global window is
                    # not held while waiting for it.
                    await self._wait_for_route(*ctx.route)
                ctx.grant = await self.acquire(_priority.get())

        async def on_end(
            _session: aiohttp.ClientSession,
            ctx: SimpleNamespace,
            params: aiohttp.TraceRequestEndParams,
        ) -> None:
            route = getattr(ctx, "route", None)
            if route is not None and self.shared:
                self._note_route(route, params.response.status, params.response.headers)
            await on_done(_session, ctx, params)

        async def on_done(_session: aiohttp.ClientSession, ctx: SimpleNamespace, _: Any) -> None:
            grant: Grant | None = getattr(ctx, "grant", None)
            if grant is not None:
                grant.release()

        trace.on_request_start.append(on_start)
        trace.on_request_end.append(on_end)
        trace.on_request_exception.append(on_done)
        return trace

    async def aclose(self) -> None:
        """Stop talking to the shared budget (the places still held expire there)."""
        for task in (self._pump_task, self._heartbeat_task):
            if task is not None:
                task.cancel()
        # Let the last releases reach Redis (else their places stay taken there
        # until their lease ends), but don't hold the shutdown up for a slow Redis.
        if self._background:
            _, pending = await asyncio.wait(set(self._background), timeout=0.5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._shared is not None:
            await self._shared.aclose()

    def _release(self, grant: Grant) -> None:
        self._inflight -= 1
        now = self.clock()
        self._expire(now)
        self._finished.append(now)
        if self._shared is not None:
            token = grant.token or self._shared.new_token()
            if self.fallback:
                self._unreported.append((token, now))
                # A long outage must not grow this without bound: older ones
                # have left the window (and their lease) anyway.
                keep = max(self.window, self._lease)
                while self._unreported and self._unreported[0][1] < now - keep:
                    self._unreported.popleft()
            else:
                self._spawn(self._report(token, now))
        self._dispatch()

    def _expire(self, now: float) -> None:
        while self._finished and self._finished[0] <= now - self.window:
            self._finished.popleft()

    def _dispatch(self) -> None:
        if self.shared:
            # Each place is asked of the shared budget, one at a time, in priority order.
            if self._waiters and self._pump_task is None:
                self._pump_task = asyncio.get_running_loop().create_task(self._pump())
            return
        now = self.clock()
        self._expire(now)
        while self._waiters and self._inflight + len(self._finished) < self.local_limit:
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

    # -- the shared budget --------------------------------------------------

    def _drop_cancelled(self) -> None:
        while self._waiters and self._waiters[0][2].done():
            heapq.heappop(self._waiters)

    async def _pump(self) -> None:
        """Ask the shared budget for a place for the most urgent waiter, until none wait."""
        assert self._shared is not None
        try:
            while self.shared:
                self._drop_cancelled()
                if not self._waiters:
                    return
                token = self._shared.new_token()
                try:
                    granted, retry_ms = await self._shared.try_acquire(
                        self._key,
                        token,
                        limit=self._shared_limit(),
                        window_ms=int(self.window * 1000),
                        lease_ms=int(self._lease * 1000),
                    )
                except Exception as exc:  # any failure means: go local
                    self._enter_fallback(exc)
                    break
                if not granted:
                    await asyncio.sleep(retry_ms / 1000)
                    continue
                self._drop_cancelled()
                if not self._waiters:  # the waiter gave up meanwhile
                    self._forget_remote(token)
                    return
                _, _, future = heapq.heappop(self._waiters)
                self._inflight += 1
                future.set_result(Grant(self, token))
        finally:
            self._pump_task = None
        # Fell back: the local budget serves whoever still waits.
        self._dispatch()

    def _shared_limit(self) -> int:
        """What to ask the shared budget for: all of it, except just after coming back.

        The other processes notice Redis is back at their own next heartbeat and only
        then hand over the places they took on their own; until those have left the
        window, leave room for the others' shares."""
        if self._recovered_at is not None:
            if self.clock() - self._recovered_at < 2 * HEARTBEAT_INTERVAL + self.window:
                # A restarted Redis may have lost the heartbeats: count as before.
                processes = max(self.processes, self._processes_before)
                share = self.limit // processes
                return max(1, self.limit - (processes - 1) * share)
            self._recovered_at = None
        return self.limit

    async def _heartbeat_loop(self) -> None:
        """Count the processes on this token, and notice when the shared budget is back."""
        assert self._shared is not None
        while True:
            try:
                self.processes = max(
                    1,
                    await self._shared.heartbeat(
                        self._key, self._member, ttl_ms=int(HEARTBEAT_TTL * 1000)
                    ),
                )
                if self.fallback:
                    await self._hand_over_unreported()
                    self.fallback = False
                    self._recovered_at = self.clock()
                    log.info("The shared Discord request budget answers again; using it.")
                    self._dispatch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure means: go local
                self._enter_fallback(exc)
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    async def _hand_over_unreported(self) -> None:
        """Tell the shared budget about the places answered while it was away, with
        their age, so the processes asking it now still count them."""
        assert self._shared is not None
        window_ms = int(self.window * 1000)
        while self._unreported:
            token, at = self._unreported[0]
            age_ms = int((self.clock() - at) * 1000)
            # Older than a lease: expired there, and out of the window anyway.
            if age_ms < max(window_ms, int(self._lease * 1000)):
                await self._shared.release(self._key, token, window_ms=window_ms, age_ms=age_ms)
            self._unreported.popleft()

    async def _report(self, token: str, at: float) -> None:
        assert self._shared is not None
        try:
            await self._shared.release(self._key, token, window_ms=int(self.window * 1000))
        except Exception as exc:  # any failure means: go local
            self._unreported.append((token, at))
            self._enter_fallback(exc)

    def _forget_remote(self, token: str) -> None:
        """Give back a shared place no request was sent on (counts for no time)."""
        assert self._shared is not None
        window_ms = int(self.window * 1000)

        async def forget() -> None:
            assert self._shared is not None
            try:
                await self._shared.release(self._key, token, window_ms=window_ms, age_ms=window_ms)
            except Exception:  # its lease frees it anyway
                log.debug("could not give back an unused shared place", exc_info=True)

        self._spawn(forget())

    # -- per-route buckets, shared (the X-RateLimit-* headers) ---------------

    async def _wait_for_route(self, route: str, major: str) -> None:
        """Take a place in the route's shared bucket, waiting for its reset if the
        processes on this token used it up.  discord.py keeps its own per-process
        buckets as well; this stops N processes from each spending the whole one
        (several shards mirroring logs into one channel, proactive messages)."""
        assert self._shared is not None
        waited = 0.0
        while self.shared and waited < ROUTE_WAIT_CAP_S:
            try:
                wait_ms = await self._shared.route_take(self._key, route, major)
            except Exception as exc:  # any failure means: go local
                self._enter_fallback(exc)
                return
            if wait_ms <= 0:
                return
            pause = min(wait_ms / 1000, ROUTE_WAIT_CAP_S - waited)
            waited += pause
            await asyncio.sleep(pause)

    def _note_route(self, route: tuple[str, str], status: int, headers: Any) -> None:
        bucket = headers.get("X-RateLimit-Bucket") or None
        limit = remaining = reset_after_ms = 0
        try:
            if bucket is not None:
                limit = int(headers["X-RateLimit-Limit"])
                remaining = int(headers["X-RateLimit-Remaining"])
                reset_after_ms = int(float(headers["X-RateLimit-Reset-After"]) * 1000)
        except (KeyError, ValueError):
            bucket = None  # unreadable: as if the route had none
        shared = self._shared
        assert shared is not None

        async def note() -> None:
            try:
                await shared.route_seen(
                    self._key,
                    *route,
                    bucket=bucket,
                    limit=limit,
                    remaining=remaining,
                    reset_after_ms=reset_after_ms,
                    unlimited=bucket is None and status < 300,
                )
            except Exception as exc:  # any failure means: go local
                self._enter_fallback(exc)

        self._spawn(note())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _enter_fallback(self, exc: BaseException) -> None:
        if not self.fallback:
            self.fallback = True
            self._processes_before = self.processes
            # The other processes may have spent the whole window just before:
            # count this process's whole share as answered now, so its first own
            # place comes a window later.
            now = self.clock()
            self._expire(now)
            self._finished.extend([now] * self.local_limit)
            log.warning(
                "The shared Discord request budget (Redis) does not answer (%s); this process "
                "paces itself at %d of %d requests per %g s (%d processes on this bot token) "
                "until it does.",
                type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}",
                self.local_limit,
                self.limit,
                self.window,
                self.processes,
            )
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
