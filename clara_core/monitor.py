"""The monitor: the operator's dashboard (DISCORD_MONITOR_ENABLED/PORT/HOST/TOKEN).

GET /health -> 200 {"status": "ok", ...} while Clara is connected to Discord and her
               storage answers, 503 {"status": "unhealthy", ...} otherwise (the body
               says which part is down); Docker's HEALTHCHECK uses it, so it never
               needs the token,
GET /status -> JSON snapshot (uptime, connection, queue, recent turns, MCP, mood, ...),
GET /events -> the live page's feed (server-sent events): the same snapshot once,
               then deltas (what changed: facts, new turns, new chart points),
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
import operator
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
#: after a quiet second is still shown at once.  An update is a delta (what
#: changed since the page's last one), so its cost follows the turns, not the
#: size of the page.
REFRESH_S = 1.0
#: record() only appends; the turns are folded into the rows, chart points and
#: tool counts in batches (at each update, or when this many wait): one warm loop
#: instead of a cold call's worth of work per turn (see record()).
FOLD_AT = 256
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


@dataclass(frozen=True, slots=True)  # slots: the monitor reads a turn's fields once a second, cold
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


#: A turn's row on the page: these fields, in this order.  The deltas carry rows
#: as arrays in this order (with the names once per delta): the fields read by one
#: C call and encoded without their keys, where a dict per row cost ~4 µs to build
#: and as much again to encode (the snapshot and /status have them as objects).
ROW_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Activity))
_row_of = operator.attrgetter(*ROW_FIELDS)
_USER = ROW_FIELDS.index("user")
_SECONDS = ROW_FIELDS.index("seconds")

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
    What the page has, so the next update sends only the rest: ``facts`` (the
    facts dict it was last sent, whole or as deltas), ``turns_seen`` (the turns
    recorded up to then: the recent rows and chart points) and ``mood_seen`` (the
    newest mood point).  Pages at the same point get the same bytes, built once.

    A page that stops reading (a frozen tab, a client whose TCP window is full)
    leaves its stream's writes waiting; what the feeder pushes meanwhile queues
    here, at most ``backlog`` updates.  One more and the page is dropped: its
    queue emptied and ``abort`` called, which cuts the connection at once (see
    dashboard.web), so neither this queue nor the socket's buffers outlive it."""

    __slots__ = ("abort", "backlog", "facts", "mood_seen", "queue", "turns_seen", "waiting")

    def __init__(
        self,
        turns_seen: int,
        mood_seen: float,
        facts: dict[str, Any],
        *,
        backlog: int = PAGE_BACKLOG,
        abort: Callable[[], None] | None = None,
    ) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.turns_seen = turns_seen
        self.mood_seen = mood_seen
        self.facts = facts
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
    first event adds those and the chart points) and ``uptime`` (JSON); ``base``
    is ``facts`` without the recent turns and the uptime (what later deltas are
    reckoned against) and ``turns`` the turns recorded when it was built."""

    facts: dict[str, Any]
    head: bytes
    uptime: bytes
    base: dict[str, Any]
    turns: int


_MISSING = object()


def _changed(seen: dict[str, Any], facts: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The facts a page that has ``seen`` lacks: (keys new or changed -> value, keys gone).
    Top-level keys are replaced whole: a fact is small (a queue, a list of MCP
    servers), and a page that merges key by key cannot get a nested merge wrong."""
    changed = {}
    for key, value in facts.items():
        old = seen.get(key, _MISSING)
        # ``is`` first: the probe's answer and the actions are the same objects
        # from one update to the next, and the mood is the largest fact.
        if old is not value and old != value:
            changed[key] = value
    gone = [key for key in seen if key not in facts]
    return changed, gone


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
        # Cheap, synchronous facts (no I/O): connection, queue, MCP, ORS, ...  New
        # objects on each call, never a live structure changed in place: each page
        # keeps the facts it was last sent, to be sent only what differs from them.
        self.state = state or (lambda: {})
        # Facts that need I/O (the mood of the channels given), asked once per mood
        # sample while pages are open (see _facts) and now and then otherwise.
        self.probe = probe
        # Raises (with a redacted reason) when PostgreSQL or Redis does not answer.
        self.storage_check = storage_check
        self.token = token or None
        self.show_content = show_content
        # POST /actions/<name> (restart an MCP server, drain the outbox, ...).
        self.actions: dict[str, Action] = dict(actions or {})
        self._action_names = sorted(self.actions)
        # Put in the page, asked back on every action: see dashboard.web.action.
        self.csrf = secrets.token_urlsafe(32)
        self.history = history
        self.interval_s = interval_s
        self.mood_sample_s = mood_sample_s
        self.mood_background_s = mood_background_s
        self.refresh_s = refresh_s
        self.page_backlog = page_backlog
        self._sampler: asyncio.Task[None] | None = None
        self._feeder: asyncio.Task[None] | None = None
        self.started_at = time.time()
        # Turns recorded and not yet folded into what follows (see record()).
        self._pending: list[Activity] = []
        # The recent turns: [activity, its row (a tuple), the row as an object].
        # Each is made when a delta or a snapshot first shows the turn (once).
        self._rows: deque[list[Any]] = deque(maxlen=history)
        # The probe's last answer and when it was asked (monotonic): asked once
        # per mood sample (or interval, if longer), however often turns make the
        # pages change.
        self._probed: tuple[float, dict[str, Any]] | None = None
        # (at, seconds, ok) of every turn in the last hour: the latency/error charts.
        self._turns: deque[tuple[float, float, bool]] = deque(maxlen=20_000)
        # Turns folded into ``_turns`` so far: a page that has N of them is sent the
        # rest, exactly (times can repeat; counts cannot).
        self._turns_added = 0
        # (at, tool name, ok) of every tool call in the last hour, and the running
        # counts of the same calls (tool name -> [calls, errors]): kept up to date
        # as calls come in and fall out of the hour, never recounted.
        self._tool_calls: deque[tuple[float, str, bool]] = deque()
        self._tool_counts: dict[str, list[int]] = {}
        # channel id -> deque of (at, levels): the mood charts.
        self.moods: dict[str, deque[tuple[float, dict[str, float]]]] = {}
        self._mood_newest = 0.0  # the time of the newest mood point
        # (version, when, snapshot): see live().
        self._cached: tuple[int, float, Snapshot] | None = None
        self._lock = asyncio.Lock()
        # The version the pages' last update covered: the feeder's "anything new?".
        self._fed_version = 0
        # The open live pages, fed by one task (_feed_pages) that builds each update
        # once for all of them; woken by record() while a page is open.
        self._pages: set[PageFeed] = set()
        self._wake = asyncio.Event()
        # True while the feeder waits for a turn (pages open, nothing new): only
        # then does record() wake it; under a flow of turns it sleeps the refresh
        # period out and finds them.
        self._listening = False
        self._runner: web.AppRunner | None = None
        # Set at stop(): open event streams end, so shutdown does not wait for them.
        self.closing = asyncio.Event()

    # -- what the app tells the monitor -------------------------------------------
    def record(self, activity: Activity) -> None:
        """A finished turn.  An append and no more: this runs on every turn, right
        after the event loop was idle, when every line of Python runs cold (the
        whole of the old record(), a few appends and a rounding, cost ~9 µs that
        way against ~1.5 µs back to back).  The turns are folded in batches."""
        pending = self._pending
        pending.append(activity)
        if self._listening or len(pending) >= FOLD_AT:
            self._recorded()

    def _recorded(self) -> None:
        if len(self._pending) >= FOLD_AT:  # no page reads them: bounded all the same
            self._fold()
        if self._listening:
            self._wake.set()  # the feeder waits for a turn: show it at once

    def _fold(self) -> None:
        """The turns recorded since the last fold, into the recent rows, the chart
        points and the tool counts (in record order).  While a page is open each
        turn's row is made here too, while the turn is in the CPU's cache: the
        next update sends them."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        rows, turns, shown = self._rows, self._turns, bool(self._pages)
        for activity in pending:
            entry = [activity, None, None]
            if shown:
                self._row(entry)
            rows.append(entry)
            turns.append((activity.at, _rounded(activity.seconds, 1000), activity.ok))
            if activity.tools:
                self._count_tools(activity)
        self._turns_added += len(pending)

    @property
    def turns(self) -> deque[tuple[float, float, bool]]:
        """(at, seconds, ok) of every turn in the last hour (the charts' points)."""
        self._fold()
        return self._turns

    @property
    def tool_calls(self) -> deque[tuple[float, str, bool]]:
        """(at, tool name, ok) of every tool call in the last hour."""
        self._fold()
        return self._tool_calls

    def _count_tools(self, activity: Activity) -> None:
        failed = list(activity.failed_tools)
        counts = self._tool_counts
        for name in activity.tools:
            ok = name not in failed
            if not ok:
                failed.remove(name)
            if len(self._tool_calls) >= TOOL_CALLS_MAX:
                self._forget_tool_call()
            self._tool_calls.append((activity.at, name, ok))
            entry = counts.get(name)
            if entry is None:
                entry = counts[name] = [0, 0]
            entry[0] += 1
            entry[1] += 0 if ok else 1

    def _forget_tool_call(self) -> None:
        _, name, ok = self._tool_calls.popleft()
        entry = self._tool_counts[name]
        entry[0] -= 1
        entry[1] -= 0 if ok else 1
        if entry[0] <= 0:
            del self._tool_counts[name]

    @property
    def version(self) -> int:
        """Counts the turns recorded."""
        return self._turns_added + len(self._pending)

    # -- snapshots ----------------------------------------------------------------
    def _row(self, entry: list[Any]) -> tuple[Any, ...]:
        """The turn's row (ROW_FIELDS' values), made once, when first shown.  Its
        seconds are rounded as the chart's point has them: a page makes the new
        turns' chart points from their rows (see _delta)."""
        row = entry[1]
        if row is None:
            activity = entry[0]
            values = list(_row_of(activity))
            values[_SECONDS] = _rounded(activity.seconds, 1000)
            if not self.show_content:
                values[_USER] = user_tag(activity.user)
            row = entry[1] = tuple(values)
        return row

    def _new_rows(self, count: int) -> list[tuple[Any, ...]]:
        """The rows of the last ``count`` turns (at most the history), newest first."""
        return [self._row(entry) for entry in itertools.islice(reversed(self._rows), count)]

    def _recent(self) -> list[dict[str, Any]]:
        """The recent turns as the snapshot shows them (objects), newest first."""
        out = []
        for entry in reversed(self._rows):
            shown = entry[2]
            if shown is None:
                shown = entry[2] = dict(zip(ROW_FIELDS, self._row(entry), strict=True))
            out.append(shown)
        return out

    def tool_stats(self) -> dict[str, dict[str, int]]:
        """Tool name -> {"calls", "errors"} over the last hour, busiest first."""
        self._fold()
        cutoff = time.time() - SERIES_WINDOW_S
        while self._tool_calls and self._tool_calls[0][0] < cutoff:
            self._forget_tool_call()
        ranked = sorted(self._tool_counts.items(), key=lambda kv: (-kv[1][0], kv[0]))
        return {name: {"calls": calls, "errors": errors} for name, (calls, errors) in ranked}

    async def live_snapshot(self) -> dict[str, Any]:
        """The page's facts, the recent turns and the probe's (not the chart series: see series()).
        Shared by every caller: built again only after a turn was recorded or when
        half a tick old, and at most once per SNAPSHOT_REUSE_S."""
        return (await self.live()).facts

    async def live(self) -> Snapshot:
        """The snapshot (with its JSON), cached."""
        async with self._lock:
            if self._cached is not None:
                age = time.monotonic() - self._cached[1]
                if age < SNAPSHOT_REUSE_S or (
                    self._cached[0] == self.version and age < self.interval_s / 2
                ):
                    return self._cached[2]
            return await self._build()

    async def _facts(self) -> dict[str, Any]:
        """The facts of the moment (the caller holds ``_lock``): the actions, state(),
        the tool counts and the probe's last answer (asked again once per mood
        sample).  A new dict each time: what a page was sent stays as it was."""
        self._fold()
        facts: dict[str, Any] = {
            "actions": self._action_names,
            **self.state(),
            "tool_stats": self.tool_stats(),
        }
        if self.probe is not None:
            now = time.monotonic()
            if self._probed is None or now - self._probed[0] >= max(
                self.interval_s, self.mood_sample_s
            ):
                self._probed = (now, await self._probe())
            facts.update(self._probed[1])  # the probe's answer overrides a fact of the same name
        return facts

    def _uptime(self) -> float:
        return _rounded(time.time() - self.started_at, 10)

    async def _build(self) -> Snapshot:
        """A whole snapshot (the caller holds ``_lock``), cached for live(): for a
        page opening, GET / and /status; the open pages get deltas (_update_pages)."""
        now = time.monotonic()
        version = self.version
        facts = await self._facts()
        rows = self._recent()
        text = json.dumps(facts)
        uptime = self._uptime()
        snap = Snapshot(
            facts={**facts, "recent": rows, "uptime_s": uptime},
            head=b"".join((text[:-1].encode(), b', "recent": ', json.dumps(rows).encode())),
            uptime=repr(uptime).encode(),
            base=facts,
            turns=self._turns_added,
        )
        self._cached = (version, now, snap)
        return snap

    def _recent_channels(self) -> list[int]:
        self._fold()
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
        turns = self.turns
        while turns and turns[0][0] < cutoff:
            turns.popleft()
        for points in self.moods.values():
            while points and points[0][0] < cutoff:
                points.popleft()

    def series(self, since_turn: float = 0.0, since_mood: float = 0.0) -> dict[str, Any]:
        """The chart points after the times given (0: the last hour)."""
        self._expire_series()
        return {
            "turns": _after(self._turns, since_turn),
            "mood": {
                c: _after(p, since_mood)
                for c, p in self.moods.items()
                if p and p[-1][0] > since_mood
            },
        }

    def _series_for(self, turns_seen: int, mood_seen: float, rows: int = 0) -> dict[str, Any]:
        """The chart points a page that has ``turns_seen`` turns and the mood up to
        ``mood_seen`` lacks, but those of the newest ``rows`` turns (their rows
        carry them): a page gets the whole hour once, then only what is new."""
        self._expire_series()
        new = min(self._turns_added - turns_seen, len(self._turns))
        # Read from the end: islice from the start would walk the whole hour (thousands
        # of points) to reach the few new ones, on every update.
        turns = list(itertools.islice(reversed(self._turns), rows, new))[::-1] if new > rows else []
        mood = {}
        if self._mood_newest > mood_seen:
            mood = {
                c: _after(p, mood_seen) for c, p in self.moods.items() if p and p[-1][0] > mood_seen
            }
        return {"turns": turns, "mood": mood}

    def _delta(self, feed: PageFeed, facts: dict[str, Any], uptime: float) -> dict[str, Any] | None:
        """What ``feed``'s page lacks, as one ``delta`` event's data (None: nothing).
        The page's contract (static/dashboard.js): the keys of ``set`` replace its
        facts, those in ``unset`` are removed; ``recent`` (the new turns, newest
        first, each an array of the ``fields`` named) goes before its rows, which
        are cut to ``keep``; the chart gets the points of ``series_append`` (the
        mood's, and the turns' that ``recent`` lacks: more turns than the history
        came), then [at, seconds, ok] of each row of ``recent``, oldest first (the
        same values: not sent twice).  Applied to the page's last state, it gives
        the snapshot and series /status shows (tests/unit/test_monitor_dashboard.py)."""
        changed, gone = _changed(feed.facts, facts)
        new = self._turns_added - feed.turns_seen
        if not changed and not gone and not new and self._mood_newest <= feed.mood_seen:
            return None
        rows = self._new_rows(new) if new else []
        return {
            "uptime_s": uptime,
            "set": changed,
            "unset": gone,
            "fields": ROW_FIELDS,
            "recent": rows,
            "keep": self.history,
            "series_append": self._series_for(feed.turns_seen, feed.mood_seen, len(rows)),
        }

    # -- live pages ---------------------------------------------------------------
    async def open_page(self, abort: Callable[[], None] | None = None) -> tuple[PageFeed, bytes]:
        """A new live page: its feed and its first event (the snapshot and the whole
        hour of chart points); the feed then gets the updates every page gets.
        ``abort`` cuts the page's connection: called if it falls too far behind."""
        async with self._lock:
            snap = await self._build()
            series = self.series()
            feed = PageFeed(
                snap.turns,
                self._mood_newest,
                snap.base,
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
        quiet refresh period, else refresh_s after the last update) and every
        interval_s (connection, queue, mood...), one delta and one encoding for
        all pages at the same point; a comment line now and then while nothing
        changes.  Under a steady flow of turns it wakes once per update: after an
        update it sleeps the refresh period out, then sends what came meanwhile."""
        loop = asyncio.get_running_loop()
        last_sent = last_update = last_write = -math.inf
        while not self.closing.is_set():
            if not self._pages:
                self._wake.clear()
                await self._wake.wait()  # a page opens (or stop())
                continue
            wait = last_sent + self.refresh_s - loop.time()
            if wait > 0:  # turns arrive faster than anyone can read: one update for them all
                # A plain sleep (stop() cancels this task): no task or event per update.
                await asyncio.sleep(wait)
                continue
            if self.version == self._fed_version:  # no new turn: wait for one, or the tick
                tick = last_update + self.interval_s - loop.time()
                if tick > 0:
                    self._wake.clear()
                    self._listening = True  # record() wakes it from here on
                    try:
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(tick):
                                await self._wake.wait()
                    finally:
                        self._listening = False
                    continue
            last_update = loop.time()
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
        """Send every page what it lacks (a delta); True if anything was sent."""
        sent = False
        async with self._lock:
            self._fed_version = self.version
            facts = await self._facts()
            uptime = self._uptime()
            turns, mood = self._turns_added, self._mood_newest
            # Pages with the same facts (the same dict: the last update's) and chart
            # points get the same bytes.
            shared: dict[tuple[int, int, float], bytes | None] = {}
            for feed in list(self._pages):
                point = (id(feed.facts), feed.turns_seen, feed.mood_seen)
                if point in shared:
                    data = shared[point]
                else:
                    delta = self._delta(feed, facts, uptime)
                    data = shared[point] = (
                        None
                        if delta is None
                        else b"".join(
                            (b"event: delta\ndata: ", json.dumps(delta).encode(), b"\n\n")
                        )
                    )
                if data is None:  # nothing new for this page
                    feed.facts = facts  # the same facts: later pages share its updates
                    continue
                if feed.push(data):
                    feed.facts, feed.turns_seen, feed.mood_seen = facts, turns, mood
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
