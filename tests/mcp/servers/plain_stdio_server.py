"""A minimal MCP server over stdio in pure Python (no SDK), for images without the SDK.

It speaks the real protocol (JSON-RPC 2.0, one message per line): ``initialize``
(answering with the client's protocol version), ``notifications/initialized``,
``ping``, ``tools/list`` and ``tools/call``.  Tools: ``echo``, ``env_keys`` (the
names of the variables it received), ``env_value`` and ``cgroup`` (the memory and
pids limits it runs under, read from cgroup v1 or v2).  Used by the Docker install
test, baked into an image built FROM clara-sandbox:bookworm.  ``--linger``: keep
running after stdin ends (a server whose container outlives its client).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

TOOLS: list[dict[str, Any]] = [
    {
        "name": "echo",
        "description": "Echo the text back.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    },
    {
        "name": "env_keys",
        "description": "The names of the environment variables this server received.",
        "inputSchema": {"type": "object", "properties": {}},
    },
    {
        "name": "env_value",
        "description": "One environment variable's value.",
        "inputSchema": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        },
    },
    {
        "name": "cgroup",
        "description": "The memory and process limits this server runs under.",
        "inputSchema": {"type": "object", "properties": {}},
    },
]


def _read(*paths: str) -> str:
    for p in paths:
        try:
            return Path(p).read_text().strip()
        except OSError:
            continue
    return "?"


def _call(name: str, args: dict[str, Any]) -> tuple[str, bool]:
    if name == "echo":
        return f"echo: {args.get('text', '')}", False
    if name == "env_keys":
        return ",".join(sorted(os.environ)), False
    if name == "env_value":
        return os.environ.get(str(args.get("name")), "<unset>"), False
    if name == "cgroup":
        memory = _read("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        pids = _read("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max")
        return f"memory={memory} pids={pids}", False
    return f"unknown tool {name}", True


def _answer(msg: dict[str, Any]) -> dict[str, Any] | None:
    method = msg.get("method")
    if "id" not in msg:  # a notification (notifications/initialized, cancelled): no answer
        return None
    params = msg.get("params") or {}
    if method == "initialize":
        result: dict[str, Any] = {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "clara-plain-stdio", "version": "1.0"},
        }
    elif method == "ping":
        result = {}
    elif method == "tools/list":
        result = {"tools": TOOLS}
    elif method == "tools/call":
        text, is_error = _call(str(params.get("name")), params.get("arguments") or {})
        result = {"content": [{"type": "text", "text": text}], "isError": is_error}
    else:
        return {
            "jsonrpc": "2.0",
            "id": msg["id"],
            "error": {"code": -32601, "message": f"Method not found: {method}"},
        }
    return {"jsonrpc": "2.0", "id": msg["id"], "result": result}


def main() -> None:
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            out: dict[str, Any] | None = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32700, "message": "Parse error"},
            }
        else:
            out = _answer(msg)
        if out is not None:
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()
    if "--linger" in sys.argv:
        # Like a server with background work: it outlives the end of its stdin, so
        # its container outlives a killed `docker run` client.
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
