"""The Anthropic Messages dialect.

Streams are ``event: <type>`` + ``data: {...}`` events: ``message_start``, then per
content block ``content_block_start`` (text, or tool_use with ``input: {}``), a
``ping`` after the first one, ``content_block_delta`` (``text_delta`` /
``input_json_delta`` with ``partial_json`` pieces) and ``content_block_stop``; then
``message_delta`` (stop_reason, usage.output_tokens) and ``message_stop``.

Limitation: a non-streamed reply's ``tool_use.input`` must be a JSON object, so a
:class:`ToolCall` whose arguments are not a JSON object (deliberately malformed JSON)
can only be streamed; non-streamed it yields a loud 500 from the fake.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from .anthropic_validation import validate_messages_request
from .errors import WireError
from .responses import Reply, ToolCall, Usage
from .sse import PlanBuilder, StreamPlan, named_event
from .wire import TO_ANTHROPIC_STOP, RenderContext, Wire, bearer_token, random_id

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "output_tokens": usage.output_tokens,
        "service_tier": "standard",
    }


def stop_reason(reply: Reply) -> str:
    reason = reply.finish_reason or ("tool_use" if reply.tool_calls else "end_turn")
    return TO_ANTHROPIC_STOP.get(reason, reason)


def _tool_id(call: ToolCall) -> str:
    return call.id or random_id("toolu_01", 22)


def _tool_input(call: ToolCall) -> dict[str, Any]:
    if isinstance(call.arguments, dict):
        return call.arguments
    try:
        value = json.loads(call.arguments)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise WireError(
            500,
            f"FakeLLM: ToolCall {call.name!r} arguments are not a JSON object, which a "
            "non-streamed Anthropic reply cannot carry (tool_use.input is an object); "
            "script it for a streaming request instead.",
            headers={"x-should-retry": "false"},
        )
    return value


class AnthropicWire(Wire):
    name = "anthropic"
    request_id_header: ClassVar[str] = "request-id"

    def authenticate(self, headers: Mapping[str, str], api_keys: set[str] | None) -> None:
        if api_keys is None:
            return
        # The real API takes ``x-api-key``; anthropic-python 2.x sends the key as
        # ``Authorization: Bearer`` instead, so accept either.
        key = headers.get("x-api-key") or bearer_token(headers)
        if not key:
            raise WireError(401, "x-api-key header is required")
        if key not in api_keys:
            raise WireError(401, "invalid x-api-key")

    def check_headers(self, headers: Mapping[str, str]) -> None:
        if not headers.get("anthropic-version"):
            raise WireError(400, "anthropic-version: header is required")

    def validate(self, body: Any) -> None:
        validate_messages_request(body)

    def forced_tool(self, body: dict[str, Any]) -> str | None:
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "tool":
            name = choice.get("name")
            return name if isinstance(name, str) else None
        return None

    def _as_forced(self, reply: Reply, ctx: RenderContext) -> Reply:
        """Under forced tool use the model answers by calling the tool: a text-only
        reply's text (a JSON object) becomes that call's input."""
        if ctx.forced_tool is None or reply.tool_calls or not reply.honour_format:
            return reply
        try:
            value = json.loads(reply.text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise WireError(
                500,
                f"FakeLLM: the request forces tool {ctx.forced_tool!r} (structured output), "
                "so the scripted Reply text must be a JSON object (the tool's input); got "
                f"{reply.text[:80]!r}. Script Reply(..., honour_format=False) for a model "
                "that ignores it.",
                headers={"x-should-retry": "false"},
            )
        return dataclasses.replace(
            reply,
            text="",
            chunks=[],
            tool_calls=[ToolCall(ctx.forced_tool, value)],
            finish_reason=reply.finish_reason,
        )

    def error_body(self, error: WireError, request_id: str) -> dict[str, Any]:
        status = error.status
        default_type = "api_error" if status >= 500 else "invalid_request_error"
        return {
            "type": "error",
            "error": {
                "type": error.error_type or _ERROR_TYPES.get(status, default_type),
                "message": error.message,
            },
            "request_id": request_id,
        }

    def unknown_model(self, model: str) -> WireError:
        return WireError(404, f"model: {model}")

    def _message(self, reply: Reply, ctx: RenderContext) -> dict[str, Any]:
        return {
            "id": random_id("msg_01", 22),
            "type": "message",
            "role": "assistant",
            "model": reply.model or ctx.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_json(ctx.usage_for(reply)),
        }

    def render_json(self, reply: Reply, ctx: RenderContext) -> dict[str, Any]:
        reply = self._as_forced(reply, ctx)
        content: list[dict[str, Any]] = []
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for call in reply.tool_calls:
            content.append(
                {
                    "type": "tool_use",
                    "id": _tool_id(call),
                    "name": call.name,
                    "input": _tool_input(call),
                }
            )
        return {**self._message(reply, ctx), "content": content, "stop_reason": stop_reason(reply)}

    def render_stream(self, reply: Reply, ctx: RenderContext) -> StreamPlan:
        reply = self._as_forced(reply, ctx)
        b = PlanBuilder()
        usage = ctx.usage_for(reply)
        start = self._message(reply, ctx)
        start["usage"] = {**usage_json(usage), "output_tokens": 1}
        b.head(named_event("message_start", {"type": "message_start", "message": start}))
        blocks = 0

        def open_block(block: dict[str, Any]) -> None:
            b.emit(
                named_event(
                    "content_block_start",
                    {"type": "content_block_start", "index": blocks, "content_block": block},
                )
            )
            if blocks == 0:
                b.emit(named_event("ping", {"type": "ping"}))

        def delta(payload: dict[str, Any]) -> bytes:
            event = {"type": "content_block_delta", "index": blocks, "delta": payload}
            return named_event("content_block_delta", event)

        def close_block() -> None:
            b.emit(
                named_event("content_block_stop", {"type": "content_block_stop", "index": blocks})
            )

        if reply.text:
            open_block({"type": "text", "text": ""})
            for piece in reply.text_chunks:
                b.step(delta({"type": "text_delta", "text": piece}))
            close_block()
            blocks += 1
        for call in reply.tool_calls:
            open_block({"type": "tool_use", "id": _tool_id(call), "name": call.name, "input": {}})
            b.emit(delta({"type": "input_json_delta", "partial_json": ""}))
            for piece in call.argument_chunks():
                b.step(delta({"type": "input_json_delta", "partial_json": piece}))
            close_block()
            blocks += 1
        if blocks == 0:
            b.emit(named_event("ping", {"type": "ping"}))
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(reply), "stop_sequence": None},
            "usage": {"output_tokens": usage.output_tokens},
        }
        b.emit(named_event("message_delta", message_delta))
        b.emit(named_event("message_stop", {"type": "message_stop"}))
        return b.build()

    def stream_error_event(self, message: str, error_type: str | None) -> bytes:
        error = {"type": error_type or "overloaded_error", "message": message}
        return named_event("error", {"type": "error", "error": error})

    def models_body(self, models: list[str]) -> dict[str, Any]:
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
            for m in models
        ]
        return {
            "data": data,
            "has_more": False,
            "first_id": models[0] if models else None,
            "last_id": models[-1] if models else None,
        }


ANTHROPIC = AnthropicWire()
