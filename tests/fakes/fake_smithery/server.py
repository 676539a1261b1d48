"""Fake Smithery over real HTTP on loopback: registry lookup + hosted-server gateway.

What the real service does and the fake reproduces (Smithery's API reference:
"Get a server", and "Connect to MCPs"):

- ``GET /servers/{qualifiedName}`` (the slash may come as ``%2F``) with
  ``Authorization: Bearer <SMITHERY_API_KEY>``; a missing or wrong key is 401
  ``{"error": "Unauthorized"}``, an unknown server 404 ``{"error": "Server not
  found"}``.  The answer: ``qualifiedName``, ``displayName``, ``description``,
  ``remote``, ``deploymentUrl``, ``connections`` (``{"type": "http",
  "deploymentUrl", "configSchema"}`` for a hosted server, ``{"type": "stdio",
  "bundleUrl", "runtime", "configSchema"}`` for one that only runs locally),
  ``security``, ``tools``.
- The gateway ``/{qualifiedName}/mcp`` speaks streamable HTTP; it wants the same
  bearer key (401 otherwise) and passes the server's configuration through as
  request headers and query parameters.  Here it forwards every request (POST,
  GET for the event stream, DELETE) to a real MCP server's ``/mcp`` endpoint and
  streams the answer back, so the client speaks to a real server through it.

``add_server`` registers a hosted server (its upstream MCP URL) or a local-only
one; ``lookups`` and ``proxied`` record what arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp import web

#: Headers the gateway hands to the upstream server (the MCP ones, and content negotiation).
_FORWARD = ("content-type", "accept", "mcp-session-id", "mcp-protocol-version", "last-event-id")
_BACK = ("content-type", "mcp-session-id", "cache-control")


@dataclass
class ProxiedRequest:
    method: str
    qualified_name: str
    headers: dict[str, str]
    query: dict[str, str]


@dataclass
class _Server:
    qualified_name: str
    upstream: str | None  # the real MCP endpoint; None: not hosted (stdio only)
    config_schema: dict[str, Any] = field(default_factory=dict)


class FakeSmithery:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.servers: dict[str, _Server] = {}
        self.lookups: list[str] = []
        self.proxied: list[ProxiedRequest] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    def add_server(
        self,
        qualified_name: str,
        upstream: str | None,
        config_schema: dict[str, Any] | None = None,
    ) -> None:
        self.servers[qualified_name] = _Server(qualified_name, upstream, config_schema or {})

    # -- lifecycle --------------------------------------------------------------
    async def __aenter__(self) -> FakeSmithery:
        app = web.Application()
        app.router.add_get("/servers/{qn:.+}", self._lookup)
        app.router.add_route("*", "/{qn:.+}/mcp", self._gateway)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- endpoints --------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def _lookup(self, request: web.Request) -> web.Response:
        qn = unquote(request.match_info["qn"])
        self.lookups.append(qn)
        if not self._authorized(request):
            return web.json_response({"error": "Unauthorized"}, status=401)
        server = self.servers.get(qn)
        if server is None:
            return web.json_response({"error": "Server not found"}, status=404)
        if server.upstream is not None:
            deployment = f"{self.base_url}/{qn}"
            connections = [
                {
                    "type": "http",
                    "deploymentUrl": f"{deployment}/mcp",
                    "configSchema": server.config_schema,
                }
            ]
        else:
            deployment = None
            connections = [
                {
                    "type": "stdio",
                    "bundleUrl": f"{self.base_url}/bundles/{qn}.mcpb",
                    "runtime": "node",
                    "configSchema": server.config_schema,
                }
            ]
        return web.json_response(
            {
                "qualifiedName": qn,
                "displayName": qn.rsplit("/", 1)[-1].replace("-", " ").title(),
                "description": f"The {qn} server",
                "iconUrl": None,
                "remote": server.upstream is not None,
                "deploymentUrl": deployment,
                "connections": connections,
                "security": {"scanPassed": True},
                "tools": None,
            }
        )

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        qn = request.match_info["qn"]
        self.proxied.append(
            ProxiedRequest(request.method, qn, dict(request.headers), dict(request.query))
        )
        if not self._authorized(request):
            return web.json_response({"error": "Unauthorized"}, status=401)
        server = self.servers.get(qn)
        if server is None or server.upstream is None:
            return web.json_response({"error": "Server not found"}, status=404)
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARD}
        body = await request.read()
        async with self._http.request(
            request.method, server.upstream, headers=headers, data=body or None
        ) as upstream:
            response = web.StreamResponse(status=upstream.status)
            for k, v in upstream.headers.items():
                if k.lower() in _BACK:
                    response.headers[k] = v
            await response.prepare(request)
            # Streamed as it comes: an SSE answer must reach the client before it ends.
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
