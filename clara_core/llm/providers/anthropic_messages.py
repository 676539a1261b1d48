"""Anthropic Messages wire (Anthropic, and proxies such as clewdr).

We iterate the *raw* stream events and assemble tool calls ourselves rather
than using the SDK's accumulating helper: a model or proxy that emits
malformed ``input_json_delta`` must give the pipeline a readable tool error,
not crash the stream.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic

from ..errors import ProviderUnavailable
from ..types import (
    Completion,
    CompletionRequest,
    FinishReason,
    ImagePart,
    Message,
    OutputSchema,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from .base import ChatProvider, Endpoint

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "refusal": "content_filter",
    "pause_turn": "other",
}


def _image_block(part: ImagePart) -> dict[str, Any]:
    if part.url:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    assert part.data is not None
    return {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": part.media_type,
            "data": base64.b64encode(part.data).decode(),
        },
    }


def _tool_input(call: ToolCall) -> dict[str, Any]:
    try:
        return call.arguments
    except ValueError:
        # The model produced broken JSON earlier; the tool result already says
        # so. Replaying it as an empty object keeps the conversation valid.
        return {}


def to_anthropic_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Clara's messages -> Anthropic's: tool results become user content blocks.

    Consecutive messages of the same role are merged, so tool results of one
    step and a following user message form one valid user turn.
    """
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue  # passed separately as `system`
        role = "assistant" if m.role == "assistant" else "user"
        blocks: list[dict[str, Any]] = []
        if m.role == "tool":
            result: str | list[dict[str, Any]] = m.plain_text
            if m.images:  # a tool_result holds image blocks beside its text on this wire
                text = [{"type": "text", "text": m.plain_text}] if m.plain_text else []
                result = [*text, *(_image_block(p) for p in m.images)]
            blocks.append(
                {
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id,
                    "content": result,
                    **({"is_error": True} if m.is_error else {}),
                }
            )
        else:
            for p in m.content:
                if isinstance(p, TextPart):
                    if p.text:
                        blocks.append({"type": "text", "text": p.text})
                else:
                    blocks.append(_image_block(p))
            for call in m.tool_calls:
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": _tool_input(call),
                    }
                )
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            # Tool results directly follow their assistant turn, so any text
            # merged in comes after them, as the API requires.
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def answer_tool(schema: OutputSchema) -> dict[str, Any]:
    """Structured output on this wire: a tool whose input is the answer, forced
    with ``tool_choice`` (works for every model that takes tools, and through
    proxies that pass tools on)."""
    return {
        "name": schema.name,
        "description": schema.description or "Give your answer in this form.",
        "input_schema": schema.schema,
    }


class AnthropicMessagesProvider(ChatProvider):
    wire = "anthropic"
    sdk_error = anthropic.AnthropicError
    # The Messages API as the installed SDK describes it (``messages.create()``)
    # takes no sampling parameters: sending ``temperature`` fails the whole call.
    sampling_params = frozenset()
    structured_output = True

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        self.client = anthropic.AsyncAnthropic(
            **self._sdk_client_kwargs(), http_client=anthropic.DefaultAioHttpClient()
        )

    def _params(self, request: CompletionRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": to_anthropic_messages(request.messages),
        }
        if request.system:
            params["system"] = request.system
        tools = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
        if request.output_schema is not None:
            tools.append(answer_tool(request.output_schema))
            params["tool_choice"] = {"type": "tool", "name": request.output_schema.name}
        if tools:
            params["tools"] = tools
        # No ``temperature``: not in this wire's ``sampling_params``, so the service
        # never sets it for us (and the SDK would reject it with a TypeError).
        return params

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        name = self.endpoint.provider
        text: list[str] = []
        blocks: dict[int, dict[str, Any]] = {}
        usage = Usage()
        stop_reason: str | None = None
        finished = False
        model = request.model
        answer = request.output_schema.name if request.output_schema else None
        answer_blocks: set[int] = set()  # the forced answer tool's blocks: their JSON is the text
        body = {**self._params(request), "stream": True}
        async with self._sse_events("/v1/messages", body) as events:
            async for sse in events:
                event = sse.json()
                kind = event.get("type")
                if kind == "message_start":
                    message = event.get("message") or {}
                    model = message.get("model") or model
                    u = message.get("usage") or {}
                    usage = Usage(u.get("input_tokens") or 0, u.get("output_tokens") or 0)
                elif kind == "content_block_start":
                    index, block = event.get("index", 0), event.get("content_block") or {}
                    if block.get("type") == "tool_use" and answer and block.get("name") == answer:
                        answer_blocks.add(index)
                        text.clear()  # any preamble is not part of the JSON answer
                    elif block.get("type") == "tool_use":
                        blocks[index] = {
                            "id": block.get("id"),
                            "name": block.get("name"),
                            "json": [],
                        }
                        yield ToolCallDelta(index, block.get("id"), block.get("name"), "")
                    elif block.get("type") == "text" and block.get("text"):
                        text.append(block["text"])
                        yield TextDelta(block["text"])
                elif kind == "content_block_delta":
                    index, delta = event.get("index", 0), event.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        text.append(delta["text"])
                        yield TextDelta(delta["text"])
                    elif delta.get("type") == "input_json_delta" and index in answer_blocks:
                        piece = delta.get("partial_json", "")
                        if piece:
                            text.append(piece)
                            yield TextDelta(piece)
                    elif delta.get("type") == "input_json_delta" and index in blocks:
                        piece = delta.get("partial_json", "")
                        blocks[index]["json"].append(piece)
                        yield ToolCallDelta(index, arguments_delta=piece)
                elif kind == "message_delta":
                    stop_reason = (event.get("delta") or {}).get("stop_reason") or stop_reason
                    out_tokens = (event.get("usage") or {}).get("output_tokens")
                    if out_tokens is not None:
                        usage = Usage(usage.input_tokens, out_tokens)
                elif kind == "message_stop":
                    finished = True
                elif kind == "error":
                    err = event.get("error") or {}
                    raise ProviderUnavailable(
                        f"{name}: {err.get('type', 'error')}: {err.get('message', '')}",
                        provider=name,
                    )
        if not finished:
            raise ProviderUnavailable(f"{name}: stream ended before message_stop", provider=name)
        calls = [
            ToolCall(id=b["id"], name=b["name"], raw_arguments="".join(b["json"]) or "{}")
            for _, b in sorted(blocks.items())
        ]
        reason = _FINISH.get(stop_reason or "", "other")
        if answer_blocks and reason == "tool_calls":
            reason = "stop"  # the forced answer tool is the answer, not a call to run
        yield Completion("".join(text), calls, reason, usage, model)

    async def complete(self, request: CompletionRequest) -> Completion:
        with self._translated():
            msg = await self.client.messages.create(**self._params(request))
        answer = request.output_schema.name if request.output_schema else None
        structured = [b for b in msg.content if b.type == "tool_use" and b.name == answer]
        reason = _FINISH.get(msg.stop_reason or "", "other")
        if structured:
            # The forced tool's input is the JSON answer; text around it is not.
            text = json.dumps(structured[0].input, ensure_ascii=False)
            if reason == "tool_calls":
                reason = "stop"
        else:
            text = "".join(b.text for b in msg.content if b.type == "text")
        calls = [
            ToolCall(id=b.id, name=b.name, raw_arguments=json.dumps(b.input))
            for b in msg.content
            if b.type == "tool_use" and b.name != answer
        ]
        usage = Usage(msg.usage.input_tokens or 0, msg.usage.output_tokens or 0)
        return Completion(text, calls, reason, usage, msg.model)

    async def aclose(self) -> None:
        await self.client.close()
