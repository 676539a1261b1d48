"""The dashboard's HTTP side: routes, the token check, the page and its event stream.

The page is rendered on the server (jinja2) with the snapshot of the moment, so it
shows something useful before any script runs; /events then pushes the snapshot
once and deltas after it (server-sent events: what changed, checked every tick and
when a turn is recorded, at most one update per refresh period: see
monitor.REFRESH_S), and the page's script (static/dashboard.js) applies them and
redraws in place.  Charts are uPlot, served from
static/ (no CDN: the page works on a machine without internet).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from clara_core.config.discord_settings import is_loopback
from clara_core.monitor import ActionRefused

if TYPE_CHECKING:
    from clara_core.monitor import Monitor

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
COOKIE = "clara_monitor"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["clock"] = lambda t: time.strftime("%H:%M:%S", time.localtime(t))


def _cookie_value(token: str) -> str:
    # The cookie holds a digest, not the token: a cookie jar that leaks does not
    # hand out the token that also opens the API with a Bearer header.
    return hmac.new(token.encode(), b"clara-monitor-cookie", hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _authorized(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and _same(header[len("Bearer ") :].strip(), token):
        return True
    cookie = request.cookies.get(COOKIE)
    return cookie is not None and _same(cookie, _cookie_value(token))


def _loopback_host(request: web.Request) -> bool:
    """The Host header names this machine.  Without a token the monitor trusts
    loopback; a page elsewhere whose name was re-pointed at 127.0.0.1 (DNS
    rebinding) arrives with its own name in Host and is turned away."""
    host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    # The settings' own rule (an IP in 127.0.0.0/8 or ::1, or "localhost"): a name
    # such as 127.0.0.1.example.com starts like loopback but resolves anywhere.
    return is_loopback(host)


def _auth_middleware(monitor: Monitor) -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        token = monitor.token
        if request.path == "/health":
            return await handler(request)
        if token is None:
            if not _loopback_host(request):
                raise web.HTTPMisdirectedRequest(
                    text="The monitor answers only to 127.0.0.1 or localhost without a token.\n"
                )
            return await handler(request)
        if _authorized(request, token):
            return await handler(request)
        given = request.query.get("token")
        if given is not None and _same(given, token):
            # ?token= once, from a link: it becomes an HttpOnly cookie and leaves the
            # address bar (and the browser history) at once.
            rest = {k: v for k, v in request.query.items() if k != "token"}
            target = request.path + (f"?{urlencode(rest)}" if rest else "")
            response = web.HTTPSeeOther(target)
            response.set_cookie(
                COOKIE,
                _cookie_value(token),
                httponly=True,
                samesite="Strict",
                path="/",
                secure=request.secure,
            )
            raise response
        raise web.HTTPUnauthorized(
            text=(
                "The monitor needs its token: send 'Authorization: Bearer <DISCORD_MONITOR_TOKEN>' "
                "or open /?token=<DISCORD_MONITOR_TOKEN> once in the browser.\n"
            ),
            headers={"WWW-Authenticate": 'Bearer realm="clara-monitor"'},
        )

    return check


def _cutter(transport: asyncio.Transport | None) -> Callable[[], None]:
    """What drops a page that stopped reading: its stream's write waits for a
    client that never reads, so the connection is cut from outside.  With a reset
    (SO_LINGER 0), not a close: a close would keep what the page never read in
    the kernel's send buffer until the client's window opened, i.e. maybe never."""

    def cut() -> None:
        if transport is None or transport.is_closing():
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()  # the stream's pending write then ends, and with it the handler

    return cut


def build_app(monitor: Monitor) -> web.Application:
    app = web.Application(middlewares=[_auth_middleware(monitor)])

    async def health(request: web.Request) -> web.Response:
        healthy, body = await monitor.health()
        return web.json_response(body, status=200 if healthy else 503)

    async def status(request: web.Request) -> web.Response:
        return web.json_response({**await monitor.live_snapshot(), "series": monitor.series()})

    async def page(request: web.Request) -> web.Response:
        snap = {**await monitor.live_snapshot(), "series": monitor.series()}
        text = _env.get_template("index.html").render(
            snap=snap,
            show_content=monitor.show_content,
            csrf=monitor.csrf,
            actions=sorted(monitor.actions),
            # Inside <script>: "<" escaped, so no text in the snapshot (a channel name,
            # an MCP error) can close the tag and run as markup.
            initial=json.dumps(snap).replace("<", "\\u003c"),
        )
        return web.Response(text=text, content_type="text/html")

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: do not hold events back
            }
        )
        await response.prepare(request)
        # The snapshot and the whole hour of chart points first; then what the
        # monitor's one feeder sends every page (built once for all of them).
        feed, first = await monitor.open_page(abort=_cutter(request.transport))
        try:
            await response.write(first)
            while (data := await feed.next()) is not None:
                await response.write(data)
        except (ConnectionResetError, ConnectionError):
            pass  # the page was closed, or dropped for not reading
        finally:
            monitor.close_page(feed)
        return response

    async def action(request: web.Request) -> web.Response:
        # A page on another site can make the browser POST here, cookie included
        # (or with no token at all on loopback); it cannot add this header without
        # a CORS preflight, which the monitor never grants.  A Bearer header
        # cannot be sent by such a page either, so scripts using it need no more.
        bearer = request.headers.get("Authorization", "").startswith("Bearer ")
        if not bearer and not _same(request.headers.get("X-CSRF-Token", ""), monitor.csrf):
            raise web.HTTPForbidden(
                text="Actions need the page's X-CSRF-Token header (or an Authorization header).\n"
            )
        name = request.match_info["name"]
        run = monitor.actions.get(name)
        if run is None:
            known = ", ".join(sorted(monitor.actions)) or "none while this part is off"
            return web.json_response(
                {"ok": False, "message": f"No action '{name}' (available: {known})."}, status=404
            )
        params = dict(request.query)
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return web.json_response(
                    {"ok": False, "message": "The body must be a JSON object."}, status=400
                )
            if isinstance(body, dict):
                params.update({str(k): str(v) for k, v in body.items()})
        log.info("monitor: operator action %s %s", name, params or "")
        try:
            message = await run(params)
        except ActionRefused as exc:
            return web.json_response({"ok": False, "message": str(exc)}, status=exc.status)
        return web.json_response({"ok": True, "message": message})

    app.router.add_get("/health", health)
    app.router.add_post("/actions/{name}", action)
    app.router.add_get("/status", status)
    app.router.add_get("/events", events)
    app.router.add_get("/", page)
    app.router.add_static("/static/", HERE / "static", append_version=False)
    return app
