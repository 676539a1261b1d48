"""The dashboard's server side on a real loopback server: the event stream, the
token rules, hidden user names, the page and its local static files."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import aiohttp
import pytest

from clara_core.config import load_settings
from clara_core.errors import ConfigError
from clara_core.monitor import (
    FOLD_AT,
    MOOD_CHANNELS,
    MOOD_POINTS,
    REFRESH_S,
    ActionRefused,
    Activity,
    Monitor,
    user_tag,
)

TOKEN = "s3cret-token-for-tests-0123456789"


async def _started(**kwargs) -> Monitor:
    kwargs.setdefault("state", lambda: {"discord_connected": True, "provider": "openai"})
    monitor = Monitor(host="127.0.0.1", port=0, **kwargs)
    await monitor.start()
    return monitor


class PageState(dict):
    """What a live page holds after an event (static/dashboard.js's contract): the
    facts and the recent turns, rebuilt from the first ``snapshot`` and every
    ``delta`` since; plus that event's chart points (``series`` or
    ``series_append``) as the page got them.  ``kind`` and ``data``: the event
    itself; ``turns``/``mood``: every chart point the page has."""

    kind: str
    data: dict
    new_turns: list  # the chart points this event added
    turns: list
    mood: dict


class Page:
    """A live page's side of /events, as the browser's script applies it."""

    def __init__(self) -> None:
        self.state: dict = {}
        self.turns: list = []
        self.mood: dict = {}

    def apply(self, kind: str, data: dict) -> PageState:
        if kind == "snapshot":
            self.state = {k: v for k, v in data.items() if k not in ("series", "series_append")}
            self.turns, self.mood = [], {}
            points = data.get("series") or data.get("series_append") or {}
        else:
            assert kind == "delta", kind
            self.state.update(data["set"])
            for key in data["unset"]:
                del self.state[key]
            added = [dict(zip(data["fields"], row, strict=True)) for row in data["recent"]]
            self.state["recent"] = (added + self.state["recent"])[: data["keep"]]
            self.state["uptime_s"] = data["uptime_s"]
            # The rows' own chart points come after those sent (oldest first).
            own = [[a["at"], a["seconds"], a["ok"]] for a in reversed(added)]
            points = {**data["series_append"]}
            points["turns"] = points.get("turns", []) + own
        new_turns = points.get("turns", [])
        self.turns = self.turns + new_turns
        for channel, more in points.get("mood", {}).items():
            self.mood[channel] = self.mood.get(channel, []) + more
        out = PageState(json.loads(json.dumps(self.state)))  # a copy the next event leaves alone
        for key in ("series", "series_append"):
            if key in data:
                out[key] = data[key]
        out.kind, out.data, out.new_turns = kind, data, new_turns
        out.turns, out.mood = list(self.turns), dict(self.mood)
        return out


async def _events(resp: aiohttp.ClientResponse) -> AsyncIterator[PageState]:
    """The page's state after each ``snapshot`` or ``delta`` event of a
    text/event-stream body."""
    page = Page()
    event, data = None, []
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data.append(line.split(":", 1)[1].strip())
        elif line == "" and data:
            if event in ("snapshot", "delta"):
                yield page.apply(event, json.loads("\n".join(data)))
            event, data = None, []


def _turn(user: str = "Alice", channel: str = "#general", ok: bool = True) -> Activity:
    return Activity(time.time(), channel, user, "gpt-test", 1.25, ok, channel_id=42)


async def test_event_stream_pushes_a_new_turn_at_once():
    # A long tick: the turn can only arrive this fast because record() wakes the stream.
    monitor = await _started(interval_s=30.0)
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{monitor.port}/events") as resp,
        ):
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            stream = _events(resp)
            first = await asyncio.wait_for(anext(stream), 5)
            assert first["discord_connected"] is True and first["recent"] == []
            t0 = time.monotonic()
            monitor.record(_turn())
            second = await asyncio.wait_for(anext(stream), 5)
            took = time.monotonic() - t0
        assert took < 2.0, f"the turn took {took:.2f}s to reach the page"
        assert [r["channel"] for r in second["recent"]] == ["#general"]
        assert [t[1:] for t in second.new_turns] == [[1.25, True]]
    finally:
        await monitor.stop()


async def test_event_stream_sends_the_hour_once_then_only_new_points():
    monitor = await _started(interval_s=30.0)
    monitor.record(_turn(user="early"))
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{monitor.port}/events") as resp,
        ):
            stream = _events(resp)
            first = await asyncio.wait_for(anext(stream), 5)
            assert len(first["series"]["turns"]) == 1 and "series_append" not in first
            later = _turn(user="later")
            monitor.record(later)
            second = await asyncio.wait_for(anext(stream), 5)
        assert "series" not in second
        assert second.new_turns == [[later.at, 1.25, True]]
        assert len(second["recent"]) == 2
    finally:
        await monitor.stop()


async def test_event_stream_sends_ticks_and_stop_ends_it_quickly():
    # The mood comes from the probe, asked each mood sample (here each tick) for
    # the channels that spoke.
    asked: list[list[int]] = []

    async def probe(channels: list[int]) -> dict:
        asked.append(channels)
        return {"mood": {str(c): {"dopamine": 0.5 + len(asked) / 100} for c in channels}}

    monitor = await _started(interval_s=0.2, mood_sample_s=0.2, probe=probe)
    monitor.record(_turn())
    try:
        async with aiohttp.ClientSession() as http:
            resp = await http.get(f"http://127.0.0.1:{monitor.port}/events")
            stream = _events(resp)
            snaps = [await asyncio.wait_for(anext(stream), 5) for _ in range(3)]
            assert all(s["mood"]["42"]["dopamine"] > 0.5 for s in snaps)
            assert [42] in asked
            assert snaps[0]["series"]["mood"]["42"], "no mood chart points"
            t0 = time.monotonic()
            await monitor.stop()
            assert time.monotonic() - t0 < 1.5, "an open page held up the shutdown"
            resp.close()
    finally:
        await monitor.stop()


async def test_a_failing_probe_does_not_break_the_page():
    async def probe(channels: list[int]) -> dict:
        raise RuntimeError("redis went away")

    monitor = await _started(probe=probe)
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{monitor.port}/status") as resp,
        ):
            assert resp.status == 200
            body = await resp.json()
        assert body["probe_error"] == "redis went away"
        assert body["discord_connected"] is True
    finally:
        await monitor.stop()


async def test_token_guards_everything_but_health():
    monitor = await _started(token=TOKEN)
    base = f"http://127.0.0.1:{monitor.port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/health") as resp:
                assert resp.status == 200  # Docker's HEALTHCHECK has no token
            for path in ("/", "/status", "/events", "/static/uPlot.iife.min.js"):
                async with http.get(base + path) as resp:
                    assert resp.status == 401, path
                    assert "DISCORD_MONITOR_TOKEN" in await resp.text()
                async with http.get(
                    base + path, headers={"Authorization": "Bearer wrong-" + TOKEN}
                ) as resp:
                    assert resp.status == 401, path
            async with http.get(
                f"{base}/status", headers={"Authorization": f"Bearer {TOKEN}"}
            ) as resp:
                assert resp.status == 200
                assert (await resp.json())["discord_connected"] is True
            async with http.get(f"{base}/?token=nope") as resp:
                assert resp.status == 401
    finally:
        await monitor.stop()


async def test_token_in_the_address_becomes_an_httponly_cookie():
    monitor = await _started(token=TOKEN)
    base = f"http://127.0.0.1:{monitor.port}"
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(f"{base}/?token={TOKEN}", allow_redirects=False) as resp:
                assert resp.status == 303
                assert resp.headers["Location"] == "/"  # the token leaves the address bar
                cookie = resp.headers["Set-Cookie"]
                assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
                assert TOKEN not in cookie  # a digest, not the token itself
            async with http.get(f"{base}/status") as resp:  # the cookie from now on
                assert resp.status == 200
            async with http.get(f"{base}/static/uPlot.iife.min.js") as resp:
                assert resp.status == 200
    finally:
        await monitor.stop()


async def test_user_names_are_hidden_unless_opted_in():
    hidden = await _started()
    shown = await _started(show_content=True)
    try:
        for m in (hidden, shown):
            m.record(_turn(user="Alice"))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{hidden.port}/status") as resp:
                h = await resp.json()
            async with http.get(f"http://127.0.0.1:{hidden.port}/") as resp:
                page = await resp.text()
            async with http.get(f"http://127.0.0.1:{shown.port}/status") as resp:
                s = await resp.json()
        assert h["recent"][0]["user"] == user_tag("Alice") != "Alice"
        assert "Alice" not in page and user_tag("Alice") in page
        assert s["recent"][0]["user"] == "Alice"
    finally:
        await hidden.stop()
        await shown.stop()


async def test_page_renders_server_side_and_needs_nothing_from_outside():
    monitor = await _started()
    monitor.record(_turn(channel="</script><img src=x onerror=alert(1)>", ok=False))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{monitor.port}/") as resp:
                assert resp.status == 200
                page = await resp.text()
            for asset in ("uPlot.iife.min.js", "uPlot.min.css", "dashboard.js", "dashboard.css"):
                async with http.get(f"http://127.0.0.1:{monitor.port}/static/{asset}") as resp:
                    assert resp.status == 200, asset
                    assert len(await resp.read()) > 500, asset
        assert 'id="connection" class="ok">connected<' in page
        assert "failed" in page and "gpt-test" in page
        # Offline: every script and style sheet is ours.
        assert "http://" not in page and "https://" not in page
        # A hostile channel name stays text, in the table and in the embedded JSON.
        assert "<img src=x" not in page and "</script><img" not in page
    finally:
        await monitor.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "clara.example.org", "::"])
def test_exposed_host_without_token_is_a_config_error(host):
    with pytest.raises(ConfigError) as err:
        load_settings(env_file=None, discord_monitor_host=host)
    assert "DISCORD_MONITOR_HOST" in err.value.render()
    assert "DISCORD_MONITOR_TOKEN" in err.value.render()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_token(host):
    assert load_settings(env_file=None, discord_monitor_host=host).discord_monitor_host == host


def test_exposed_host_with_token_is_accepted():
    s = load_settings(env_file=None, discord_monitor_host="0.0.0.0", discord_monitor_token=TOKEN)
    assert s.discord_monitor_token.get_secret_value() == TOKEN
    assert s.clara_monitor_show_content is False


def _csrf(page: str) -> str:
    m = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert m, "the page carries no CSRF token"
    return m.group(1)


class Restarts:
    """A real action: records what it was asked, refuses unknown servers."""

    def __init__(self) -> None:
        self.asked: list[dict[str, str]] = []

    async def __call__(self, params: dict[str, str]) -> str:
        self.asked.append(params)
        if params.get("server") != "files":
            raise ActionRefused(f"No MCP server named '{params.get('server')}'.", 404)
        return "files restarted, now running"


async def test_actions_need_the_pages_csrf_token_without_a_token_too():
    restarts = Restarts()
    monitor = await _started(actions={"mcp-restart": restarts})
    base = f"http://127.0.0.1:{monitor.port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/") as resp:
                csrf = _csrf(await resp.text())
            # What a page on another site can make the browser send: no custom header.
            async with http.post(f"{base}/actions/mcp-restart", data={"server": "files"}) as resp:
                assert resp.status == 403
            async with http.post(
                f"{base}/actions/mcp-restart",
                json={"server": "files"},
                headers={"X-CSRF-Token": csrf[:-1] + "x"},
            ) as resp:
                assert resp.status == 403
            assert restarts.asked == []
            async with http.post(
                f"{base}/actions/mcp-restart",
                json={"server": "files"},
                headers={"X-CSRF-Token": csrf},
            ) as resp:
                assert resp.status == 200
                assert await resp.json() == {"ok": True, "message": "files restarted, now running"}
            async with http.post(
                f"{base}/actions/mcp-restart",
                json={"server": "nope"},
                headers={"X-CSRF-Token": csrf},
            ) as resp:
                assert resp.status == 404
                assert (await resp.json())["message"] == "No MCP server named 'nope'."
            async with http.post(
                f"{base}/actions/reboot-the-world", headers={"X-CSRF-Token": csrf}
            ) as resp:
                assert resp.status == 404
                assert "available: mcp-restart" in (await resp.json())["message"]
            async with http.get(f"{base}/actions/mcp-restart") as resp:
                assert resp.status == 405  # never by GET: a link or an <img> cannot act
        assert restarts.asked == [{"server": "files"}, {"server": "nope"}]
    finally:
        await monitor.stop()


async def test_actions_with_a_token():
    restarts = Restarts()
    monitor = await _started(token=TOKEN, actions={"mcp-restart": restarts})
    base = f"http://127.0.0.1:{monitor.port}"
    url = f"{base}/actions/mcp-restart?server=files"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(url, headers={"X-CSRF-Token": monitor.csrf}) as resp:
                assert resp.status == 401  # the CSRF token alone is not the monitor's token
            async with http.post(url, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                assert resp.status == 200  # a script with the token needs no page
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            async with browser.get(f"{base}/?token={TOKEN}") as resp:
                csrf = _csrf(await resp.text())
            async with browser.post(url) as resp:
                assert resp.status == 403  # the cookie rides along cross-site; the header not
            async with browser.post(url, headers={"X-CSRF-Token": csrf}) as resp:
                assert resp.status == 200
        assert restarts.asked == [{"server": "files"}, {"server": "files"}]
    finally:
        await monitor.stop()


async def test_without_a_token_only_loopback_names_are_answered():
    # DNS rebinding: a page at evil.example re-pointed at 127.0.0.1 sends its own Host.
    monitor = await _started()
    base = f"http://127.0.0.1:{monitor.port}"
    try:
        async with aiohttp.ClientSession() as http:
            for host in ("evil.example", f"evil.example:{monitor.port}", "10.0.0.5"):
                async with http.get(f"{base}/status", headers={"Host": host}) as resp:
                    assert resp.status == 421, host
            async with http.get(f"{base}/health", headers={"Host": "evil.example"}) as resp:
                assert resp.status == 200
            for host in (f"localhost:{monitor.port}", f"127.0.0.1:{monitor.port}", "[::1]:80"):
                async with http.get(f"{base}/status", headers={"Host": host}) as resp:
                    assert resp.status == 200, host
    finally:
        await monitor.stop()


def _table(page: str, tbody_id: str) -> list[list[str]]:
    """The cells of a server-rendered table body, as text."""
    body = re.search(rf'<tbody id="{tbody_id}">(.*?)</tbody>', page, re.S)
    assert body is not None, tbody_id
    return [
        [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    ]


async def test_turns_show_tier_first_text_tools_and_the_tool_counts():
    monitor = await _started()
    now = time.time()
    # An hour and more ago: out of the tool counts (the recent table still lists it).
    monitor.record(Activity(now - 4000, "#old", "Bob", "m", 1.0, True, tools=("web_search",)))
    monitor.record(
        Activity(
            now,
            "#general",
            "Alice",
            "gpt-test",
            2.5,
            True,
            channel_id=42,
            tier="high",
            ttft_s=0.42,
            tools=("web_search", "execute_python", "web_search"),
            failed_tools=("web_search",),
        )
    )
    monitor.record(Activity(now, "#general", "Alice", "-", 0.3, False, tier="base"))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{monitor.port}/status") as resp:
                body = await resp.json()
            async with http.get(f"http://127.0.0.1:{monitor.port}/") as resp:
                page = await resp.text()
        turn = body["recent"][1]
        assert (turn["tier"], turn["ttft_s"], turn["model"], turn["seconds"]) == (
            "high",
            0.42,
            "gpt-test",
            2.5,
        )
        assert turn["tools"] == ["web_search", "execute_python", "web_search"]
        assert body["tool_stats"] == {
            "web_search": {"calls": 2, "errors": 1},
            "execute_python": {"calls": 1, "errors": 0},
        }
        recent = _table(page, "recent")
        assert recent[1][3:] == [
            "high",
            "gpt-test",
            "0.42s",
            "2.5s",
            "web_search, execute_python, web_search",
            "ok",
        ]
        assert recent[0][3:] == ["base", "-", "–", "0.3s", "", "failed"]
        assert _table(page, "tools") == [["web_search", "2", "1"], ["execute_python", "1", "0"]]
    finally:
        await monitor.stop()


async def test_shards_and_streams_in_flight_are_on_the_page():
    shards = [
        {"id": 0, "count": 2, "open": True, "latency_ms": 41, "guilds": 3},
        {"id": 1, "count": 2, "open": False, "latency_ms": None, "guilds": 0},
    ]
    monitor = await _started(
        state=lambda: {"discord_connected": True, "shards": shards, "in_flight": 7}
    )
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{monitor.port}/") as resp,
        ):
            page = await resp.text()
        assert _table(page, "shards") == [
            ["0/2", "open", "41 ms", "3"],
            ["1/2", "closed", "–", "0"],
        ]
        assert '<p id="in-flight">7</p>' in page
        assert 'id="error-chart"' in page  # drawn by the script: see the browser test
    finally:
        await monitor.stop()


async def test_mood_is_sampled_with_no_page_open():
    # A page opened later must see the mood of the last hour, not start empty.
    asked = 0

    async def probe(channels: list[int]) -> dict:
        nonlocal asked
        asked += 1
        return {"mood": {str(c): {"dopamine": asked / 100} for c in channels}}

    monitor = await _started(probe=probe, mood_sample_s=0.01, mood_background_s=0.05)
    monitor.record(_turn())
    try:
        await asyncio.sleep(0.6)
        points = monitor.series()["mood"]["42"]
        assert len(points) >= 3, points
        assert [p[1]["dopamine"] for p in points] == sorted(p[1]["dopamine"] for p in points)
    finally:
        await monitor.stop()
    assert monitor._sampler is None
    stopped_at = asked
    await asyncio.sleep(0.2)
    assert asked == stopped_at, "the sampler kept asking after stop()"


async def test_mood_history_is_bounded():
    async def probe(channels: list[int]) -> dict:
        return {"mood": {str(c): {"dopamine": 0.5} for c in range(first[0], first[0] + 30)}}

    first = [0]  # the probe answers for 30 channels from this one
    monitor = await _started(probe=probe, mood_sample_s=0.0, mood_background_s=3600)
    monitor.record(_turn())
    try:
        for start in range(0, 300, 30):
            first[0] = start
            for _ in range(3):
                await monitor._probe()
        assert len(monitor.moods) == MOOD_CHANNELS
        assert sorted(map(int, monitor.moods)) == list(range(280, 300))
        for _ in range(MOOD_POINTS + 10):
            await monitor._probe()
        assert max(len(p) for p in monitor.moods.values()) == MOOD_POINTS
    finally:
        await monitor.stop()


@pytest.mark.slow
async def test_the_conversation_records_tier_first_text_and_tools():
    """Through the real Discord client and pipeline: the turn record the monitor
    gets carries what the pipeline's events said."""
    from tests.fakes.fake_llm import Reply, ToolCall
    from tests.support.discord_app import clara_on_discord
    from tools.registry import Tool, ToolError, ToolRegistry

    async def lookup(args, ctx):
        return "42"

    async def broken(args, ctx):
        raise ToolError("the lookup service is down")

    tools = ToolRegistry()
    schema = {"type": "object", "properties": {}}
    tools.register(Tool("lookup", "looks things up", schema, lookup))
    tools.register(Tool("broken", "always fails", schema, broken))
    records: list[Activity] = []
    async with clara_on_discord(tools=tools) as w:
        w.client.conversation.activity_sink = records.append
        w.llm.enqueue(
            Reply("", tool_calls=[ToolCall("lookup", {}), ToolCall("broken", {})]),
            Reply("It is 42.", first_token_delay=0.3),
        )
        await w.mention(w.alice, "what is the answer?")
        await w.discord.wait_until(lambda: records, timeout=20, what="the turn record")
        assert w.client.conversation.in_flight == 0
    (turn,) = records
    assert turn.ok and turn.channel_id == w.channel_id
    assert turn.tier == "base"  # no !prefix, no auto selection: the base model
    assert turn.tools == ("lookup", "broken") and turn.failed_tools == ("broken",)
    assert turn.ttft_s is not None and 0.3 <= turn.ttft_s <= turn.seconds


async def test_a_flood_of_turns_builds_few_snapshots_for_many_pages():
    # The monitor's cost must not grow with pages x turns: one snapshot per
    # REFRESH_S for all pages, the probe at most once per interval.
    built = asked = 0

    def state() -> dict:
        nonlocal built
        built += 1
        return {"discord_connected": True}

    async def probe(channels: list[int]) -> dict:
        nonlocal asked
        asked += 1
        return {"mood": {}}

    monitor = await _started(state=state, probe=probe, interval_s=1.0, mood_background_s=3600)
    try:
        async with aiohttp.ClientSession() as http:
            resps, streams = [], []
            for _ in range(5):  # opened apart: each page's own rhythm, as in life
                resps.append(await http.get(f"http://127.0.0.1:{monitor.port}/events"))
                streams.append(_events(resps[-1]))
                await asyncio.wait_for(anext(streams[-1]), 5)
                await asyncio.sleep(0.045)
            built0, asked0, t0 = built, asked, time.monotonic()
            for i in range(40):
                monitor.record(_turn(user=f"u{i}"))
                await asyncio.sleep(0.025)

            async def last_turn_arrives(stream) -> None:
                while len((await anext(stream))["recent"]) < 40:
                    pass

            # Every page still gets every turn, soon.
            await asyncio.wait_for(asyncio.gather(*map(last_turn_arrives, streams)), 5)
            took = time.monotonic() - t0
            for r in resps:
                r.close()
        assert built - built0 <= took / REFRESH_S + 2, (built - built0, took)
        assert asked - asked0 <= took / 1.0 + 2, (asked - asked0, took)
    finally:
        await monitor.stop()


async def test_pages_at_the_same_point_get_the_same_update_and_no_point_twice():
    # One update built for every page that has the same chart points; a page opened
    # between two updates gets the hour up to its opening, then only what is newer.
    monitor = await _started(interval_s=30.0)
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{monitor.port}/events"
            async with http.get(url) as a_resp:
                a = _events(a_resp)
                await asyncio.wait_for(anext(a), 5)
                first = _turn(user="first")
                monitor.record(first)
                a_first = await asyncio.wait_for(anext(a), 5)
                assert a_first.new_turns == [[first.at, 1.25, True]]
                async with http.get(url) as b_resp:
                    b = _events(b_resp)
                    b_open = await asyncio.wait_for(anext(b), 5)
                    assert b_open["series"]["turns"] == [[first.at, 1.25, True]]
                    second = _turn(user="second")
                    monitor.record(second)
                    a_next = await asyncio.wait_for(anext(a), 5)
                    b_next = await asyncio.wait_for(anext(b), 5)
        assert a_next.new_turns == [[second.at, 1.25, True]]
        assert a_next == b_next  # the same update, built once
        assert [r["user"] for r in b_next["recent"]] == [user_tag("second"), user_tag("first")]
    finally:
        await monitor.stop()


def test_tool_counts_follow_the_calls_without_recounting():
    monitor = Monitor(host="127.0.0.1", port=0)
    now = time.time()
    monitor.record(Activity(now - 4000, "#c", "u", "m", 1.0, True, tools=("old",)))
    for i in range(30):
        monitor.record(
            Activity(
                now,
                "#c",
                "u",
                "m",
                1.0,
                True,
                tools=("web_search", "execute_python"),
                failed_tools=("web_search",) if i % 3 == 0 else (),
            )
        )
    expected: dict[str, dict[str, int]] = {}
    for at, name, ok in monitor.tool_calls:
        if at >= now - 3600:
            entry = expected.setdefault(name, {"calls": 0, "errors": 0})
            entry["calls"] += 1
            entry["errors"] += 0 if ok else 1
    stats = monitor.tool_stats()
    assert (
        stats
        == expected
        == {
            "execute_python": {"calls": 30, "errors": 0},
            "web_search": {"calls": 30, "errors": 10},
        }
    )
    assert list(stats) == ["execute_python", "web_search"]  # busiest first, then by name
    assert [c[1] for c in monitor.tool_calls].count("old") == 0  # fell out of the hour


async def test_the_probe_is_asked_at_the_mood_charts_pace_while_pages_are_open():
    # Each probe is I/O (a Redis read per channel) and a new answer to encode for
    # the pages: asked once per mood sample, not at every tick or turn.
    asked = 0

    async def probe(channels: list[int]) -> dict:
        nonlocal asked
        asked += 1
        return {"mood": {str(c): {"dopamine": 0.5} for c in channels}}

    monitor = await _started(
        probe=probe, interval_s=0.05, refresh_s=0.05, mood_sample_s=0.5, mood_background_s=3600
    )
    monitor.record(_turn())
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{monitor.port}/events") as resp,
        ):
            stream = _events(resp)
            first = await asyncio.wait_for(anext(stream), 5)
            asked0, t0 = asked, time.monotonic()
            for i in range(30):
                monitor.record(_turn(user=f"u{i}"))
                await asyncio.sleep(0.05)
            took = time.monotonic() - t0
            while len((last := await asyncio.wait_for(anext(stream), 5))["recent"]) < 31:
                pass
        assert 1 <= asked - asked0 <= took / 0.5 + 1, (asked - asked0, took)
        # Between two answers the pages still show the last one, and the charts
        # still get a point per sample.
        assert first["mood"] == last["mood"] == {"42": {"dopamine": 0.5}}
        assert len(monitor.series()["mood"]["42"]) >= asked - asked0
    finally:
        await monitor.stop()


@pytest.mark.parametrize("overlap", [False, True])
async def test_the_events_carry_the_same_snapshot_as_status(overlap: bool):
    # The events' JSON is joined from parts encoded apart (the facts, the probe's
    # answer, each turn's row): it must read back as the very snapshot /status has.
    def state() -> dict:
        facts = {"discord_connected": True, "provider": 'o"pen\u00e9</script>'}
        if overlap:
            facts["mood"] = "replaced by the probe's"
        return facts

    async def probe(channels: list[int]) -> dict:
        return {"mood": {str(c): {"dopamine": 0.25} for c in channels}}

    monitor = await _started(state=state, probe=probe, interval_s=30.0)
    monitor.record(_turn(channel='#"quoted"\n'))
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{monitor.port}/events") as resp,
        ):
            first = await asyncio.wait_for(anext(_events(resp)), 5)
        snap = json.loads(json.dumps(await monitor.live_snapshot()))  # as /status sends it
        assert first.pop("series")["turns"]
        assert {**first, "uptime_s": None} == {**snap, "uptime_s": None}
        assert first["mood"] == {"42": {"dopamine": 0.25}}
        assert first["recent"][0]["channel"] == '#"quoted"\n'
    finally:
        await monitor.stop()


class Events:
    """A page's events read in the background, so a test can wait for the next one
    with a timeout (cancelling a read of the stream itself would close it)."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.queue: asyncio.Queue[PageState] = asyncio.Queue()
        self.task = asyncio.create_task(self._read(resp))

    async def _read(self, resp: aiohttp.ClientResponse) -> None:
        async for state in _events(resp):
            self.queue.put_nowait(state)

    async def next(self, timeout: float) -> PageState:
        if self.task.done():
            self.task.result()  # raises what ended the stream
            raise AssertionError("the event stream ended")
        return await asyncio.wait_for(self.queue.get(), timeout)

    def close(self) -> None:
        self.task.cancel()


async def _status(http: aiohttp.ClientSession, monitor: Monitor) -> dict:
    async with http.get(f"http://127.0.0.1:{monitor.port}/status") as resp:
        return await resp.json()


async def _until_page_shows_status(
    events: Events,
    http: aiohttp.ClientSession,
    monitor: Monitor,
    shows: Callable[[PageState], bool],
) -> PageState:
    """Reads the page's events until it ``shows`` what the test changed and what it
    holds is /status's snapshot (the uptime aside), its chart points /status's
    series; fails with the difference."""
    page: PageState | None = None
    status: dict = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            page = await events.next(0.3)
        if page is None or not shows(page):
            continue
        status = await _status(http, monitor)
        series = status.pop("series")
        shown = {k: v for k, v in page.items() if k not in ("series", "series_append")}
        if (
            {**shown, "uptime_s": None} == {**status, "uptime_s": None}
            and page.turns == series["turns"]
            and page.mood == series["mood"]
        ):
            return page
    raise AssertionError(
        f"the page never showed /status's snapshot:\npage   {page}\nstatus {status}"
    )


def _mood_is(page: dict, level: float) -> bool:
    return bool(page.get("mood")) and all(m == {"dopamine": level} for m in page["mood"].values())


async def test_deltas_applied_as_the_page_does_give_the_snapshot_status_shows():
    # The page gets the whole snapshot once, then only deltas.  Applied in order,
    # they must rebuild exactly what /status shows: facts that change, appear and
    # go, the probe's answer and its error, the tool counts, the recent turns past
    # the history's length, the chart points.
    facts: dict = {"discord_connected": True, "provider": "openai", "in_flight": 1}
    answer: dict = {"level": 0.5, "fail": False}

    async def probe(channels: list[int]) -> dict:
        if answer["fail"]:
            raise RuntimeError("redis went away")
        return {"mood": {str(c): {"dopamine": answer["level"]} for c in channels}}

    monitor = await _started(
        state=lambda: copy.deepcopy(facts),  # as the app's state(): new objects each call
        probe=probe,
        history=5,
        interval_s=0.1,
        refresh_s=0.05,
        mood_sample_s=0.1,
        mood_background_s=3600,
    )
    monitor.record(_turn(user="before the page"))
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{monitor.port}/events") as resp,
        ):
            events = Events(resp)
            first = await events.next(5)
            assert first.kind == "snapshot"
            steps = [
                # a fact changes, one appears, a nested one appears
                (
                    lambda: facts.update(in_flight=2, latency_ms=41, busy_channels={"7": 1}),
                    lambda page: page.get("in_flight") == 2,
                ),
                # a nested fact changes, one fact goes
                (
                    lambda: (facts["busy_channels"].update({"8": 2}), facts.pop("in_flight")),
                    lambda page: "in_flight" not in page,
                ),
                # the mood changes
                (lambda: answer.update(level=0.75), lambda page: _mood_is(page, 0.75)),
                # the probe fails: its error appears, the mood goes
                (lambda: answer.update(fail=True), lambda page: "probe_error" in page),
                # it answers again: the error goes, the mood is back
                (
                    lambda: answer.update(fail=False, level=0.25),
                    lambda page: "probe_error" not in page and _mood_is(page, 0.25),
                ),
                # nothing changes but the turns
                (lambda: None, lambda page: True),
            ]
            for i, (change, changed) in enumerate(steps):
                change()
                for j in range(i + 1):  # more turns than the history holds, in all
                    tools = ("web_search",) if j % 2 else ("lookup", "web_search")
                    monitor.record(
                        Activity(
                            time.time(),
                            f"#c{i}",
                            f"u{i}-{j}",
                            "gpt-test",
                            0.5 + j,
                            j % 3 != 0,
                            channel_id=40 + j,
                            tier="base",
                            ttft_s=0.1,
                            tools=tools,
                            failed_tools=tools[:1] if j % 2 else (),
                        )
                    )
                newest = user_tag(f"u{i}-{i}")
                page = await _until_page_shows_status(
                    events,
                    http,
                    monitor,
                    lambda page, changed=changed, newest=newest: (
                        page["recent"][0]["user"] == newest and changed(page)
                    ),
                )
                assert page.kind == "delta", f"step {i}: the page needed a whole snapshot"
                assert len(page["recent"]) == min(5, 1 + sum(range(1, i + 2)))
            events.close()
        assert "in_flight" not in page and page["busy_channels"] == {"7": 1, "8": 2}
        assert _mood_is(page, 0.25)
        assert "probe_error" not in page
        assert page["tool_stats"]["web_search"]["calls"] == sum(range(1, 7))
    finally:
        await monitor.stop()


async def test_an_update_sends_only_what_changed():
    # The cost of an update follows what changed, not the size of the page: a new
    # turn and a changed fact are sent, not the rows and facts the page has.
    facts = {"discord_connected": True, "provider": "openai", "in_flight": 0}
    monitor = await _started(state=lambda: dict(facts), interval_s=0.1, refresh_s=0.05)
    for i in range(50):
        monitor.record(_turn(user=f"old{i}", channel="#" + "x" * 200))
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{monitor.port}/events") as resp,
        ):
            events = Events(resp)
            first = await events.next(5)
            assert first.kind == "snapshot" and len(first["recent"]) == 50
            # Ticks with nothing new send nothing.
            with pytest.raises(TimeoutError):
                await events.next(0.5)
            facts["in_flight"] = 1
            new = _turn(user="new", channel="#" + "y" * 200)
            monitor.record(new)
            update = await events.next(5)
            events.close()
        assert update.kind == "delta"
        assert update.data["set"] == {"in_flight": 1} and update.data["unset"] == []
        assert [r[update.data["fields"].index("user")] for r in update.data["recent"]] == [
            user_tag("new")
        ]
        # The chart point is the row's own at/seconds/ok: not sent twice.
        assert update.data["series_append"]["turns"] == []
        assert update.new_turns == [[new.at, 1.25, True]]
        row = json.dumps(update.data["recent"][0])
        assert len(json.dumps(update.data)) < len(row) + 400, update.data
        # What the page holds: the new row first, the history's length kept.
        assert len(update["recent"]) == 50 and update["recent"][0]["channel"] == "#" + "y" * 200
        assert update["in_flight"] == 1 and update["provider"] == "openai"
    finally:
        await monitor.stop()


def test_record_only_appends_and_the_turns_are_folded_in_batches():
    # record() runs on every turn: it appends, and the rows, chart points and tool
    # counts are made in batches, bounded however long no page opens.
    monitor = Monitor(host="127.0.0.1", port=0)
    total = 3 * FOLD_AT + 7
    for i in range(total):
        monitor.record(_turn(user=f"u{i}") if i % 2 else replace(_turn(), tools=("lookup",)))
        assert len(monitor._pending) < FOLD_AT
    assert monitor._pending, "every record() folded: it does the per-turn work at once"
    assert len(monitor.turns) == total and monitor.version == total
    assert monitor.tool_stats() == {"lookup": {"calls": (total + 1) // 2, "errors": 0}}
