"""OpenAI Chat Completions wire (OpenRouter, NanoGPT, OpenAI, any compatible server)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import openai

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
    "stop": "stop",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "length": "length",
    "content_filter": "content_filter",
}


def _image_url(part: ImagePart) -> str:
    if part.url:
        return part.url
    assert part.data is not None
    return f"data:{part.media_type};base64,{base64.b64encode(part.data).decode()}"


def _tool_images_message(pending: list[Message]) -> dict[str, Any]:
    """A tool message takes text only on this wire, so the images tools returned follow
    all of a step's tool messages (none may come between them) as one user message."""
    parts: list[dict[str, Any]] = []
    for m in pending:
        parts.append({"type": "text", "text": f"Images returned by tool call {m.tool_call_id}:"})
        parts.extend({"type": "image_url", "image_url": {"url": _image_url(p)}} for p in m.images)
    return {"role": "user", "content": parts}


def to_openai_messages(system: str | None, messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": system})
    pending: list[Message] = []  # this step's tool results that carry images
    for m in messages:
        if pending and m.role != "tool":
            out.append(_tool_images_message(pending))
            pending = []
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.plain_text})
            if m.images:
                pending.append(m)
        elif m.role == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": m.plain_text or None}
            if m.tool_calls:
                entry["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.raw_arguments or "{}"},
                    }
                    for c in m.tool_calls
                ]
            out.append(entry)
        elif m.images:
            parts: list[dict[str, Any]] = []
            for p in m.content:
                if isinstance(p, TextPart):
                    parts.append({"type": "text", "text": p.text})
                else:
                    parts.append({"type": "image_url", "image_url": {"url": _image_url(p)}})
            out.append({"role": m.role, "content": parts})
        else:
            out.append({"role": m.role, "content": m.plain_text})
    if pending:
        out.append(_tool_images_message(pending))
    return out


def response_format(schema: OutputSchema) -> dict[str, Any]:
    """Structured output on this wire: ``response_format`` json_schema, strict."""
    spec: dict[str, Any] = {"name": schema.name, "schema": schema.schema, "strict": True}
    if schema.description:
        spec["description"] = schema.description
    return {"type": "json_schema", "json_schema": spec}


class OpenAIChatProvider(ChatProvider):
    wire = "openai"
    sdk_error = openai.OpenAIError
    sampling_params = frozenset({"temperature"})
    structured_output = True

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        self.client = openai.AsyncOpenAI(
            **self._sdk_client_kwargs(),
            # aiohttp's C parser: a third of the CPU per streamed chunk of h11's.
            http_client=openai.DefaultAioHttpClient(),
        )

    def _params(self, request: CompletionRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": request.model,
            "messages": to_openai_messages(request.system, request.messages),
            "max_tokens": request.max_tokens,
        }
        if request.tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.output_schema is not None:
            params["response_format"] = response_format(request.output_schema)
        return params

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        name = self.endpoint.provider
        text: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        finish: str | None = None
        usage = Usage()
        model = request.model
        params = {
            **self._params(request),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        async with self._sse_events("/chat/completions", params) as events:
            async for sse in events:
                if sse.data == "[DONE]":
                    break
                chunk = sse.json()
                if "error" in chunk:  # some proxies report errors in-stream
                    raise ProviderUnavailable(
                        f"{name}: {chunk['error'].get('message', chunk['error'])}",
                        provider=name,
                    )
                model = chunk.get("model") or model
                if chunk.get("usage"):
                    u = chunk["usage"]
                    usage = Usage(u.get("prompt_tokens") or 0, u.get("completion_tokens") or 0)
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    content = delta.get("content")
                    if content:
                        text.append(content)
                        yield TextDelta(content)
                    for tc in delta.get("tool_calls") or ():
                        index = tc.get("index", 0)
                        slot = calls.setdefault(index, {"id": None, "name": "", "args": []})
                        fn = tc.get("function") or {}
                        if tc.get("id"):
                            slot["id"] = tc["id"]
                        if fn.get("name"):
                            slot["name"] += fn["name"]
                        if fn.get("arguments"):
                            slot["args"].append(fn["arguments"])
                        yield ToolCallDelta(
                            index, tc.get("id"), fn.get("name"), fn.get("arguments") or ""
                        )
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
        if finish is None:
            raise ProviderUnavailable(
                f"{name}: stream ended without a finish reason", provider=name
            )
        tool_calls = [
            ToolCall(id=s["id"] or f"call_{i}", name=s["name"], raw_arguments="".join(s["args"]))
            for i, s in sorted(calls.items())
        ]
        reason = _FINISH.get(finish, "other")
        if tool_calls and reason == "stop":
            reason = "tool_calls"  # some compatible servers say "stop" with tool calls
        yield Completion("".join(text), tool_calls, reason, usage, model)

    async def complete(self, request: CompletionRequest) -> Completion:
        name = self.endpoint.provider
        with self._translated():
            resp = await self.client.chat.completions.create(**self._params(request))
        if not resp.choices:
            raise ProviderUnavailable(f"{name}: empty response", provider=name)
        choice = resp.choices[0]
        msg = choice.message
        calls = [
            ToolCall(id=c.id, name=c.function.name, raw_arguments=c.function.arguments or "")
            for c in (msg.tool_calls or [])
            if getattr(c, "function", None) is not None
        ]
        reason = _FINISH.get(choice.finish_reason or "", "other")
        if calls and reason == "stop":
            reason = "tool_calls"
        usage = Usage()
        if resp.usage is not None:
            usage = Usage(resp.usage.prompt_tokens or 0, resp.usage.completion_tokens or 0)
        return Completion(msg.content or "", calls, reason, usage, resp.model or request.model)

    async def aclose(self) -> None:
        await self.client.close()
