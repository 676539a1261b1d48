"""The dashboard in a real browser: Clara runs as a process on the fake Discord and
fake LLM, headless Chromium (Debian's `chromium`) opens her monitor page, and the
test reads the DOM over the DevTools protocol (a websocket, spoken with aiohttp).
A message sent through the fake Discord must appear in the page without a reload;
a screenshot is saved beside the test's files.

Skipped, with the reason, where chromium is not installed (.ci/browser-setup.sh
installs it on CI).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import re
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_llm import FakeLLM, Reply
from tests.support.clara_process import clara_env, run_clara

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (apt-get install chromium, or run .ci/browser-setup.sh)",
    ),
]


class Page:
    """One browser tab over the DevTools protocol: just what the test needs."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            msg = await asyncio.wait_for(self.ws.receive_json(), 30)
            if msg.get("id") == call_id:  # events in between are not needed here
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def eval(self, expression: str, *, await_promise: bool = False) -> Any:
        result = await self.call(
            "Runtime.evaluate",
            expression=expression,
            returnByValue=True,
            awaitPromise=await_promise,
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 20, what: str = "") -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await self.eval(expression)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the page never showed {what or expression}")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[Page]:
    assert CHROMIUM is not None
    args = [
        CHROMIUM,
        "--headless=new",
        "--remote-debugging-port=0",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--disable-gpu",
        "--no-first-run",
        "--window-size=1280,1000",
        "about:blank",
    ]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium refuses to start its sandbox as root
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stderr is not None
        endpoint = None
        async with asyncio.timeout(30):
            while endpoint is None:
                line = (await proc.stderr.readline()).decode()
                if not line:
                    raise AssertionError("chromium exited before its DevTools endpoint opened")
                m = re.search(r"DevTools listening on (ws://[^/]+)/", line)
                endpoint = m.group(1) if m else None
        # Keep reading its chatter (dbus, GPU warnings), or a full pipe would stall it.
        drain = asyncio.create_task(proc.stderr.read())
        http_base = endpoint.replace("ws://", "http://")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{http_base}/json/list") as resp:
                targets = await resp.json()
            page_ws = next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"]
            async with http.ws_connect(page_ws, max_msg_size=0) as ws:
                yield Page(ws)
        drain.cancel()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the browser and the helpers it started
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)


async def _page_matches_status(page: Page, timeout: float = 20) -> None:
    """The page's state (dashboard.js: the first snapshot with every delta applied)
    equals a /status fetched at the same moment, the uptime aside."""
    shown: dict[str, Any] = {}
    status: dict[str, Any] = {}
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        shown, status, turns = await page.eval(
            "(async () => { const r = await fetch('/status');"
            " const d = window.claraDashboard;"
            " return [d.state(), await r.json(), d.points().turns]; })()",
            await_promise=True,
        )
        series = status.pop("series")
        if {**shown, "uptime_s": None} == {**status, "uptime_s": None} and (
            turns == series["turns"]
        ):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(
        f"the page's state never matched /status:\npage   {shown}\nstatus {status}"
    )


async def test_dashboard_shows_clara_live_in_a_real_browser(tmp_path):
    async with (
        FakeDiscord(heartbeat_interval_ms=1000) as discord_fake,
        FakeLLM(api_keys={"k"}) as llm,
    ):
        alice = discord_fake.add_user("alice", global_name="Alice")
        guild = discord_fake.add_guild("Home", members=[alice.id])
        channel = guild.text_channels[0]
        env = clara_env(
            tmp_path,
            DISCORD_BOT_TOKEN=discord_fake.token,
            DISCORD_API_BASE=discord_fake.api_base,
            DISCORD_GATEWAY_URL=discord_fake.gateway_url,
            LLM_PROVIDER="openai",
            CUSTOM_OPENAI_API_KEY="k",
            CUSTOM_OPENAI_BASE_URL=llm.openai_base_url,
            DISCORD_MONITOR_PORT="0",
        )
        log = tmp_path / "data" / "clara.log"
        try:
            started = await asyncio.to_thread(run_clara, "--daemon", env=env, cwd=tmp_path)
            assert started.returncode == 0, started.stderr
            await discord_fake.wait_until(
                lambda: "connected to Discord" in log.read_text(), timeout=30
            )
            await discord_fake.wait_until(
                lambda: "monitor listening" in log.read_text(), timeout=30, what="the monitor"
            )
            port = re.search(r"monitor listening on http://127.0.0.1:(\d+)/", log.read_text())
            url = f"http://127.0.0.1:{port.group(1)}/"

            async with chromium(tmp_path) as page:
                await page.call("Page.enable")
                await page.call("Runtime.enable")
                await page.call("Page.navigate", url=url)
                await page.wait_for(
                    "document.getElementById('live')?.textContent === 'live'",
                    what="the live badge (the event stream open)",
                )
                assert await page.eval("document.getElementById('connection').textContent") == (
                    "connected"
                )
                assert await page.eval("document.getElementById('provider').textContent") == (
                    "openai"
                )
                assert await page.eval("document.querySelectorAll('#recent tr').length") == 0
                # The chart library loaded from Clara herself (no network to fetch it from).
                assert await page.eval("typeof uPlot") == "function"
                navigations = await page.eval("performance.getEntriesByType('navigation').length")

                llm.enqueue(Reply("Hello from the real process!"))
                await discord_fake.send_message(
                    channel.id, alice.id, f"<@{discord_fake.bot.id}> hi there"
                )
                row = await page.wait_for(
                    "document.querySelector('#recent tr')?.innerText",
                    timeout=30,
                    what="the new turn in the recent turns table",
                )
                assert f"#{channel.name}" in row and "ok" in row
                # The turn's tier and time to first text (the fake streams at once).
                cells = await page.eval(
                    "[...document.querySelector('#recent tr').children].map(td => td.innerText)"
                )
                assert cells[3] == "base" and re.fullmatch(r"\d+\.\d\ds", cells[5]), cells
                # The page got the turn as a delta; what it built from the snapshot
                # and the deltas since is what /status shows (facts, recent turns,
                # chart points), sampled until both are of the same moment.
                await _page_matches_status(page)
                # One shard, open; no reply streaming any more.
                shard = await page.wait_for(
                    "document.querySelector('#shards tr')?.innerText", what="the shard row"
                )
                assert shard.split("\t")[:2] == ["0/1", "open"], shard
                await page.wait_for(
                    "document.getElementById('in-flight').textContent === '0'",
                    what="no stream in flight",
                )
                # The error-rate chart: failed turns per minute over the hour.
                await page.wait_for(
                    "document.querySelector('#error-chart canvas') !== null",
                    what="the error-rate chart",
                )
                per_minute = await page.eval(
                    "(() => { const now = Date.now() / 1000;"
                    " return window.claraDashboard.failedPerMinute("
                    "[[now - 5, 1, false], [now - 5, 2, false], [now - 5, 1, true],"
                    " [now - 7200, 1, false]], now); })()"
                )
                assert len(per_minute[0]) == 60 and sum(per_minute[1]) == 2, per_minute
                assert "Alice" not in row  # names hidden: CLARA_MONITOR_SHOW_CONTENT is off
                assert re.search(r"user-[0-9a-f]{8}", row)
                # The same document: updated in place, not reloaded.
                assert await page.eval("performance.getEntriesByType('navigation').length") == (
                    navigations
                )
                assert await page.eval("performance.navigation.type") == 0
                await page.wait_for(
                    "document.querySelector('#latency-chart canvas') !== null",
                    what="the latency chart",
                )
                # An operator action from the page: the button POSTs with the page's
                # CSRF token, Clara's Cortex flushes its outbox, the answer shows.
                await page.eval(
                    "document.querySelector('button[data-action=drain-outbox]').click()"
                )
                result = await page.wait_for(
                    "document.getElementById('action-result').className === 'ok'"
                    " && document.getElementById('action-result').textContent",
                    what="the drain-outbox answer",
                )
                assert result == "drain-outbox: 0 write(s) stored, 0 pending"
                shot = await page.call("Page.captureScreenshot", format="png")
                png = base64.b64decode(shot["data"])
                (tmp_path / "dashboard.png").write_bytes(png)
                assert png.startswith(b"\x89PNG") and len(png) > 10_000
                print(f"dashboard screenshot: {tmp_path / 'dashboard.png'}")
            # The same guard for a script: no CSRF header, no action; the answer to a
            # wrong server name lists the real ones.
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{url}actions/mcp-restart?server=nope") as resp:
                    assert resp.status == 403
                async with http.get(url) as resp:
                    csrf = re.search(r'name="csrf-token" content="([^"]+)"', await resp.text())
                async with http.post(
                    f"{url}actions/mcp-restart?server=nope",
                    headers={"X-CSRF-Token": csrf.group(1)},
                ) as resp:
                    answer = await resp.json()
            assert answer["ok"] is False and "nope" in answer["message"], answer
        finally:
            stopped = await asyncio.to_thread(run_clara, "--stop", env=env, cwd=tmp_path)
        assert stopped.returncode == 0
