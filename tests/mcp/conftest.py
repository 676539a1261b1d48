"""MCP test helpers: a supervisor with short timeouts, and the tiny local server."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from clara_core.llm.types import ToolCall
from clara_core.mcp import ServerConfig, Supervisor
from tools.registry import ToolContext, ToolRegistry, ToolResult

LOCAL_SERVER = Path(__file__).parent / "servers" / "local_server.py"


def local_config(name: str = "local", *args: str, **kw: object) -> ServerConfig:
    return ServerConfig(
        name,
        "local",
        str(LOCAL_SERVER),
        command=sys.executable,
        args=[str(LOCAL_SERVER), *args],
        **kw,  # type: ignore[arg-type]
    )


async def call(
    reg: ToolRegistry, tool: str, ctx: ToolContext | None = None, /, **args: object
) -> ToolResult:
    return await reg.call(ToolCall("c1", tool, json.dumps(args)), ctx or ToolContext("111"))


async def wait_for(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


MakeSupervisor = Callable[..., Awaitable[Supervisor]]


@pytest.fixture
async def make_supervisor(tmp_path: Path) -> AsyncIterator[MakeSupervisor]:
    made: list[Supervisor] = []

    async def make(
        configs: list[ServerConfig], registry: ToolRegistry | None = None, **options: object
    ) -> Supervisor:
        opts: dict[str, object] = {
            "connect_timeout": 20.0,
            "call_timeout": 20.0,
            "health_interval": 0.5,
            "backoff_base": 0.1,
            "backoff_max": 1.0,
            "stable_after": 5.0,
        }
        opts.update(options)
        sup = Supervisor(registry or ToolRegistry(), servers_dir=tmp_path / "servers", **opts)  # type: ignore[arg-type]
        made.append(sup)
        await sup.start(configs)
        return sup

    yield make
    for sup in made:
        await sup.aclose()
