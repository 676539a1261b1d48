"""The monitor: a small local status page (DISCORD_MONITOR_ENABLED/PORT/HOST).

GET /health -> 200 {"status": "ok", ...} while Clara is connected to Discord and her
               storage answers, 503 {"status": "unhealthy", ...} otherwise (the body
               says which part is down); Docker's HEALTHCHECK uses it,
GET /status -> JSON (uptime, connection, servers, queue, recent activity),
GET /       -> the same as a small auto-refreshing page.
It listens on 127.0.0.1 by default: it shows who talked to Clara, which is
nobody else's business unless the operator opens it on purpose.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

#: A storage check slower than this counts as down (a health probe must answer).
STORAGE_CHECK_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Activity:
    at: float
    channel: str
    user: str
    model: str
    seconds: float
    ok: bool


class Monitor:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        state: Callable[[], dict[str, Any]] | None = None,
        storage_check: Callable[[], Awaitable[None]] | None = None,
        history: int = 50,
    ) -> None:
        self.host = host
        self.port = port
        self.state = state or (lambda: {})
        # Raises (with a redacted reason) when PostgreSQL or Redis does not answer.
        self.storage_check = storage_check
        self.started_at = time.time()
        self.activity: deque[Activity] = deque(maxlen=history)
        self._runner: web.AppRunner | None = None

    def record(self, activity: Activity) -> None:
        self.activity.append(activity)

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptime_s": round(time.time() - self.started_at, 1),
            **self.state(),
            "recent": [asdict(a) for a in reversed(self.activity)],
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

    async def _health(self, request: web.Request) -> web.Response:
        healthy, body = await self.health()
        return web.json_response(body, status=200 if healthy else 503)

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def _page(self, request: web.Request) -> web.Response:
        snap = self.snapshot()
        rows = "".join(
            f"<tr><td>{time.strftime('%H:%M:%S', time.localtime(a['at']))}</td><td>{html.escape(a['channel'])}</td>"
            f"<td>{html.escape(a['user'])}</td><td>{html.escape(a['model'])}</td><td>{a['seconds']:.1f}s</td>"
            f"<td>{'ok' if a['ok'] else 'failed'}</td></tr>"
            for a in snap["recent"]
        )
        facts = "".join(
            f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>"
            for k, v in snap.items()
            if k != "recent"
        )
        body = (
            "<!doctype html><meta http-equiv=refresh content=5><title>Clara</title>"
            f"<h1>Clara</h1><ul>{facts}</ul><table border=1 cellpadding=4>"
            "<tr><th>time</th><th>channel</th><th>user</th><th>model</th><th>took</th><th></th></tr>"
            f"{rows}</table>"
        )
        return web.Response(text=body, content_type="text/html")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/status", self._status)
        app.router.add_get("/", self._page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]  # when 0 was asked for
        log.info("monitor listening on http://%s:%s/", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
