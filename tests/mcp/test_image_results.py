"""An MCP tool's image reaches the model as an image part where the model can see,
on both wires, against the fake LLM server (which validates each wire's shapes and
records the requests); a model that can't see gets the text line only."""

from __future__ import annotations

import base64

import pytest

from clara_core.pipeline.events import Done
from tests.fakes.fake_llm import FakeLLM, Reply, ToolCall
from tests.mcp.conftest import MakeSupervisor, local_config
from tests.support.llm import build_runner, collect, settings_for, turn

# The 1x1 PNG tests/mcp/servers/local_server.py's ``picture`` tool returns.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
)
B64 = base64.b64encode(PNG).decode()
TEXT_LINE = "[image: image/png, 69 bytes]"


async def _picture_turn(make_supervisor: MakeSupervisor, provider: str, **settings: object):
    """One turn in which the model calls local__picture; the request that carried the
    result back (after the fake accepted it)."""
    sup = await make_supervisor([local_config()])
    async with FakeLLM(api_keys={"test-key"}) as llm:
        runner, service = build_runner(settings_for(llm, provider, **settings), sup.registry)
        try:
            llm.enqueue(
                Reply("", tool_calls=[ToolCall("local__picture", {})]), Reply("A tiny picture.")
            )
            events = await collect(runner, turn("show me the picture"))
        finally:
            await service.aclose()
        assert isinstance(events[-1], Done) and events[-1].text == "A tiny picture.", events[-1]
        request = llm.requests[-1]
        assert request.outcome == "completed", request.error
        return request


async def test_openai_wire_vision_model_gets_the_image_after_the_tool_messages(
    make_supervisor: MakeSupervisor,
) -> None:
    request = await _picture_turn(make_supervisor, "openai", custom_openai_model="gpt-4o")
    roles = [m["role"] for m in request.messages]
    # The tool message (text only on this wire), then the image as a user message.
    assert roles[-3:] == ["assistant", "tool", "user"], roles
    tool, images = request.messages[-2], request.messages[-1]
    assert TEXT_LINE in tool["content"] and "here it is" in tool["content"]
    [label, image] = images["content"]
    assert label["type"] == "text" and tool["tool_call_id"] in label["text"]
    assert image == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64}"}}


async def test_anthropic_wire_vision_model_gets_the_image_in_the_tool_result(
    make_supervisor: MakeSupervisor,
) -> None:
    request = await _picture_turn(make_supervisor, "anthropic", anthropic_model="claude-sonnet-4-5")
    [result] = [
        b
        for m in request.messages
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    text, image = result["content"]
    assert text["type"] == "text" and TEXT_LINE in text["text"]
    assert image == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": B64},
    }


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_model_that_cannot_see_gets_the_text_line_only(
    make_supervisor: MakeSupervisor, provider: str
) -> None:
    model = {"openai": "custom_openai_model", "anthropic": "anthropic_model"}[provider]
    request = await _picture_turn(make_supervisor, provider, **{model: "deepseek-chat"})
    body = str(request.messages)
    assert TEXT_LINE in body
    assert B64 not in body and "image_url" not in body and "'image'" not in body


def test_only_real_images_of_wire_formats_become_image_parts() -> None:
    from mcp_types import (
        BlobResourceContents,
        CallToolResult,
        EmbeddedResource,
        ImageContent,
        TextContent,
    )

    from clara_core.mcp.bridge import MAX_IMAGES, result_images

    svg = base64.b64encode(b"<svg/>").decode()
    result = CallToolResult(
        content=[
            TextContent(text="four blocks"),
            ImageContent(data=B64, mime_type="image/png"),
            # Labelled JPEG, but the bytes are a PNG: the wires check, so we do too.
            ImageContent(data=B64, mime_type="image/jpeg"),
            ImageContent(data=svg, mime_type="image/svg+xml"),  # no wire takes SVG
            ImageContent(data="not base64!", mime_type="image/png"),
            EmbeddedResource(
                resource=BlobResourceContents(uri="file:///a.png", blob=B64, mime_type="image/png")
            ),
        ]
    )
    images = result_images(result)
    assert [(i.media_type, i.data) for i in images] == [("image/png", PNG)] * 3
    many = CallToolResult(content=[ImageContent(data=B64, mime_type="image/png")] * 9)
    assert len(result_images(many)) == MAX_IMAGES
