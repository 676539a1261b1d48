"""Tool registry: what the model may call, and the one place calls are checked.

Every tool, built-in or plug-in (MCP servers later), registers through
``ToolRegistry.register``.  ``call()`` enforces what the model must not be
trusted with: unknown names, admin-only tools for non-admins (checked here,
server-side, not by hiding them from the prompt alone), malformed or
schema-violating arguments, timeouts and crashes.  All of these come back to
the model as *error results* it can react to; none escapes as an exception.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from clara_core.errors import ClaraError
from clara_core.llm.types import ImagePart, ToolCall, ToolSpec

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class ToolError(ClaraError):
    """A tool failed in a way it wants to explain to the model (and user)."""


@dataclass
class ToolContext:
    """Who is asking, so tools can scope data and permissions."""

    user_id: str
    channel_id: str | None = None
    is_admin: bool = False
    platform: str = "console"
    extras: dict[str, Any] = field(default_factory=dict)
    #: The caller's Discord roles, as casefolded names and as IDs, from the same Discord
    #: facts as ``is_admin``: a tool may open to some roles besides admins (GitHub writes).
    roles: frozenset[str] = frozenset()


#: ``ToolContext.extras`` key, set by an adapter that attaches ``ToolResult.attachments``
#: to its reply (Discord); the value is the largest upload it takes, in bytes.  Absent:
#: the chat shows no files, so tools make none and never tell the model they did.
REPLY_FILES_KEY = "reply_files_max_bytes"

#: ``ToolContext.extras`` key: a ``Callable[[str], None]`` a slow tool (an MCP install)
#: may call with a short progress line ("pip install mcp-server-time"); set by a caller
#: that can show it (``/clara mcp install`` edits its deferred answer).  Absent: no one
#: is watching, and the tool just logs.
PROGRESS_KEY = "progress"


@dataclass(frozen=True)
class ToolAttachment:
    """A file a tool made for the *user* (a plot the code saved, long output):
    the adapter attaches it to the reply; the model only reads ``content``."""

    filename: str
    data: bytes


@dataclass
class ToolResult:
    content: str
    is_error: bool = False
    duration_s: float = 0.0
    attachments: list[ToolAttachment] = field(default_factory=list)
    #: Images for the *model* (an MCP tool's screenshot): sent as image parts with the
    #: tool result to models that can see; ``content`` still says they exist, for those
    #: that can't.
    images: list[ImagePart] = field(default_factory=list)


ToolHandler = Callable[[dict[str, Any], ToolContext], Awaitable["ToolResult | str"]]


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    handler: ToolHandler
    admin_only: bool = False
    timeout: float = 120.0
    source: str = "builtin"  # or "mcp:<server>", for listings
    #: What the user is told while it runs ("running Python"); None: "running <name>".
    activity: str | None = None
    #: An ``admin_only`` tool is also open to callers holding one of these roles
    #: (casefolded names or IDs, matched against ``ToolContext.roles``).
    roles: frozenset[str] = frozenset()

    def allows(self, ctx: ToolContext) -> bool:
        return not self.admin_only or ctx.is_admin or bool(self.roles & ctx.roles)

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters)


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
}


def validate_arguments(schema: dict[str, Any], args: dict[str, Any]) -> list[str]:
    """Top-level checks the model gets wrong most: required keys and basic types."""
    problems = []
    props = schema.get("properties", {})
    for key in schema.get("required", []):
        if key not in args:
            problems.append(f"missing required argument {key!r}")
    for key, value in args.items():
        if key not in props:
            if schema.get("additionalProperties") is False:
                problems.append(f"unknown argument {key!r}")
            continue
        expected = props[key].get("type")
        py = _JSON_TYPES.get(expected) if isinstance(expected, str) else None
        if py is not None:
            ok = isinstance(value, py) and not (
                expected in ("integer", "number") and isinstance(value, bool)
            )
            if not ok:
                problems.append(f"argument {key!r} must be {expected}, got {type(value).__name__}")
        enum = props[key].get("enum")
        if enum is not None and value not in enum:
            problems.append(f"argument {key!r} must be one of {enum}")
    return problems


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def register(self, tool: Tool, *, replace: bool = False) -> None:
        if not NAME_RE.match(tool.name):
            raise ValueError(f"tool name {tool.name!r} must match {NAME_RE.pattern}")
        if tool.parameters.get("type") != "object":
            raise ValueError(f"tool {tool.name!r}: parameters must be a JSON object schema")
        if tool.name in self._tools and not replace:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def unregister(self, name: str) -> None:
        self._tools.pop(name, None)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __len__(self) -> int:
        return len(self._tools)

    def available(self, ctx: ToolContext) -> list[Tool]:
        return [t for t in self._tools.values() if t.allows(ctx)]

    def specs(self, ctx: ToolContext) -> list[ToolSpec]:
        return [t.spec for t in self.available(ctx)]

    async def call(self, call: ToolCall, ctx: ToolContext) -> ToolResult:
        t0 = time.monotonic()
        result = await self._call(call, ctx)
        result.duration_s = time.monotonic() - t0
        return result

    async def _call(self, call: ToolCall, ctx: ToolContext) -> ToolResult:
        tool = self._tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(t.name for t in self.available(ctx))) or "none"
            return ToolResult(
                f"Error: there is no tool named {call.name!r}. Available: {known}.", True
            )
        if not tool.allows(ctx):
            log.warning("user %s tried admin-only tool %s", ctx.user_id, tool.name)
            who = (
                "server admins and members with certain roles, and this user is neither"
                if tool.roles
                else "server admins, and this user is not one"
            )
            return ToolResult(f"Error: {tool.name} is restricted to {who}.", True)
        try:
            args = call.arguments
        except ValueError as exc:
            return ToolResult(
                f"Error: the call to {tool.name} could not be run: {exc}. Retry with valid JSON.",
                True,
            )
        problems = validate_arguments(tool.parameters, args)
        if problems:
            return ToolResult(
                f"Error: invalid arguments for {tool.name}: {'; '.join(problems)}.", True
            )
        try:
            async with asyncio.timeout(tool.timeout):
                out = await tool.handler(args, ctx)
        except TimeoutError:
            return ToolResult(
                f"Error: {tool.name} took longer than {tool.timeout:.0f}s and was stopped.", True
            )
        except ToolError as exc:
            return ToolResult(f"Error: {exc}", True)
        except Exception as exc:  # a tool bug must not end the conversation
            log.exception("tool %s crashed", tool.name)
            return ToolResult(
                f"Error: {tool.name} failed unexpectedly ({type(exc).__name__}).", True
            )
        return out if isinstance(out, ToolResult) else ToolResult(str(out))
