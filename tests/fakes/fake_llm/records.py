"""What the fake saw: one :class:`RecordedRequest` per completion request, one
:class:`Disconnect` per client that went away before its response finished."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

WireName: TypeAlias = Literal["openai", "anthropic"]

#: How a recorded request ended:
#: ``pending`` (still running), ``completed`` (a Reply delivered in full),
#: ``rejected`` (auth / headers / size / validation failure by the fake),
#: ``error`` (a scripted ErrorReply, or no scripted response), ``stream_error``
#: (StreamError delivered), ``dropped`` (Drop), ``disconnected`` (the client went
#: away first), ``aborted`` (the server stopped while the response was hanging).
Outcome: TypeAlias = Literal[
    "pending",
    "completed",
    "rejected",
    "error",
    "stream_error",
    "dropped",
    "disconnected",
    "aborted",
]


@dataclass
class RecordedRequest:
    """A completion request (``/chat/completions``, ``/messages``, ``/count_tokens``)."""

    wire: WireName
    method: str
    path: str
    #: Lower-case header names.
    headers: dict[str, str]
    #: The parsed JSON body, or ``None`` when it was not JSON.
    json: Any
    #: ``time.monotonic()`` when the request reached the handler.
    received_at: float
    #: Whether the body asked for ``"stream": true``.
    stream: bool
    #: HTTP status sent (``None`` while pending or when the connection was dropped first).
    status: int | None = None
    outcome: Outcome = "pending"
    #: The error message sent back, for rejected / error outcomes.
    error: str | None = None
    #: Scripted pieces actually written (text chunks and tool-argument deltas).
    chunks_sent: int = 0
    #: Size of the request body in bytes.
    body_bytes: int = 0

    @property
    def body(self) -> dict[str, Any]:
        return self.json if isinstance(self.json, dict) else {}

    @property
    def model(self) -> str | None:
        return self.body.get("model")

    @property
    def messages(self) -> list[Any]:
        messages = self.body.get("messages")
        return messages if isinstance(messages, list) else []

    @property
    def tools(self) -> list[Any]:
        tools = self.body.get("tools")
        return tools if isinstance(tools, list) else []

    @property
    def system(self) -> Any:
        """Anthropic's top-level ``system``, or the OpenAI system/developer messages' content."""
        if self.wire == "anthropic":
            return self.body.get("system")
        return [m.get("content") for m in self.messages if m.get("role") in ("system", "developer")]


@dataclass(frozen=True)
class Disconnect:
    """A client closed the connection before its response finished."""

    request: RecordedRequest
    #: ``time.monotonic()`` when the fake noticed: within ~10 ms during a Hang or a long
    #: wait, at the next piece's due time during short (<= 50 ms) gaps between pieces.
    at: float
    #: Scripted pieces written before the client left.
    chunks_sent: int
    #: Seconds between the last write (headers or piece) and the disconnect.
    since_last_chunk: float
