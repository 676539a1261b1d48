"""System prompt assembly: persona + sections contributed by other modules.

The extension point: anything that wants a say in the prompt (Cortex memory,
hormones, ORS notes, the clock) registers a ``PromptContributor``; the
pipeline knows nothing of their internals.  Contributors run concurrently
and one failing contributor costs only its own section.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Protocol
from zoneinfo import ZoneInfo

from tools.registry import ToolContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptSection:
    title: str
    text: str
    order: int = 100  # lower comes first


@dataclass(frozen=True)
class TurnContext:
    tool_context: ToolContext
    user_text: str
    speaker: str | None = None
    #: Clara's previous message when it asked something: a bare "no" answers it.
    asked: str | None = None


class PromptContributor(Protocol):
    async def __call__(self, ctx: TurnContext) -> PromptSection | None: ...


def load_persona() -> str:
    return resources.files("clara_core.pipeline").joinpath("persona.md").read_text(encoding="utf-8")


def clock_section(timezone: str, now: Callable[[], datetime] | None = None) -> PromptContributor:
    clock = now or (lambda: datetime.now(UTC))

    async def contribute(ctx: TurnContext) -> PromptSection:
        local = clock().astimezone(ZoneInfo(timezone))
        return PromptSection("Now", f"It is {local:%A %d %B %Y, %H:%M} ({timezone}).", order=10)

    return contribute


class PromptBuilder:
    def __init__(self, persona: str | None = None) -> None:
        self.persona = persona if persona is not None else load_persona()
        self._contributors: list[Callable[[TurnContext], Awaitable[PromptSection | None]]] = []

    def add_contributor(self, contributor: PromptContributor) -> None:
        self._contributors.append(contributor)

    async def build(self, ctx: TurnContext) -> str:
        results = await asyncio.gather(
            *(c(ctx) for c in self._contributors), return_exceptions=True
        )
        sections: list[PromptSection] = []
        for contributor, result in zip(self._contributors, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("prompt contributor %r failed: %s", contributor, result)
            elif result is not None and result.text.strip():
                sections.append(result)
        parts = [self.persona.strip()]
        parts += [
            f"## {s.title}\n{s.text.strip()}" for s in sorted(sections, key=lambda s: s.order)
        ]
        return "\n\n".join(parts)
