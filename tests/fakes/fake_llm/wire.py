"""The interface each API dialect implements (:mod:`.openai_wire`, :mod:`.anthropic_wire`)."""

from __future__ import annotations

import random
import string
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import WireError
from .records import WireName
from .responses import Reply, Usage
from .sse import StreamPlan

_ALNUM = string.ascii_letters + string.digits


def random_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(random.choices(_ALNUM, k=length))


def estimate_tokens(chars: int) -> int:
    return max(1, -(-chars // 4))


#: Anthropic stop_reason -> OpenAI finish_reason, and back.
TO_OPENAI_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
TO_ANTHROPIC_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


@dataclass(frozen=True)
class RenderContext:
    """Per-request facts a wire needs to render a reply."""

    model: str
    #: Estimated prompt size, used when the Reply gives no ``usage``.
    input_tokens: int
    #: OpenAI ``stream_options.include_usage``.
    include_usage: bool
    created: int
    #: The tool the request forces (Anthropic ``tool_choice: {"type": "tool"}``): a
    #: text-only Reply is then rendered as that tool's call, its text as the input.
    forced_tool: str | None = None

    def usage_for(self, reply: Reply) -> Usage:
        if reply.usage is not None:
            return reply.usage
        chars = len(reply.text) + sum(len(c.name) + len(c.arguments_json) for c in reply.tool_calls)
        return Usage(self.input_tokens, estimate_tokens(chars))


class Wire(ABC):
    """One API dialect: auth, validation, error bodies and reply rendering."""

    name: ClassVar[WireName]
    #: Response header carrying the request id (what the SDK reads into ``request_id``).
    request_id_header: ClassVar[str]

    def new_request_id(self) -> str:
        return random_id("req_", 24)

    @abstractmethod
    def authenticate(self, headers: Mapping[str, str], api_keys: set[str] | None) -> None:
        """Raise :class:`WireError` (401) unless the request carries an accepted key."""

    def check_headers(self, headers: Mapping[str, str]) -> None:
        """Raise :class:`WireError` for missing mandatory headers (none by default)."""
        return

    def forced_tool(self, body: dict[str, Any]) -> str | None:
        """The tool a request forces the model to call (structured output), if any."""
        return None

    @abstractmethod
    def validate(self, body: Any) -> None:
        """Raise :class:`WireError` (400) where the real API would reject ``body``."""

    @abstractmethod
    def error_body(self, error: WireError, request_id: str) -> dict[str, Any]:
        """The real API's JSON error body."""

    @abstractmethod
    def unknown_model(self, model: str) -> WireError:
        """The 404 the API answers for a model it does not serve."""

    @abstractmethod
    def render_json(self, reply: Reply, ctx: RenderContext) -> dict[str, Any]:
        """The non-streamed response body."""

    @abstractmethod
    def render_stream(self, reply: Reply, ctx: RenderContext) -> StreamPlan:
        """The streamed response, as a :class:`StreamPlan`."""

    @abstractmethod
    def stream_error_event(self, message: str, error_type: str | None) -> bytes:
        """The in-stream error event the API sends when it fails mid-stream."""

    @abstractmethod
    def models_body(self, models: list[str]) -> dict[str, Any]:
        """``GET .../models``."""


def bearer_token(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
