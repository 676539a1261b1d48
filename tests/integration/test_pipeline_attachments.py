"""Files a tool makes for the user travel through the pipeline's events: each
``ToolFinished`` carries its own, ``Done`` the turn's (one per name, the newest),
and ``ToolStarted`` says in words what runs.  Real SDK against the fake LLM."""

from __future__ import annotations

from typing import Any

import pytest

from clara_core.discord_adapter.streaming import MAX_FILES, fit_files
from clara_core.pipeline.events import Done, ToolFinished, ToolStarted
from tests.fakes.fake_llm import FakeLLM, Reply, ToolCall
from tests.support.llm import KEY, build_runner, collect, settings_for, turn
from tools.registry import Tool, ToolAttachment, ToolContext, ToolRegistry, ToolResult


def _drawing_tools() -> ToolRegistry:
    reg = ToolRegistry()

    async def draw(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        files = [ToolAttachment("plot.png", args["data"].encode())]
        if args.get("also"):
            files.append(ToolAttachment(args["also"], b"extra"))
        return ToolResult("drew it", attachments=files)

    reg.register(
        Tool(
            "draw",
            "Draw a plot",
            {
                "type": "object",
                "properties": {"data": {"type": "string"}, "also": {"type": "string"}},
                "required": ["data"],
            },
            draw,
            activity="drawing",
        )
    )
    return reg


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_the_turns_files_reach_done_newest_per_name(wire: str) -> None:
    async with FakeLLM(api_keys={KEY}) as fake:
        fake.enqueue(
            Reply("", tool_calls=[ToolCall("draw", {"data": "first", "also": "table.csv"})]),
            Reply("", tool_calls=[ToolCall("draw", {"data": "second"})]),
            Reply("Here it is."),
        )
        runner, service = build_runner(settings_for(fake, wire), _drawing_tools())
        try:
            events = await collect(runner, turn("plot it twice"))
        finally:
            await service.aclose()
    started = [e for e in events if isinstance(e, ToolStarted)]
    assert [e.activity for e in started] == ["drawing", "drawing"]
    finished = [e for e in events if isinstance(e, ToolFinished)]
    assert [[f.filename for f in e.attachments] for e in finished] == [
        ["plot.png", "table.csv"],
        ["plot.png"],
    ]
    [done] = [e for e in events if isinstance(e, Done)]
    assert done.text == "Here it is."
    # The re-drawn plot replaces the first, and comes after what it did not replace.
    assert [(f.filename, f.data) for f in done.attachments] == [
        ("table.csv", b"extra"),
        ("plot.png", b"second"),
    ]
    # The model only ever read the text.
    assert "extra" not in str(fake.requests[-1].messages)


def test_one_message_carries_what_fits_in_order() -> None:
    files = [ToolAttachment(f"{i}.png", b"x" * 100) for i in range(12)]
    fitting, left = fit_files(files, max_bytes=10_000)
    assert len(fitting) == MAX_FILES == 10
    assert [f.filename for f in left] == ["10.png", "11.png"]
    big = ToolAttachment("big.png", b"x" * 900)
    fitting, left = fit_files([files[0], big, files[1]], max_bytes=250)
    assert [f.filename for f in fitting] == ["0.png", "1.png"]  # a small one after a big one
    assert left == [big]
