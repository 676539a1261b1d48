"""Client for the sandbox service (``sandbox/service/``): SANDBOX_MODE=remote.

Implements the same Backend protocol over HTTP, so the manager and tools do
not know the difference.  Errors come back typed (path / quota / busy /
unavailable) and are re-raised as the same SandboxError subclasses; a service
that does not answer is ``SandboxUnavailable`` with its URL.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from .base import ExecResult, FileInfo, SandboxError, SandboxUnavailable
from .service.app import ERRORS

log = logging.getLogger(__name__)


class RemoteBackend:
    name = "remote"

    def __init__(
        self, url: str, api_key: str, *, request_timeout: float = 60.0, exec_timeout: float = 30.0
    ) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self.request_timeout = request_timeout
        self.exec_timeout = exec_timeout
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers)
        return self._session

    def _u(self, user: str, tail: str = "") -> str:
        return f"{self.url}/v1/sandboxes/{quote(user, safe='')}{tail}"

    async def _request(
        self, method: str, url: str, *, timeout: float | None = None, **kw: Any
    ) -> aiohttp.ClientResponse:
        try:
            resp = await self._http().request(
                method,
                url,
                timeout=aiohttp.ClientTimeout(total=timeout or self.request_timeout),
                **kw,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SandboxUnavailable(
                f"the sandbox service at {self.url} did not answer ({type(exc).__name__})"
            ) from exc
        if resp.status >= 400:
            try:
                body = await resp.json()
            except (aiohttp.ContentTypeError, ValueError):
                body = {"error": "sandbox", "message": (await resp.text())[:300]}
            kind, message = body.get("error", "sandbox"), body.get("message", "")
            if kind == "auth":
                raise SandboxUnavailable(
                    f"the sandbox service at {self.url} rejected the API key; check SANDBOX_API_KEY"
                )
            if kind == "bad_request":
                raise ValueError(message)
            cls = ERRORS.get(kind, (SandboxError, 500))[0]
            raise cls(message)
        return resp

    async def health(self) -> dict[str, Any]:
        resp = await self._request("GET", f"{self.url}/v1/health", timeout=10)
        data: dict[str, Any] = await resp.json()
        return data

    async def ensure(self, user: str) -> None:
        await self._request("POST", self._u(user))

    async def exec(
        self,
        user: str,
        argv: list[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        body: dict[str, Any] = {"argv": list(argv), "timeout": timeout}
        if stdin is not None:
            body["stdin_b64"] = base64.b64encode(stdin).decode()
        # The service enforces the command's limit; the request may take that
        # long plus a restart, plus the operator's margin (SANDBOX_TIMEOUT).
        limit = (timeout or self.exec_timeout) + self.request_timeout
        try:
            resp = await self._request("POST", self._u(user, "/exec"), json=body, timeout=limit)
        except asyncio.CancelledError:
            # Stop phrase: the HTTP request is gone, so make the service kill it.
            await asyncio.shield(self._recycle_quietly(user))
            raise
        data = await resp.json()
        return ExecResult(**data)

    async def _recycle_quietly(self, user: str) -> None:
        try:
            await self._request("POST", self._u(user, "/recycle"), timeout=10)
        except SandboxError as exc:
            log.warning("could not stop the remote command of %s: %s", user, exc)

    async def put_file(self, user: str, path: str, data: bytes) -> None:
        await self._request("PUT", self._u(user, "/files"), params={"path": path}, data=data)

    async def get_file(self, user: str, path: str, *, max_bytes: int | None = None) -> bytes:
        params = {"path": path}
        if max_bytes is not None:
            params["max_bytes"] = str(max_bytes)
        resp = await self._request("GET", self._u(user, "/files"), params=params)
        return await resp.read()

    async def list_files(self, user: str, path: str = ".") -> list[FileInfo]:
        resp = await self._request("GET", self._u(user, "/list"), params={"path": path})
        return [FileInfo(**f) for f in (await resp.json())["files"]]

    async def delete_file(self, user: str, path: str) -> None:
        await self._request("DELETE", self._u(user, "/files"), params={"path": path})

    async def recycle(self, user: str) -> None:
        await self._request("POST", self._u(user, "/recycle"))

    async def reap(self, user: str) -> None:
        await self._request("DELETE", self._u(user))

    async def live_sandboxes(self) -> list[str]:
        resp = await self._request("GET", f"{self.url}/v1/sandboxes")
        users: list[str] = (await resp.json())["users"]
        return users

    async def delete_user_data(self, user: str) -> None:
        await self._request("DELETE", self._u(user, "/data"))

    async def close(self) -> None:
        # The service owns its sandboxes (its own reaper); Clara only lets go.
        if self._session is not None:
            await self._session.close()
            self._session = None
