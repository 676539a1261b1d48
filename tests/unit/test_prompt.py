"""The prompt extension point: ordered sections, failures isolated."""

from __future__ import annotations

from datetime import UTC, datetime

from clara_core.pipeline.prompt import (
    PromptBuilder,
    PromptSection,
    TurnContext,
    clock_section,
    load_persona,
)
from tools.registry import ToolContext

CTX = TurnContext(ToolContext(user_id="u"), "hello")


async def test_sections_are_ordered_and_a_failing_contributor_is_skipped():
    builder = PromptBuilder(persona="PERSONA")

    async def memory(ctx):
        return PromptSection("Memory", f"{ctx.tool_context.user_id} likes tea", order=50)

    async def broken(ctx):
        raise RuntimeError("redis down")

    async def empty(ctx):
        return None

    builder.add_contributor(memory)
    builder.add_contributor(broken)
    builder.add_contributor(empty)
    builder.add_contributor(
        clock_section("UTC", now=lambda: datetime(2026, 11, 22, 9, 30, tzinfo=UTC))
    )
    prompt = await builder.build(CTX)
    assert prompt.startswith("PERSONA")
    assert prompt.index("## Now") < prompt.index("## Memory")
    assert "Sunday 22 November 2026, 09:30" in prompt and "u likes tea" in prompt


def test_persona_ships_with_the_package():
    persona = load_persona()
    assert "You are Clara" in persona and "AI" in persona
