"""Tool benchmarks: ``python bench/tools.py`` (or ``python bench/run.py tools``).

- github: ``github_list_issues`` with limit=300 through the ToolRegistry against the
  loopback fake GitHub (tests/fakes/fake_github): GitHub's ``per_page`` is at most
  100, so that is 3 pages followed through ``Link: rel="next"``.  Prints the pages
  fetched, the time per listing (p50/p95; loopback, so this is Clara's own cost:
  HTTP client, JSON decoding, trimming) and how much trimming saves against the raw
  JSON GitHub sent.

(The MCP parts of this benchmark, tool-call overhead and start-up with 5 servers,
live with the MCP client.)  ``BENCH_GITHUB_RUNS`` sets the repetitions (default 20).
"""

from __future__ import annotations

import asyncio
import json
import os
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


def main() -> None:
    asyncio.run(github_listing())


if __name__ == "__main__":
    main()
