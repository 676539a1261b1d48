"""Tool benchmarks: ``python bench/tools.py`` (or ``python bench/run.py tools``).

- github: ``github_list_issues`` with limit=300 through the ToolRegistry against the
  loopback fake GitHub (tests/fakes/fake_github): GitHub's ``per_page`` is at most
  100, so that is 3 pages followed through ``Link: rel="next"``.  Prints the pages
  fetched, the time per listing (p50/p95; loopback, so this is Clara's own cost:
  HTTP client, JSON decoding, trimming) and how much trimming saves against the raw
  JSON GitHub sent.

- mcp calls: tool-call overhead through the registry (p50/p95) for a built-in tool,
  an MCP tool over stdio and one over streamable HTTP (the SDK test server
  tests/mcp/servers/local_server.py, its ``echo``).
- mcp start-up: ``Supervisor.start`` with 1 and with 5 enabled servers, for the SDK
  server (~0.5 s of CPU importing the SDK each) and for the pure-Python server
  tests/mcp/servers/plain_stdio_server.py (no SDK: what is left is Clara's own
  cost).  Goal: five start within the slowest alone + 200 ms.  Also each server's
  own time to running (``started_at``), to see whether the starts overlap, and
  the shutdown.

``BENCH_GITHUB_RUNS`` sets the GitHub repetitions (default 20), ``BENCH_MCP_RUNS``
the start-up repetitions (default 3), ``BENCH_MCP_CALLS`` the calls (default 200).
``python bench/tools.py github|mcp`` runs one part.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # also when run directly: python bench/tools.py

from bench.common import summary  # noqa: E402

GITHUB_RUNS = int(os.environ.get("BENCH_GITHUB_RUNS", "20"))
ISSUES = 300


async def github_listing(runs: int = GITHUB_RUNS) -> dict[str, float]:
    from clara_core.config import Settings
    from clara_core.llm.types import ToolCall
    from tests.fakes.fake_github import FakeGitHub
    from tools.github import register_github_tools
    from tools.registry import ToolContext, ToolRegistry

    token = "ghp_bench"
    async with FakeGitHub(tokens={token: "bench"}) as gh:
        repo = gh.add_repo("bench", "big")
        repo.add_issues(ISSUES, body="Steps to reproduce:\n" + "- a step\n" * 20)
        registry = ToolRegistry()
        settings = Settings(_env_file=None, github_token=token, github_api_url=gh.base_url)  # type: ignore[call-arg]
        client = register_github_tools(registry, settings)
        assert client is not None
        call = ToolCall("b", "github_list_issues", json.dumps(
            {"owner": "bench", "repo": "big", "limit": ISSUES}))  # fmt: skip
        ctx = ToolContext("bench")
        try:
            await registry.call(call, ctx)  # warm-up: the client's connection pool
            times, pages = [], []
            for _ in range(runs):
                before = len(gh.requests)
                t0 = time.perf_counter()
                result = await registry.call(call, ctx)
                times.append(time.perf_counter() - t0)
                pages.append(len(gh.requests) - before)
                assert not result.is_error, result.content
        finally:
            await client.aclose()
    shown = sum(1 for line in result.content.splitlines() if line.startswith("- #"))
    raw = len(json.dumps(repo.issues))
    print(f"github_list_issues limit={ISSUES}: {shown} issues, pages fetched {pages[-1]}")
    print(f"  time per listing: {summary(times, 'ms', 1000)}")
    print(f"  answer {len(result.content)} chars vs raw JSON {raw} chars "
          f"({raw / len(result.content):.0f}x smaller)")  # fmt: skip
    return {"pages": pages[-1], "p50_s": sorted(times)[len(times) // 2]}


MCP_RUNS = int(os.environ.get("BENCH_MCP_RUNS", "3"))
MCP_CALLS = int(os.environ.get("BENCH_MCP_CALLS", "200"))
SERVERS = ROOT / "tests" / "mcp" / "servers"


def _configs(kind: str, n: int) -> list:
    from clara_core.mcp import ServerConfig

    script = SERVERS / ("local_server.py" if kind == "sdk" else "plain_stdio_server.py")
    return [
        ServerConfig(f"{kind}{i}", "local", str(script), command=sys.executable, args=[str(script)])
        for i in range(n)
    ]


async def _timed_start(kind: str, n: int, tmp: Path) -> tuple[float, list[float], float, float]:
    """(start-up, each server's time to running, shutdown, Clara's CPU for the start) in s."""
    from clara_core.mcp import ServerState, Supervisor
    from tools.registry import ToolRegistry

    sup = Supervisor(ToolRegistry(), servers_dir=tmp, connect_timeout=60)
    t0, cpu0 = time.monotonic(), time.process_time()
    await sup.start(_configs(kind, n))
    total, cpu = time.monotonic() - t0, time.process_time() - cpu0
    each = [(r.started_at or t0) - t0 for r in sup.runners.values()]
    assert all(r.state is ServerState.RUNNING for r in sup.runners.values()), sup.status()
    t1 = time.monotonic()
    await sup.aclose()
    return total, each, time.monotonic() - t1, cpu


async def mcp_startup(runs: int = MCP_RUNS) -> dict[str, float]:
    import tempfile

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        await _timed_start("plain", 1, Path(tmp))  # warm the page cache, not measured
        for kind in ("plain", "sdk"):
            one = [(await _timed_start(kind, 1, Path(tmp)))[0] for _ in range(runs)]
            five = [await _timed_start(kind, 5, Path(tmp)) for _ in range(runs)]
            totals = [f[0] for f in five]
            slowest_alone = max(one)
            print(f"mcp start-up, {kind} server: 1 server {summary(one)}")
            print(
                f"  5 servers {summary(totals)}; goal <= slowest alone + 0.2 s = "
                f"{slowest_alone + 0.2:.3f}s: {'met' if max(totals) <= slowest_alone + 0.2 else 'not met'}"
            )
            last_each = sorted(five[-1][1])
            print(
                "  each server running after (last run): "
                + ", ".join(f"{x:.3f}s" for x in last_each)
            )
            print(f"  5 servers stop in {summary([f[2] for f in five])}")
            print(
                f"  Clara's own CPU for starting 5 (this process): {summary([f[3] for f in five])}"
            )
            out[f"{kind}_one_s"] = statistics.median(one)
            out[f"{kind}_five_s"] = statistics.median(totals)
    return out


async def mcp_calls(n: int = MCP_CALLS) -> dict[str, float]:
    import socket
    import tempfile

    from clara_core.llm.types import ToolCall
    from clara_core.mcp import ServerConfig, Supervisor
    from tools.registry import Tool, ToolContext, ToolRegistry

    registry = ToolRegistry()

    async def echo(args: dict, ctx: ToolContext) -> str:
        return f"echo: {args['text']}"

    registry.register(
        Tool(
            "builtin_echo",
            "Echo.",
            {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
            echo,
        )
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = SERVERS / "local_server.py"
    http_proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        "--http",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sup = Supervisor(registry, servers_dir=Path(tmp), connect_timeout=60)
        try:
            for _ in range(200):  # the HTTP server's port
                try:
                    _, w = await asyncio.open_connection("127.0.0.1", port)
                    w.close()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            await sup.start(
                [
                    ServerConfig(
                        "stdio", "local", str(script), command=sys.executable, args=[str(script)]
                    ),
                    ServerConfig(
                        "http",
                        "local",
                        str(script),
                        transport="http",
                        url=f"http://127.0.0.1:{port}/mcp",
                    ),
                ]
            )
            ctx = ToolContext("bench")
            for tool in ("builtin_echo", "stdio__echo", "http__echo"):
                call = ToolCall("b", tool, json.dumps({"text": "hi"}))
                for _ in range(20):  # warm-up
                    await registry.call(call, ctx)
                times = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    result = await registry.call(call, ctx)
                    times.append(time.perf_counter() - t0)
                    assert result.content == "echo: hi", result.content
                print(f"{tool} through the registry: {summary(times, 'ms', 1000)}")
                out[f"{tool}_p50_ms"] = statistics.median(times) * 1000
        finally:
            await sup.aclose()
            http_proc.terminate()
            await http_proc.wait()
    return out


def main(parts: list[str] | None = None) -> None:
    # bench/run.py calls main() with its own argv: only this script's own run reads argv.
    parts = parts or ["github", "mcp"]
    if "github" in parts:
        asyncio.run(github_listing())
    if "mcp" in parts:
        asyncio.run(mcp_calls())
        asyncio.run(mcp_startup())


if __name__ == "__main__":
    main(sys.argv[1:])
