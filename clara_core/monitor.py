"""The monitor: the operator's dashboard (DISCORD_MONITOR_ENABLED/PORT/HOST/TOKEN).

GET /health -> 200 {"status": "ok", ...} while Clara is connected to Discord and her
               storage answers, 503 {"status": "unhealthy", ...} otherwise (the body
               says which part is down); Docker's HEALTHCHECK uses it, so it never
               needs the token,
GET /status -> JSON snapshot (uptime, connection, queue, recent turns, MCP, mood, ...),
GET /events -> the same snapshot as server-sent events (the live page's feed),
GET /       -> the dashboard page (clara_core/dashboard/), /static/ its local files,
POST /actions/<name> -> an operator action (token and CSRF header checked).
It listens on 127.0.0.1 by default: it shows who talked to Clara, which is
nobody else's business unless the operator opens it on purpose (then with a token).
User names are shown as short hashes unless CLARA_MONITOR_SHOW_CONTENT=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

from aiohttp import web

from .errors import ClaraError

log = logging.getLogger(__name__)

#: A storage check slower than this counts as down (a health probe must answer).
STORAGE_CHECK_TIMEOUT_S = 3.0
#: The live charts cover this much time.
SERIES_WINDOW_S = 3600.0
#: However many pages are open and however many turns arrive, the snapshot is
#: built at most this often (the pages' updates are coalesced to it anyway).
REFRESH_S = 0.25
#: Mood levels drift slowly: one chart point this often (while a page is open).
MOOD_SAMPLE_S = 10.0
#: With no page open, the monitor still samples the mood this often, so a page
#: opened later shows the last hour (at most MOOD_POINTS points per channel).
MOOD_BACKGROUND_S = 60.0
#: Bounds on the mood history: points per channel, channels kept (the probe
#: asks for the 20 channels that spoke last).
MOOD_POINTS = 400
MOOD_CHANNELS = 20


@dataclass(frozen=True)
class Activity:
    at: float
    channel: str
    user: str
    model: str
    seconds: float
    ok: bool
    #: The Discord channel id (the mood charts follow these channels); None: unknown.
    channel_id: int | None = None
    #: The tier chosen ("high", "mid", "low", or "base" for the provider's base
    #: model); None: the turn failed before a model was picked.
    tier: str | None = None
    #: Seconds from the start of the turn to its first text; None: no text came.
    ttft_s: float | None = None
    #: The tools called, in order (a name once per call).
    tools: tuple[str, ...] = ()
    #: The calls among them that failed (a name once per failed call).
    failed_tools: tuple[str, ...] = ()


_ACTIVITY_FIELDS = fields(Activity)

#: An operator action: takes the request's parameters, returns what happened.
Action = Callable[[dict[str, str]], Awaitable[str]]


class ActionRefused(ClaraError):
    """An action that cannot be done as asked; the message says why and what to do."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def _after(points: deque[Any], since: float) -> list[Any]:
    """The points of a time-ordered deque later than ``since``, read from the end."""
    out = []
    for point in reversed(points):
        if point[0] <= since:
            break
        out.append(point)
    out.reverse()
    return out


@lru_cache(maxsize=4096)  # the same few users talk again and again: hash each once
def user_tag(name: str) -> str:
    """A stable stand-in for a user name: the operator can tell users apart without
    the page (or a screenshot of it) naming anyone."""
    return "user-" + hashlib.sha256(name.encode()).hexdigest()[:8]


class Monitor:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        state: Callable[[], dict[str, Any]] | None = None,
        storage_check: Callable[[], Awaitable[None]] | None = None,
        probe: Callable[[list[int]], Awaitable[dict[str, Any]]] | None = None,
        token: str | None = None,
        show_content: bool = False,
        actions: dict[str, Action] | None = None,
        history: int = 50,
        interval_s: float = 1.0,
        mood_sample_s: float = MOOD_SAMPLE_S,
        mood_background_s: float = MOOD_BACKGROUND_S,
    ) -> None:
        self.host = host
        self.port = port
        # Cheap, synchronous facts (no I/O): connection, queue, MCP, ORS, ...
        self.state = state or (lambda: {})
        # Facts that need I/O (the mood of the channels given), asked once per tick.
        self.probe = probe
        # Raises (with a redacted reason) when PostgreSQL or Redis does not answer.
        self.storage_check = storage_check
        self.token = token or None
        self.show_content = show_content
        # POST /actions/<name> (restart an MCP server, drain the outbox, ...).
        self.actions: dict[str, Action] = dict(actions or {})
        # Put in the page, asked back on every action: see dashboard.web.action.
        self.csrf = secrets.token_urlsafe(32)
        self.interval_s = interval_s
        self.mood_sample_s = mood_sample_s
        self.mood_background_s = mood_background_s
        self._sampler: asyncio.Task[None] | None = None
        self.started_at = time.time()
        # The same turns as shown on the page, each with its JSON: built once per
        # turn at record(), not once per snapshot (a snapshot is built every tick).
        self._rows: deque[tuple[dict[str, Any], str]] = deque(maxlen=history)
        # The probe's last answer and when it was asked (monotonic): asked at most
        # once per interval, however often turns make the snapshot change.
        self._probed: tuple[float, dict[str, Any]] | None = None
        # (at, seconds, ok) of every turn in the last hour: the latency/error charts.
        self.turns: deque[tuple[float, float, bool]] = deque(maxlen=20_000)
        # (at, tool name, ok) of every tool call in the last hour: the tools table.
        self.tool_calls: deque[tuple[float, str, bool]] = deque(maxlen=20_000)
        # channel id -> deque of (at, levels): the mood charts.
        self.moods: dict[str, deque[tuple[float, dict[str, float]]]] = {}
        self._changed = asyncio.Event()
        # (version, when, (snapshot, its JSON, change key)): see live().
        self._cached: tuple[int, float, tuple[dict[str, Any], str, str]] | None = None
        self._lock = asyncio.Lock()
        self._version = 0
        self._runner: web.AppRunner | None = None
        # Set at stop(): open event streams end, so shutdown does not wait for them.
        self.closing = asyncio.Event()

    # -- what the app tells the monitor -------------------------------------------
    def record(self, activity: Activity) -> None:
        row = self._shown(activity)
        self._rows.append((row, json.dumps(row)))
        self.turns.append((activity.at, round(activity.seconds, 3), activity.ok))
        failed = list(activity.failed_tools)
        for name in activity.tools:
            ok = name not in failed
            if not ok:
                failed.remove(name)
            self.tool_calls.append((activity.at, name, ok))
        self._version += 1
        # Wake every live page now (a new turn shows at once, not at the next tick):
        # each waiter holds the old event, the next wait takes a fresh one.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    @property
    def cached_version(self) -> int:
        """The version the last snapshot from live() holds (-1: none yet)."""
        return self._cached[0] if self._cached is not None else -1

    @property
    def version(self) -> int:
        """Counts the turns recorded: a page that saw this version is up to date."""
        return self._version

    async def changed(self, timeout: float, seen: int | None = None) -> None:
        """Return at the next record() or after ``timeout`` seconds; at once if a turn
        was recorded after version ``seen`` (while the caller was busy elsewhere)."""
        if seen is not None and seen != self._version:
            return
        waits = {
            asyncio.ensure_future(self._changed.wait()),
            asyncio.ensure_future(self.closing.wait()),
        }
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    # -- snapshots ----------------------------------------------------------------
    def _shown(self, a: Activity) -> dict[str, Any]:
        # Shallow (asdict deep-copies every field): this runs once per turn.
        row = {f.name: getattr(a, f.name) for f in _ACTIVITY_FIELDS}
        if not self.show_content:
            row["user"] = user_tag(a.user)
        return row

    def tool_stats(self) -> dict[str, dict[str, int]]:
        """Tool name -> {"calls", "errors"} over the last hour, busiest first."""
        cutoff = time.time() - SERIES_WINDOW_S
        while self.tool_calls and self.tool_calls[0][0] < cutoff:
            self.tool_calls.popleft()
        stats: dict[str, dict[str, int]] = {}
        for _, name, ok in self.tool_calls:
            entry = stats.setdefault(name, {"calls": 0, "errors": 0})
            entry["calls"] += 1
            entry["errors"] += 0 if ok else 1
        return dict(sorted(stats.items(), key=lambda kv: (-kv[1]["calls"], kv[0])))

    async def live_snapshot(self) -> dict[str, Any]:
        """The page's facts, the recent turns and the probe's (not the chart series: see series()).
        Shared by every open page: computed once per half tick, or again after a
        turn was recorded, however many pages ask."""
        return (await self.live())[0]

    async def live(self) -> tuple[dict[str, Any], str, str]:
        """(snapshot, its JSON, a change key: its JSON without the uptime), cached."""
        async with self._lock:
            now = time.monotonic()
            if self._cached is not None:
                age = now - self._cached[1]
                if self._cached[0] == self._version and age < self.interval_s / 2:
                    return self._cached[2]
                if age < REFRESH_S:
                    # Turns arrive faster than anyone can read: every page gets this
                    # one, and the next (holding the turns since) REFRESH_S after it.
                    # A page knows it is behind: see ``cached_version``.
                    return self._cached[2]
            version = self._version
            rows = list(reversed(self._rows))
            facts: dict[str, Any] = {
                "actions": sorted(self.actions),
                **self.state(),
                "tool_stats": self.tool_stats(),
            }
            if self.probe is not None:
                if self._probed is None or now - self._probed[0] >= self.interval_s:
                    self._probed = (now, await self._probe())
                facts.update(self._probed[1])
            uptime = round(time.time() - self.started_at, 1)
            # The rows' JSON was made at record(): joined here, not encoded again.
            key = (
                json.dumps(facts)[:-1] + ', "recent": [' + ",".join(text for _, text in rows) + "]}"
            )
            body = f'{key[:-1]}, "uptime_s": {json.dumps(uptime)}}}'
            snap = {**facts, "recent": [row for row, _ in rows], "uptime_s": uptime}
            self._cached = (version, now, (snap, body, key))
            return snap, body, key

    async def _probe(self) -> dict[str, Any]:
        assert self.probe is not None
        channels = list(dict.fromkeys(r["channel_id"] for r, _ in self._rows if r["channel_id"]))
        try:
            extra = await asyncio.wait_for(self.probe(channels[-20:]), self.interval_s)
        except Exception as exc:  # a slow or failing store must not stop the page
            return {"probe_error": str(exc) or type(exc).__name__}
        at = time.time()
        for channel, levels in (extra.get("mood") or {}).items():
            series = self.moods.pop(str(channel), None) or deque(maxlen=MOOD_POINTS)
            # Re-inserted: the dict's order is "least recently sampled first".
            self.moods[str(channel)] = series
            # One point per mood_sample_s: an hour of chart in a few hundred points.
            if not series or at - series[-1][0] >= self.mood_sample_s:
                series.append((at, levels))
        while len(self.moods) > MOOD_CHANNELS:  # channels silent the longest go first
            del self.moods[next(iter(self.moods))]
        return extra

    async def _sample_moods(self) -> None:
        """Ask the probe now and then with no page open: the mood charts of a page
        opened later start an hour back, not at the moment it was opened."""
        while not self.closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), self.mood_background_s)
            if self.closing.is_set():
                return
            if any(r["channel_id"] for r, _ in self._rows):
                await self._probe()  # never raises: a failing store is reported, not fatal

    def series(self, since_turn: float = 0.0, since_mood: float = 0.0) -> dict[str, Any]:
        """The chart points after the times given (0: the last hour).  A page gets the
        whole hour once, then only what is new: an hour of turns is re-sent to nobody."""
        cutoff = time.time() - SERIES_WINDOW_S
        while self.turns and self.turns[0][0] < cutoff:
            self.turns.popleft()
        for points in self.moods.values():
            while points and points[0][0] < cutoff:
                points.popleft()
        return {
            "turns": _after(self.turns, since_turn),
            "mood": {
                c: _after(p, since_mood)
                for c, p in self.moods.items()
                if p and p[-1][0] > since_mood
            },
        }

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, body): connected to Discord and storage answering."""
        connected = bool(self.state().get("discord_connected", False))
        body: dict[str, Any] = {"discord": "connected" if connected else "disconnected"}
        storage_ok = True
        if self.storage_check is not None:
            try:
                await asyncio.wait_for(self.storage_check(), STORAGE_CHECK_TIMEOUT_S)
                body["storage"] = "ok"
            except TimeoutError:
                storage_ok = False
                body["storage"] = f"no answer within {STORAGE_CHECK_TIMEOUT_S:.0f}s"
            except Exception as exc:  # whatever the driver raises: the probe says "down"
                storage_ok = False
                body["storage"] = str(exc) or type(exc).__name__
        healthy = connected and storage_ok
        return healthy, {"status": "ok" if healthy else "unhealthy", **body}

    # -- server -------------------------------------------------------------------
    async def start(self) -> None:
        from .dashboard.web import build_app

        self.closing.clear()
        # A short shutdown timeout: the only long requests are event streams, which
        # end themselves when ``closing`` is set.
        self._runner = web.AppRunner(build_app(self), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]  # when 0 was asked for
        log.info("monitor listening on http://%s:%s/", self.host, self.port)
        if self.probe is not None:
            self._sampler = asyncio.create_task(self._sample_moods(), name="monitor-mood")
        if self.token:
            # Said at start, so an operator who opened the port knows it is guarded.
            log.info(
                "monitor: every page but /health needs DISCORD_MONITOR_TOKEN "
                "(Authorization: Bearer, or /?token= once in a browser)"
            )

    async def stop(self) -> None:
        self.closing.set()
        if self._sampler is not None:
            sampler, self._sampler = self._sampler, None
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
