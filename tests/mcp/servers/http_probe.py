"""Run inside a private network namespace (``unshare -n``): start server-everything's
streamable-HTTP transport there (it binds all interfaces, but the namespace has only
``lo``), connect Clara's supervisor to it over HTTP, call everything__echo and
everything__get-tiny-image, and print the results as JSON.

Usage: python http_probe.py <path to server-everything's dist/index.js>
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clara_core.llm.types import ToolCall
from clara_core.mcp import ServerConfig, Supervisor
from tools.registry import ToolContext, ToolRegistry

PORT = 3917


def _wait_port(deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", PORT)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit("server-everything did not listen in time")


async def probe() -> dict[str, object]:
    reg = ToolRegistry()
    sup = Supervisor(reg, servers_dir=Path(tempfile.mkdtemp()), connect_timeout=20)
    cfg = ServerConfig(
        "everything",
        "npm",
        "@modelcontextprotocol/server-everything",
        transport="http",
        url=f"http://127.0.0.1:{PORT}/mcp",
        headers={"X-Clara-Test": "1"},
    )
    t0 = time.monotonic()
    await sup.start([cfg])
    started = time.monotonic() - t0
    ctx = ToolContext("1")
    echo = await reg.call(
        ToolCall("1", "everything__echo", json.dumps({"message": "over http"})), ctx
    )
    img = await reg.call(ToolCall("2", "everything__get-tiny-image", "{}"), ctx)
    status = sup.status()
    await sup.aclose()
    return {
        "started_s": started,
        "echo": echo.content,
        "echo_error": echo.is_error,
        "image": img.content,
        "status": status,
        "after_close": sup.status(),
    }


def main() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    node = subprocess.Popen(
        ["node", sys.argv[1], "streamableHttp"],
        env={**{k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}, "PORT": str(PORT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(time.monotonic() + 20)
        print(json.dumps(asyncio.run(probe()), default=str))
    finally:
        node.kill()
        node.wait()


if __name__ == "__main__":
    main()
