"""The registry is where tool calls are checked: names, admin, arguments, failures."""

from __future__ import annotations

import asyncio

import pytest

from clara_core.llm.types import ToolCall
from tools.builtin import clock_tool
from tools.registry import Tool, ToolContext, ToolError, ToolRegistry, ToolResult

USER = ToolContext(user_id="u1")
ADMIN = ToolContext(user_id="a1", is_admin=True)

SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer"}, "mode": {"type": "string", "enum": ["a", "b"]}},
    "required": ["n"],
    "additionalProperties": False,
}


def _registry() -> ToolRegistry:
    reg = ToolRegistry()

    async def double(args, ctx):
        return str(args["n"] * 2)

    async def secret(args, ctx):
        return "the admin secret"

    async def slow(args, ctx):
        await asyncio.sleep(5)
        return "late"

    async def broken(args, ctx):
        raise RuntimeError("bug with /etc/passwd in it")

    async def explains(args, ctx):
        raise ToolError("the repository does not exist")

    reg.register(Tool("double", "x2", SCHEMA, double))
    reg.register(
        Tool("secret", "admin", {"type": "object", "properties": {}}, secret, admin_only=True)
    )
    reg.register(Tool("slow", "zzz", {"type": "object", "properties": {}}, slow, timeout=0.1))
    reg.register(Tool("broken", "bug", {"type": "object", "properties": {}}, broken))
    reg.register(Tool("explains", "err", {"type": "object", "properties": {}}, explains))
    return reg


async def test_happy_path():
    result = await _registry().call(ToolCall("1", "double", '{"n": 21}'), USER)
    assert result == ToolResult("42", False, result.duration_s)


@pytest.mark.parametrize(
    ("name", "args", "needle"),
    [
        ("nope", "{}", "no tool named 'nope'"),
        ("double", "{n: 1}", "not valid JSON"),
        ("double", "{}", "missing required argument 'n'"),
        ("double", '{"n": "2"}', "'n' must be integer"),
        ("double", '{"n": true}', "'n' must be integer"),
        ("double", '{"n": 1, "mode": "c"}', "must be one of"),
        ("double", '{"n": 1, "extra": 1}', "unknown argument 'extra'"),
        ("slow", "{}", "took longer than"),
        ("broken", "{}", "failed unexpectedly (RuntimeError)"),
        ("explains", "{}", "the repository does not exist"),
    ],
)
async def test_failures_become_error_results(name, args, needle):
    result = await _registry().call(ToolCall("1", name, args), USER)
    assert result.is_error and needle in result.content
    assert "/etc/passwd" not in result.content  # internals don't leak to the model


async def test_admin_only_is_enforced_server_side():
    reg = _registry()
    assert "secret" not in [s.name for s in reg.specs(USER)]
    assert "secret" in [s.name for s in reg.specs(ADMIN)]
    # even when a model names it anyway (prompt injection, stale context)
    denied = await reg.call(ToolCall("1", "secret", "{}"), USER)
    assert denied.is_error and "restricted to server admins" in denied.content
    assert (await reg.call(ToolCall("1", "secret", "{}"), ADMIN)).content == "the admin secret"


def test_registration_rules():
    reg = _registry()
    with pytest.raises(ValueError, match="already registered"):
        reg.register(reg.get("double"))
    with pytest.raises(ValueError, match="must match"):
        reg.register(Tool("bad name!", "", {"type": "object"}, None))
    with pytest.raises(ValueError, match="object schema"):
        reg.register(Tool("arr", "", {"type": "array"}, None))


async def test_clock_tool_uses_the_zone():
    from datetime import UTC, datetime

    tool = clock_tool("Europe/Berlin", now=lambda: datetime(2026, 7, 1, 12, 0, tzinfo=UTC))
    reg = ToolRegistry()
    reg.register(tool)
    assert (
        "14:00:00 CEST" in (await reg.call(ToolCall("1", "get_current_time", "{}"), USER)).content
    )
    tokyo = await reg.call(ToolCall("1", "get_current_time", '{"timezone": "Asia/Tokyo"}'), USER)
    assert "21:00:00 JST" in tokyo.content
    bad = await reg.call(ToolCall("1", "get_current_time", '{"timezone": "Mars/Base"}'), USER)
    assert bad.is_error and "unknown time zone" in bad.content
