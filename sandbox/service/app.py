"""HTTP API over a SandboxManager (aiohttp).

Every request needs ``Authorization: Bearer <SANDBOX_API_KEY>`` (compared in
constant time).  The manager underneath brings the per-user lifecycle, the
max-sandboxes cap and the idle reaper; the backend (Docker or bwrap) brings
the isolation.  Errors come back as JSON ``{"error": kind, "message": …}``
with the kind naming the SandboxError subclass, so the client re-raises the
same class and callers cannot tell remote from local.
"""

from __future__ import annotations

import base64
import hmac
import logging
from dataclasses import asdict
from typing import Any

from aiohttp import web

from ..base import (
    SandboxBusy,
    SandboxError,
    SandboxPathError,
    SandboxQuotaExceeded,
    SandboxUnavailable,
)
from ..manager import SandboxManager

log = logging.getLogger(__name__)

MANAGER: web.AppKey[SandboxManager] = web.AppKey("manager", SandboxManager)
API_KEY: web.AppKey[str] = web.AppKey("api_key", str)

# kind on the wire -> (exception class, HTTP status)
ERRORS: dict[str, tuple[type[SandboxError], int]] = {
    "path": (SandboxPathError, 400),
    "quota": (SandboxQuotaExceeded, 507),
    "busy": (SandboxBusy, 429),
    "unavailable": (SandboxUnavailable, 503),
    "sandbox": (SandboxError, 500),
}
MAX_USER_LEN = 200


def _error(kind: str, message: str, status: int) -> web.Response:
    return web.json_response({"error": kind, "message": message}, status=status)


@web.middleware
async def _auth_and_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    header = request.headers.get("Authorization", "")
    given = header[7:] if header.startswith("Bearer ") else ""
    if not hmac.compare_digest(given.encode(), request.app[API_KEY].encode()):
        return _error("auth", "missing or wrong API key (Authorization: Bearer …)", 401)
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except SandboxError as exc:
        for kind, (cls, status) in ERRORS.items():
            if type(exc) is cls:
                return _error(kind, str(exc), status)
        return _error("sandbox", str(exc), 500)
    except (ValueError, TypeError, KeyError) as exc:
        return _error("bad_request", f"bad request: {exc}", 400)


def _user(request: web.Request) -> str:
    user = request.match_info["user"]
    if not user or len(user) > MAX_USER_LEN:
        raise ValueError(f"user ids are 1 to {MAX_USER_LEN} characters")
    return user


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, **request.app[MANAGER].status()})


async def _list_sandboxes(request: web.Request) -> web.Response:
    return web.json_response({"users": await request.app[MANAGER].backend.live_sandboxes()})


async def _exec(request: web.Request) -> web.Response:
    body = await request.json()
    argv = body["argv"]
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("argv must be a non-empty list of strings")
    stdin = base64.b64decode(body["stdin_b64"]) if body.get("stdin_b64") is not None else None
    timeout = body.get("timeout")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError("timeout must be a positive number")
    result = await request.app[MANAGER].exec(_user(request), argv, stdin=stdin, timeout=timeout)
    return web.json_response(asdict(result))


async def _put_file(request: web.Request) -> web.Response:
    data = await request.read()
    await request.app[MANAGER].put_file(_user(request), request.query["path"], data)
    return web.Response(status=204)


async def _get_file(request: web.Request) -> web.Response:
    max_bytes = request.query.get("max_bytes")
    data = await request.app[MANAGER].get_file(
        _user(request), request.query["path"], max_bytes=int(max_bytes) if max_bytes else None
    )
    return web.Response(body=data, content_type="application/octet-stream")


async def _delete_file(request: web.Request) -> web.Response:
    await request.app[MANAGER].delete_file(_user(request), request.query["path"])
    return web.Response(status=204)


async def _list_files(request: web.Request) -> web.Response:
    files = await request.app[MANAGER].list_files(_user(request), request.query.get("path", "."))
    return web.json_response({"files": [asdict(f) for f in files]})


async def _ensure(request: web.Request) -> web.Response:
    await request.app[MANAGER].ensure(_user(request))
    return web.Response(status=204)


async def _recycle(request: web.Request) -> web.Response:
    await request.app[MANAGER].recycle(_user(request))
    return web.Response(status=204)


async def _reap(request: web.Request) -> web.Response:
    await request.app[MANAGER].reap(_user(request))
    return web.Response(status=204)


async def _delete_data(request: web.Request) -> web.Response:
    await request.app[MANAGER].delete_user_data(_user(request))
    return web.Response(status=204)


def create_app(
    manager: SandboxManager, api_key: str, *, max_body: int = 110 * 1024 * 1024
) -> web.Application:
    if len(api_key) < 16:
        raise SandboxUnavailable("SANDBOX_API_KEY must be at least 16 characters")
    app = web.Application(middlewares=[_auth_and_errors], client_max_size=max_body)
    app[MANAGER] = manager
    app[API_KEY] = api_key
    r = app.router
    r.add_get("/v1/health", _health)
    r.add_get("/v1/sandboxes", _list_sandboxes)
    r.add_post("/v1/sandboxes/{user}", _ensure)
    r.add_post("/v1/sandboxes/{user}/exec", _exec)
    r.add_put("/v1/sandboxes/{user}/files", _put_file)
    r.add_get("/v1/sandboxes/{user}/files", _get_file)
    r.add_delete("/v1/sandboxes/{user}/files", _delete_file)
    r.add_get("/v1/sandboxes/{user}/list", _list_files)
    r.add_post("/v1/sandboxes/{user}/recycle", _recycle)
    r.add_delete("/v1/sandboxes/{user}", _reap)
    r.add_delete("/v1/sandboxes/{user}/data", _delete_data)

    async def on_startup(app: web.Application) -> None:
        app[MANAGER].start()

    app.on_startup.append(on_startup)
    return app


async def start_service(
    manager: SandboxManager, api_key: str, *, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Start the service; return the runner (``await runner.cleanup()``) and its base URL."""
    runner = web.AppRunner(create_app(manager, api_key), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
    return runner, f"http://{bound[0]}:{bound[1]}"
