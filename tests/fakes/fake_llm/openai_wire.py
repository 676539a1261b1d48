"""The OpenAI Chat Completions dialect (also OpenRouter / NanoGPT style prefixes).

Streams are ``data: {chat.completion.chunk}`` events: a ``role`` delta, ``content``
deltas, ``tool_calls`` deltas (``id`` + ``type`` + ``function.name`` first, then
``function.arguments`` pieces), a chunk with ``finish_reason``, a usage chunk with
empty ``choices`` when ``stream_options.include_usage`` is set, then ``data: [DONE]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .errors import WireError
from .openai_validation import validate_chat_request
from .responses import Reply, Usage
from .sse import PlanBuilder, StreamPlan, data_event
from .wire import TO_OPENAI_FINISH, RenderContext, Wire, bearer_token, random_id

_ERROR_TYPES = {401: "invalid_request_error", 403: "permission_error", 429: "requests"}
_ERROR_CODES = {429: "rate_limit_exceeded"}
_FINGERPRINT = "fp_fakellm"


def _mask(key: str) -> str:
    return f"{key[:3]}{'*' * 10}{key[-4:]}" if len(key) > 8 else "*" * len(key)


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def finish_reason(reply: Reply) -> str:
    reason = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
    return TO_OPENAI_FINISH.get(reason, reason)


class OpenAIWire(Wire):
    name = "openai"
    request_id_header: ClassVar[str] = "x-request-id"

    def authenticate(self, headers: Mapping[str, str], api_keys: set[str] | None) -> None:
        if api_keys is None:
            return
        token = bearer_token(headers)
        if token is None:
            raise WireError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if token not in api_keys:
            raise WireError(
                401,
                f"Incorrect API key provided: {_mask(token)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    def validate(self, body: Any) -> None:
        validate_chat_request(body)

    def error_body(self, error: WireError, request_id: str) -> dict[str, Any]:
        status = error.status
        default_type = "server_error" if status >= 500 else "invalid_request_error"
        return {
            "error": {
                "message": error.message,
                "type": error.error_type or _ERROR_TYPES.get(status, default_type),
                "param": error.param,
                "code": error.code or _ERROR_CODES.get(status),
            }
        }

    def unknown_model(self, model: str) -> WireError:
        return WireError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )

    def render_json(self, reply: Reply, ctx: RenderContext) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text if reply.text or not reply.tool_calls else None,
            "refusal": None,
            "annotations": [],
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id or random_id("call_"),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
                for call in reply.tool_calls
            ]
        return {
            "id": random_id("chatcmpl-", 29),
            "object": "chat.completion",
            "created": ctx.created,
            "model": reply.model or ctx.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish_reason(reply),
                }
            ],
            "usage": usage_json(ctx.usage_for(reply)),
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }

    def render_stream(self, reply: Reply, ctx: RenderContext) -> StreamPlan:
        envelope: dict[str, Any] = {
            "id": random_id("chatcmpl-", 29),
            "object": "chat.completion.chunk",
            "created": ctx.created,
            "model": reply.model or ctx.model,
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }
        if ctx.include_usage:
            envelope["usage"] = None

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return data_event({**envelope, "choices": [choice]})

        b = PlanBuilder()
        first_content = "" if reply.text or not reply.tool_calls else None
        b.head(chunk({"role": "assistant", "content": first_content, "refusal": None}))
        for piece in reply.text_chunks:
            b.step(chunk({"content": piece}))
        for index, call in enumerate(reply.tool_calls):
            opening = {
                "index": index,
                "id": call.id or random_id("call_"),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            b.emit(chunk({"tool_calls": [opening]}))
            for piece in call.argument_chunks():
                b.step(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
        b.emit(chunk({}, finish_reason(reply)))
        if ctx.include_usage:
            b.emit(
                data_event({**envelope, "choices": [], "usage": usage_json(ctx.usage_for(reply))})
            )
        b.emit(b"data: [DONE]\n\n")
        return b.build()

    def stream_error_event(self, message: str, error_type: str | None) -> bytes:
        error = {
            "message": message,
            "type": error_type or "server_error",
            "param": None,
            "code": None,
        }
        return data_event({"error": error})

    def models_body(self, models: list[str]) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "fake-llm"}
                for m in models
            ],
        }


OPENAI = OpenAIWire()
