"""Fake PyPI: the PEP 503 simple index over real HTTP, serving wheels built in memory.

``pip download --index-url http://127.0.0.1:<port>/simple/`` talks to it like
to pypi.org (pip trusts loopback over plain HTTP).  Packages are declared as
``FakePackage(name, version, files, requires)``; each becomes a real
``py3-none-any`` wheel.  ``requests`` records every path asked for, so a
test can see what the host downloaded (and that the sandbox asked nothing).
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field

from aiohttp import web


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class FakePackage:
    name: str
    version: str
    files: dict[str, str]  # path inside site-packages -> text
    requires: list[str] = field(default_factory=list)

    @property
    def dist(self) -> str:
        return re.sub(r"[-_.]+", "_", self.name)

    @property
    def filename(self) -> str:
        return f"{self.dist}-{self.version}-py3-none-any.whl"

    def wheel(self) -> bytes:
        info = f"{self.dist}-{self.version}.dist-info"
        meta = f"Metadata-Version: 2.1\nName: {self.name}\nVersion: {self.version}\n"
        meta += "".join(f"Requires-Dist: {r}\n" for r in self.requires)
        entries = dict(self.files)
        entries[f"{info}/METADATA"] = meta
        entries[f"{info}/WHEEL"] = (
            "Wheel-Version: 1.0\nGenerator: fake-pypi\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        entries[f"{info}/RECORD"] = "".join(f"{p},,\n" for p in entries) + f"{info}/RECORD,,\n"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for path, text in entries.items():
                z.writestr(path, text)
        return buf.getvalue()


class FakePackageIndex:
    def __init__(self, packages: list[FakePackage]) -> None:
        self.packages = packages
        self.requests: list[str] = []
        self._wheels = {p.filename: p.wheel() for p in packages}
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    async def start(self) -> FakePackageIndex:
        app = web.Application()
        app.router.add_get("/simple/", self._root)
        app.router.add_get("/simple/{name}/", self._project)
        app.router.add_get("/files/{filename}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _root(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        names = sorted({normalize(p.name) for p in self.packages})
        links = "".join(f'<a href="/simple/{n}/">{n}</a>\n' for n in names)
        return web.Response(
            text=f"<!DOCTYPE html><html><body>\n{links}</body></html>", content_type="text/html"
        )

    async def _project(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        name = normalize(request.match_info["name"])
        found = [p for p in self.packages if normalize(p.name) == name]
        if not found:
            raise web.HTTPNotFound(text="404 Not Found")
        links = ""
        for p in found:
            digest = hashlib.sha256(self._wheels[p.filename]).hexdigest()
            links += f'<a href="/files/{p.filename}#sha256={digest}">{p.filename}</a>\n'
        return web.Response(
            text=f"<!DOCTYPE html><html><body>\n{links}</body></html>", content_type="text/html"
        )

    async def _file(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        data = self._wheels.get(request.match_info["filename"])
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="application/octet-stream")
