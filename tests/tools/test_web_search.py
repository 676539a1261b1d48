"""web_search through the ToolRegistry, against the loopback fake Tavily (real
tavily-python client, real HTTP)."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator

import pytest

from clara_core.config import Settings
from clara_core.llm.types import ToolCall
from tests.fakes.fake_tavily import FakeResult, FakeTavily
from tools.registry import ToolContext, ToolRegistry, ToolResult
from tools.web_search import (
    MAX_RESULTS,
    SNIPPET_CHARS,
    WebSearch,
    register_web_search,
    web_search_tool,
)

KEY = "tvly-test-key"


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def tavily() -> AsyncIterator[FakeTavily]:
    async with FakeTavily(api_keys={KEY}) as fake:
        yield fake


async def _registry(**values: object) -> tuple[ToolRegistry, WebSearch | None]:
    reg = ToolRegistry()
    return reg, register_web_search(reg, settings(**values))


async def search(reg: ToolRegistry, **args: object) -> ToolResult:
    return await reg.call(ToolCall("c1", "web_search", json.dumps(args)), ToolContext("111"))


@pytest.fixture
async def registry(tavily: FakeTavily) -> AsyncIterator[ToolRegistry]:
    reg, ws = await _registry(tavily_api_key=KEY, tavily_base_url=tavily.base_url)
    assert ws is not None
    yield reg
    await ws.aclose()


async def test_not_offered_without_a_key() -> None:
    for values in ({}, {"tavily_api_key": ""}, {"tavily_api_key": "   "}):
        reg, ws = await _registry(**values)
        assert ws is None and reg.get("web_search") is None, values


async def test_results_are_trimmed_to_what_the_model_needs(
    registry: ToolRegistry, tavily: FakeTavily
) -> None:
    long = "Python 3.14 was released in October. " * 40
    tavily.add_results(
        "python release",
        [
            FakeResult("Python 3.14 released", "https://python.org/3.14", long, 0.99, "RAW PAGE"),
            FakeResult("What's new", "https://docs.python.org/whatsnew", "Free threading.", 0.8),
        ],
    )
    r = await search(registry, query="  python   release ")
    assert not r.is_error
    lines = r.content.splitlines()
    assert lines[0].startswith("Web search results for 'python release'")
    assert lines[1:3] == ["1. Python 3.14 released", "   https://python.org/3.14"]
    assert lines[3].startswith("   Python 3.14 was released in October.")
    assert len(lines[3].strip()) <= SNIPPET_CHARS and lines[3].endswith("…")
    assert lines[4:] == [
        "2. What's new",
        "   https://docs.python.org/whatsnew",
        "   Free threading.",
    ]
    assert "RAW PAGE" not in r.content and "0.99" not in r.content
    # What went over the wire: the key as a bearer token, the SDK's JSON body.
    sent = tavily.requests[-1]
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body["query"] == "python release" and sent.body["max_results"] == 5
    assert "include_raw_content" not in sent.body


async def test_result_count_is_capped(registry: ToolRegistry, tavily: FakeTavily) -> None:
    r = await search(registry, query="anything", max_results=50)
    assert tavily.requests[-1].body["max_results"] == MAX_RESULTS
    assert sum(1 for line in r.content.splitlines() if line[:1].isdigit()) == MAX_RESULTS
    assert len(r.content) < MAX_RESULTS * (SNIPPET_CHARS + 300)
    r = await search(registry, query="anything", max_results=2, topic="news")
    assert tavily.requests[-1].body["topic"] == "news"
    assert sum(1 for line in r.content.splitlines() if line[:1].isdigit()) == 2


async def test_a_bad_key_names_tavily_api_key(tavily: FakeTavily) -> None:
    reg, ws = await _registry(tavily_api_key="tvly-wrong", tavily_base_url=tavily.base_url)
    try:
        r = await search(reg, query="weather")
    finally:
        await ws.aclose()  # type: ignore[union-attr]
    assert r.is_error and "TAVILY_API_KEY" in r.content and "rejected" in r.content
    assert tavily.requests, "the request reached the fake"


async def test_rate_limit_says_try_later(registry: ToolRegistry, tavily: FakeTavily) -> None:
    tavily.rate_limit()
    r = await search(registry, query="weather")
    assert r.is_error and "rate limited" in r.content and "try again later" in r.content
    r = await search(registry, query="weather")  # the limit passed: it works again
    assert not r.is_error and "1. weather" in r.content


async def test_plan_limit_and_server_errors(registry: ToolRegistry, tavily: FakeTavily) -> None:
    tavily.fail_next(432)
    r = await search(registry, query="x")
    assert r.is_error and "usage limit" in r.content and "TAVILY_API_KEY" in r.content
    tavily.fail_next(502, "Bad gateway")
    r = await search(registry, query="x")
    assert r.is_error and "HTTP 502" in r.content and "try again later" in r.content


async def test_a_rejected_query_says_why(registry: ToolRegistry, tavily: FakeTavily) -> None:
    r = await search(registry, query="q" * 450)
    assert r.is_error
    assert "Query is too long. Max query length is 400 characters." in r.content
    assert "Change the query" in r.content
    r = await search(registry, query="   ")
    assert r.is_error and "give a search query" in r.content


async def test_network_down_is_a_clear_result() -> None:
    # A port nothing listens on: connection refused, as when Tavily is unreachable.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reg, ws = await _registry(tavily_api_key=KEY, tavily_base_url=f"http://127.0.0.1:{port}")
    try:
        r = await search(reg, query="weather")
    finally:
        await ws.aclose()  # type: ignore[union-attr]
    assert r.is_error and "could not reach Tavily" in r.content and "try again later" in r.content


async def test_a_slow_api_times_out_cleanly(tavily: FakeTavily) -> None:
    tavily.delay = 2.0
    reg = ToolRegistry()
    ws = WebSearch(KEY, base_url=tavily.base_url, timeout=0.5)
    reg.register(web_search_tool(ws))
    try:
        r = await search(reg, query="slow")
    finally:
        await ws.aclose()
    assert r.is_error and "took longer than" in r.content
