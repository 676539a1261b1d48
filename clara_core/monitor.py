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
import itertools
import json
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, NamedTuple

from aiohttp import web

from .errors import ClaraError

log = logging.getLogger(__name__)

#: A storage check slower than this counts as down (a health probe must answer).
STORAGE_CHECK_TIMEOUT_S = 3.0
#: The live charts cover this much time.
SERIES_WINDOW_S = 3600.0
#: However many pages are open and however many turns arrive, the pages get at most
#: one update this often, all of them the same one (built once).  A dashboard is
#: read by a person: a second is as live as anyone can read, and each update has a
#: fixed cost (the snapshot's JSON, a write per page), which at 4 a second made the
#: monitor cost 5-15 % of Clara's own CPU per turn (docs/benchmarks.md).  A turn
#: after a quiet second is still shown at once.
REFRESH_S = 1.0
#: GET / and /status reuse a snapshot this young (a burst of requests builds one);
#: the live pages' feeder always builds its own.
SNAPSHOT_REUSE_S = 0.25
#: A comment line this often keeps proxies (and the browser) from thinking the
#: stream died while nothing changes.
KEEPALIVE_S = 15.0
#: Updates a page may have waiting (it stopped reading: a frozen tab, a client
#: whose TCP window stays full); one more and its connection is reset, freeing
#: what it held (see PageFeed).  A browser's EventSource then reconnects by
#: itself (getting the whole hour again).
PAGE_BACKLOG = 30
#: Tool calls kept for the tools table (the last hour's, at most this many).
TOOL_CALLS_MAX = 20_000
#: Mood levels drift slowly: one chart point this often while a page is open, and
#: the probe (a Redis read per channel) is asked no more often than that.
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


_KEEPALIVE = b": keep-alive\n\n"


class PageFeed:
    """One open live page: the updates waiting for its /events stream (None ends it).
    ``turns_seen``/``mood_seen`` say which chart points it has, ``key`` which
    snapshot: pages at the same point get the same bytes, built once.

    A page that stops reading (a frozen tab, a client whose TCP window is full)
    leaves its stream's writes waiting; what the feeder pushes meanwhile queues
    here, at most ``backlog`` updates.  One more and the page is dropped: its
    queue emptied and ``abort`` called, which cuts the connection at once (see
    dashboard.web), so neither this queue nor the socket's buffers outlive it."""

    __slots__ = ("abort", "backlog", "key", "mood_seen", "queue", "turns_seen", "waiting")

    def __init__(
        self,
        turns_seen: int,
        mood_seen: float,
        key: Any,
        *,
        backlog: int = PAGE_BACKLOG,
        abort: Callable[[], None] | None = None,
    ) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.turns_seen = turns_seen
        self.mood_seen = mood_seen
        self.key = key
        self.backlog = backlog
        self.abort = abort
        #: Bytes queued and not yet taken by the stream: what this page holds of Clara's memory.
        self.waiting = 0

    def push(self, data: bytes) -> bool:
        """Queue ``data``; False (and the page dropped) when it is too far behind."""
        if self.queue.qsize() >= self.backlog:
            self.drop()
            return False
        self.queue.put_nowait(data)
        self.waiting += len(data)
        return True

    async def next(self) -> bytes | None:
        """The next update to write; None: the stream ends."""
        data = await self.queue.get()
        if data is not None:
            self.waiting -= len(data)
        return data

    def end(self) -> None:
        """The stream ends after what it is writing now (shutdown)."""
        while not self.queue.empty():  # what it has not read is of no use any more
            self.queue.get_nowait()
        self.waiting = 0
        self.queue.put_nowait(None)

    def drop(self) -> None:
        """The page fell ``backlog`` updates behind: end it, and cut its connection
        (its stream is stuck in a write that would never finish)."""
        self.end()
        if self.abort is not None:
            abort, self.abort = self.abort, None
            abort()


def _event(head: bytes, uptime: bytes, field: bytes, series: dict[str, Any]) -> bytes:
    """A server-sent event: the snapshot's JSON (``head``: all of it but the uptime
    and the closing brace) with the chart points added, in one join (the same
    bytes go to every page at this point)."""
    return b"".join(
        (
            b"event: snapshot\ndata: ",
            head,
            b', "uptime_s": ',
            uptime,
            b', "',
            field,
            b'": ',
            json.dumps(series).encode(),
            b"}\n\n",
        )
    )


def _after(points: deque[Any], since: float) -> list[Any]:
    """The points of a time-ordered deque later than ``since``, read from the end."""
    out = []
    for point in reversed(points):
        if point[0] <= since:
            break
        out.append(point)
    out.reverse()
    return out


def _rounded(x: float, per_unit: int) -> float:
    """``x`` to 1/per_unit (1000: milliseconds).  Not round(x, 3): that goes through
    a decimal string (dtoa, printf, strtod), ~1 µs when hot, and record() runs once
    per turn after the loop was idle, when it is 10-20x that (measured: 12 µs of
    record()'s 20 on this 2-core VM)."""
    return round(x * per_unit) / per_unit if math.isfinite(x) else x


@lru_cache(maxsize=4096)  # the same few users talk again and again: hash each once
def user_tag(name: str) -> str:
    """A stable stand-in for a user name: the operator can tell users apart without
    the page (or a screenshot of it) naming anyone."""
    return "user-" + hashlib.sha256(name.encode()).hexdigest()[:8]


class Snapshot(NamedTuple):
    """What the pages are shown: ``facts`` (the dict /status and the page render),
    ``head`` (its JSON without the uptime and the closing brace, as bytes: the
    events add those and their chart points), ``uptime`` (JSON) and ``key`` (equal
    for two snapshots that show a page nothing new)."""

    facts: dict[str, Any]
    head: bytes
    uptime: bytes
    key: tuple[int, str]


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
        refresh_s: float = REFRESH_S,
        page_backlog: int = PAGE_BACKLOG,
    ) -> None:
        self.host = host
        self.port = port
        # Cheap, synchronous facts (no I/O): connection, queue, MCP, ORS, ...
        self.state = state or (lambda: {})
        # Facts that need I/O (the mood of the channels given), asked once per mood
        # sample while pages are open (see _build) and now and then otherwise.
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
        self.refresh_s = refresh_s
        self.page_backlog = page_backlog
        self._sampler: asyncio.Task[None] | None = None
        self._feeder: asyncio.Task[None] | None = None
        self.started_at = time.time()
        # The recent turns: [activity, its row for the page, the row's JSON].  The
        # row and its JSON are made when a snapshot first shows the turn (once per
        # turn), so record() stays a few appends and costs nothing more while no
        # page is open.
        self._rows: deque[list[Any]] = deque(maxlen=history)
        # (version, rows, their JSON array): the recent turns as the last snapshot
        # showed them, joined again only after a turn was recorded.
        self._recent: tuple[int, list[dict[str, Any]], bytes] | None = None
        # The probe's last answer, its JSON and when it was asked (monotonic):
        # asked once per mood sample (or interval, if longer), however often turns
        # make the snapshot change, and encoded once per answer.
        self._probed: tuple[float, dict[str, Any], str] | None = None
        # (at, seconds, ok) of every turn in the last hour: the latency/error charts.
        self.turns: deque[tuple[float, float, bool]] = deque(maxlen=20_000)
        # Turns appended to ``turns`` so far: a page that has N of them is sent the
        # rest, exactly (times can repeat; counts cannot).
        self._turns_added = 0
        # (at, tool name, ok) of every tool call in the last hour, and the running
        # counts of the same calls (tool name -> [calls, errors]): kept up to date
        # as calls come in and fall out of the hour, never recounted.
        self.tool_calls: deque[tuple[float, str, bool]] = deque()
        self._tool_counts: dict[str, list[int]] = {}
        # channel id -> deque of (at, levels): the mood charts.
        self.moods: dict[str, deque[tuple[float, dict[str, float]]]] = {}
        self._mood_newest = 0.0  # the time of the newest mood point
        # (version, when, snapshot): see live().
        self._cached: tuple[int, float, Snapshot] | None = None
        self._lock = asyncio.Lock()
        self._version = 0
        # The open live pages, fed by one task (_feed_pages) that builds each update
        # once for all of them; woken by record() while a page is open.
        self._pages: set[PageFeed] = set()
        self._wake = asyncio.Event()
        self._runner: web.AppRunner | None = None
        # Set at stop(): open event streams end, so shutdown does not wait for them.
        self.closing = asyncio.Event()

    # -- what the app tells the monitor -------------------------------------------
    def record(self, activity: Activity) -> None:
        """A finished turn.  O(1) and no encoding: this runs on every turn."""
        self._rows.append([activity, None, None])
        self.turns.append((activity.at, _rounded(activity.seconds, 1000), activity.ok))
        self._turns_added += 1
        if activity.tools:
            self._count_tools(activity)
        self._version += 1
        if self._pages and not self._wake.is_set():
            self._wake.set()  # the pages' feeder shows it (at once, or with the next update)

    def _count_tools(self, activity: Activity) -> None:
        failed = list(activity.failed_tools)
        counts = self._tool_counts
        for name in activity.tools:
            ok = name not in failed
            if not ok:
                failed.remove(name)
            if len(self.tool_calls) >= TOOL_CALLS_MAX:
                self._forget_tool_call()
            self.tool_calls.append((activity.at, name, ok))
            entry = counts.get(name)
            if entry is None:
                entry = counts[name] = [0, 0]
            entry[0] += 1
            entry[1] += 0 if ok else 1

    def _forget_tool_call(self) -> None:
        _, name, ok = self.tool_calls.popleft()
        entry = self._tool_counts[name]
        entry[0] -= 1
        entry[1] -= 0 if ok else 1
        if entry[0] <= 0:
            del self._tool_counts[name]

    @property
    def version(self) -> int:
        """Counts the turns recorded."""
        return self._version

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
            self._forget_tool_call()
        ranked = sorted(self._tool_counts.items(), key=lambda kv: (-kv[1][0], kv[0]))
        return {name: {"calls": calls, "errors": errors} for name, (calls, errors) in ranked}

    async def live_snapshot(self) -> dict[str, Any]:
        """The page's facts, the recent turns and the probe's (not the chart series: see series()).
        Shared by every caller: built again only after a turn was recorded or when
        half a tick old, and at most once per SNAPSHOT_REUSE_S."""
        return (await self.live()).facts

    async def live(self) -> Snapshot:
        """The snapshot (with its JSON and change key), cached."""
        async with self._lock:
            if self._cached is not None:
                age = time.monotonic() - self._cached[1]
                if age < SNAPSHOT_REUSE_S or (
                    self._cached[0] == self._version and age < self.interval_s / 2
                ):
                    return self._cached[2]
            return await self._build()

    async def _build(self) -> Snapshot:
        """A fresh snapshot (the caller holds ``_lock``), cached for live().

        Built once a second while pages are open, so only what changed is encoded:
        each turn's row once (when first shown), the probe's answer once per
        answer, the rest (state(), a few hundred bytes) each time; the parts are
        then joined as bytes, never parsed or encoded again."""
        now = time.monotonic()
        version = self._version
        facts: dict[str, Any] = {
            "actions": sorted(self.actions),
            **self.state(),
            "tool_stats": self.tool_stats(),
        }
        text = json.dumps(facts)
        if self.probe is not None:
            if self._probed is None or now - self._probed[0] >= max(
                self.interval_s, self.mood_sample_s
            ):
                extra = await self._probe()
                self._probed = (now, extra, json.dumps(extra))
            _, extra, extra_text = self._probed
            if extra.keys() & facts.keys():  # the probe overrides a fact: encode them together
                facts.update(extra)
                text = json.dumps(facts)
            elif extra:  # two JSON objects made one: '{"a": 1' + ', ' + '"b": 2}'
                facts.update(extra)
                text = f"{text[:-1]}, {extra_text[1:]}"
        rows, recent = self._recent_rows(version)
        uptime = _rounded(time.time() - self.started_at, 10)
        snap = Snapshot(
            facts={**facts, "recent": rows, "uptime_s": uptime},
            head=b"".join((text[:-1].encode(), b', "recent": ', recent)),
            uptime=repr(uptime).encode(),
            # What a page has seen: the turns (version) and the facts.  The uptime
            # is left out: it alone is no reason to send an update.
            key=(version, text),
        )
        self._cached = (version, now, snap)
        return snap

    def _recent_rows(self, version: int) -> tuple[list[dict[str, Any]], bytes]:
        """The recent turns, newest first, and their JSON array (joined once per version)."""
        if self._recent is not None and self._recent[0] == version:
            return self._recent[1], self._recent[2]
        rows, texts = [], []
        for entry in reversed(self._rows):
            if entry[1] is None:  # first shown: made once for every later snapshot
                entry[1] = self._shown(entry[0])
                entry[2] = json.dumps(entry[1]).encode()
            rows.append(entry[1])
            texts.append(entry[2])
        recent = b"[" + b", ".join(texts) + b"]"
        self._recent = (version, rows, recent)
        return rows, recent

    def _recent_channels(self) -> list[int]:
        return list(dict.fromkeys(e[0].channel_id for e in self._rows if e[0].channel_id))

    async def _probe(self) -> dict[str, Any]:
        assert self.probe is not None
        channels = self._recent_channels()
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
            # (A tenth of slack: the pages' probe is asked every mood_sample_s by
            # the monotonic clock, and a faster answer must not skip a point.)
            if not series or at - series[-1][0] >= self.mood_sample_s * 0.9:
                series.append((at, levels))
                self._mood_newest = max(self._mood_newest, at)
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
            if self._recent_channels():
                await self._probe()  # never raises: a failing store is reported, not fatal

    def _expire_series(self) -> None:
        cutoff = time.time() - SERIES_WINDOW_S
        while self.turns and self.turns[0][0] < cutoff:
            self.turns.popleft()
        for points in self.moods.values():
            while points and points[0][0] < cutoff:
                points.popleft()

    def series(self, since_turn: float = 0.0, since_mood: float = 0.0) -> dict[str, Any]:
        """The chart points after the times given (0: the last hour)."""
        self._expire_series()
        return {
            "turns": _after(self.turns, since_turn),
            "mood": {
                c: _after(p, since_mood)
                for c, p in self.moods.items()
                if p and p[-1][0] > since_mood
            },
        }

    def _series_for(self, turns_seen: int, mood_seen: float) -> dict[str, Any]:
        """The chart points a page that has ``turns_seen`` turns and the mood up to
        ``mood_seen`` lacks: a page gets the whole hour once, then only what is new."""
        self._expire_series()
        new = min(self._turns_added - turns_seen, len(self.turns))
        # Read from the end: islice from the start would walk the whole hour (thousands
        # of points) to reach the few new ones, on every update.
        turns = list(itertools.islice(reversed(self.turns), new))[::-1] if new else []
        mood = {}
        if self._mood_newest > mood_seen:
            mood = {
                c: _after(p, mood_seen) for c, p in self.moods.items() if p and p[-1][0] > mood_seen
            }
        return {"turns": turns, "mood": mood}

    # -- live pages ---------------------------------------------------------------
    async def open_page(self, abort: Callable[[], None] | None = None) -> tuple[PageFeed, bytes]:
        """A new live page: its feed and its first event (the snapshot and the whole
        hour of chart points); the feed then gets the updates every page gets.
        ``abort`` cuts the page's connection: called if it falls too far behind."""
        async with self._lock:
            snap = await self._build()
            series = self.series()
            feed = PageFeed(
                self._turns_added,
                self._mood_newest,
                snap.key,
                backlog=self.page_backlog,
                abort=abort,
            )
            self._pages.add(feed)
        self._wake.set()  # the feeder starts ticking (it sleeps while no page is open)
        return feed, _event(snap.head, snap.uptime, b"series", series)

    def close_page(self, feed: PageFeed) -> None:
        self._pages.discard(feed)

    def page_backlogs(self) -> list[int]:
        """Bytes each open page has waiting (not yet taken by its stream)."""
        return [feed.waiting for feed in self._pages]

    def _drop_page(self, feed: PageFeed) -> None:
        self._pages.discard(feed)
        log.info(
            "monitor: a live page stopped reading (%d updates behind); its connection is closed",
            feed.backlog,
        )

    async def _feed_pages(self) -> None:
        """The one task that updates every open page: on a new turn (at once after a
        quiet second, else refresh_s after the last update) and every interval_s
        (connection, queue, mood...), one snapshot and one encoding for all pages
        that are at the same point; a comment line now and then while nothing changes."""
        loop = asyncio.get_running_loop()
        last_sent = last_write = -math.inf
        while not self.closing.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s if self._pages else None):
                    await self._wake.wait()
            if self.closing.is_set() or not self._pages:
                self._wake.clear()
                continue
            wait = last_sent + self.refresh_s - loop.time()
            if wait > 0:  # turns arrive faster than anyone can read: one update for them all
                # A plain sleep (stop() cancels this task): no task or event per update.
                await asyncio.sleep(wait)
                if self.closing.is_set():
                    break
            self._wake.clear()  # what is recorded from here on wakes the next round
            try:
                updated = await self._update_pages()
            except Exception:  # a bad fact (a state() that raised) costs one update, not the feed
                log.exception("monitor: updating the live pages failed")
                updated, last_sent = False, loop.time()
            if updated:
                last_sent = last_write = loop.time()
            elif loop.time() - last_write >= KEEPALIVE_S:
                for feed in list(self._pages):
                    if not feed.push(_KEEPALIVE):
                        self._drop_page(feed)
                last_write = loop.time()

    async def _update_pages(self) -> bool:
        """Send what changed to every page; True if anything was sent."""
        sent = False
        async with self._lock:
            snap = await self._build()
            key = snap.key
            turns, mood = self._turns_added, self._mood_newest
            shared: dict[tuple[int, float], bytes] = {}
            for feed in list(self._pages):
                point = (feed.turns_seen, feed.mood_seen)
                if feed.key == key and point == (turns, mood):
                    continue  # nothing new for this page
                data = shared.get(point)
                if data is None:
                    data = shared[point] = _event(
                        snap.head, snap.uptime, b"series_append", self._series_for(*point)
                    )
                if feed.push(data):
                    feed.key, feed.turns_seen, feed.mood_seen = key, turns, mood
                    sent = True
                else:
                    self._drop_page(feed)
        return sent

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
        self._feeder = asyncio.create_task(self._feed_pages(), name="monitor-pages")
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
        self._wake.set()
        for feed in self._pages:
            feed.end()  # each open event stream ends (the page's EventSource retries)
        self._pages.clear()
        for name in ("_sampler", "_feeder"):
            task: asyncio.Task[None] | None = getattr(self, name)
            if task is not None:
                setattr(self, name, None)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
