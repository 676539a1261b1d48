"""Provider-neutral request, response and stream-event types."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "tool_calls", "length", "content_filter", "other"]


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    """An image for vision models: inline bytes (base64 on the wire) or a URL."""

    media_type: str = "image/png"
    data: bytes | None = None
    url: str | None = None


Part = TextPart | ImagePart


@dataclass
class ToolCall:
    id: str
    name: str
    raw_arguments: str = "{}"

    @property
    def arguments(self) -> dict[str, Any]:
        """Parsed arguments; raises ``ValueError`` with a readable reason."""
        raw = self.raw_arguments.strip() or "{}"
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"arguments are not valid JSON ({exc.msg} at char {exc.pos})"
            ) from None
        if not isinstance(value, dict):
            raise ValueError(f"arguments must be a JSON object, got {type(value).__name__}")
        return value


@dataclass
class Message:
    role: Role
    content: list[Part] = field(default_factory=list)
    # assistant: the tool calls it made; tool: which call this answers
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    # who spoke (display name), so group conversations stay clear
    name: str | None = None
    is_error: bool = False

    @classmethod
    def text(cls, role: Role, text: str, *, name: str | None = None) -> Message:
        return cls(role=role, content=[TextPart(text)], name=name)

    @classmethod
    def tool_result(cls, call_id: str, text: str, *, is_error: bool = False) -> Message:
        return cls(role="tool", content=[TextPart(text)], tool_call_id=call_id, is_error=is_error)

    @property
    def plain_text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def images(self) -> list[ImagePart]:
        return [p for p in self.content if isinstance(p, ImagePart)]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


@dataclass(frozen=True)
class OutputSchema:
    """Ask for a JSON answer of this shape (provider-neutral structured output).

    Each wire expresses it its own way (OpenAI ``response_format`` json_schema,
    Anthropic a forced tool call); either way the answer's JSON comes back as
    ``Completion.text``.  ``schema`` is a JSON Schema whose root is an object
    (both wires require that), written in the strict subset: every object lists
    all its properties in ``required`` and sets ``additionalProperties: false``.
    Models or servers without structured output get only the prompt, so callers
    still parse the answer tolerantly.
    """

    name: str  # [a-zA-Z0-9_-]{1,64}: both wires use it as an identifier
    schema: dict[str, Any]
    description: str = ""


@dataclass
class CompletionRequest:
    model: str
    messages: list[Message]
    system: str | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    max_tokens: int = 4096
    #: Only set when the route's wire and model accept it (``LLMService`` decides).
    temperature: float | None = None
    #: Only set when the route supports structured output (``LLMService`` decides).
    output_schema: OutputSchema | None = None


# ---- stream events -------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call as it streams in (for progress display)."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments_delta: str = ""


@dataclass
class Completion:
    """The assembled result of one model call (also the stream's last event)."""

    text: str
    tool_calls: list[ToolCall]
    finish_reason: FinishReason
    usage: Usage
    model: str


StreamEvent = TextDelta | ToolCallDelta | Completion
