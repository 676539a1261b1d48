"""Built-in tools that need nothing but Clara herself, registered like plug-ins."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .registry import Tool, ToolContext, ToolError, ToolRegistry


def clock_tool(timezone: str, now: Callable[[], datetime] | None = None) -> Tool:
    clock = now or (lambda: datetime.now(UTC))

    async def handler(args: dict[str, Any], ctx: ToolContext) -> str:
        name = args.get("timezone") or timezone
        try:
            tz = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolError(
                f"unknown time zone {name!r}; use an IANA name like Europe/Berlin"
            ) from None
        return clock().astimezone(tz).strftime("%A %d %B %Y, %H:%M:%S %Z (UTC%z)")

    return Tool(
        name="get_current_time",
        description="Current date and time, in Clara's time zone or an IANA zone you name.",
        parameters={
            "type": "object",
            "properties": {
                "timezone": {"type": "string", "description": "IANA zone, e.g. Europe/Berlin"}
            },
            "additionalProperties": False,
        },
        handler=handler,
        timeout=5,
    )


def register_builtin_tools(registry: ToolRegistry, *, timezone: str) -> None:
    registry.register(clock_tool(timezone))
