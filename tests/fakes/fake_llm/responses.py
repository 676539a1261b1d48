"""Wire-neutral scripted responses.

A test scripts what the "model" answers with these dataclasses; the server renders
each one on whichever wire (OpenAI Chat Completions or Anthropic Messages) and in
whichever mode (SSE stream or JSON body) the request asked for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from .records import RecordedRequest

_WORDS = re.compile(r"\S+\s*|\s+")


def split_text(text: str) -> list[str]:
    """Split ``text`` into word-sized pieces (roughly one "token" each); joins back exactly."""
    return _WORDS.findall(text)


def split_evenly(text: str, parts: int = 3) -> list[str]:
    """Split ``text`` into at most ``parts`` non-empty pieces of near-equal length."""
    if not text:
        return []
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _check_delays(chunk_delay: float, first_token_delay: float) -> None:
    if chunk_delay < 0 or first_token_delay < 0:
        raise ValueError("delays must be >= 0")


@dataclass(frozen=True)
class Usage:
    """Token counts to report.  ``cached_input_tokens`` becomes OpenAI's
    ``prompt_tokens_details.cached_tokens`` / Anthropic's ``cache_read_input_tokens``."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0


@dataclass
class ToolCall:
    """A tool (function) call the model makes.

    ``arguments`` given as a ``str`` is sent verbatim (so a test can send malformed
    JSON); a ``dict`` is JSON-encoded.  ``id`` defaults to a fresh ``call_...`` /
    ``toolu_...`` id for the wire.
    """

    name: str
    arguments: str | dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False, separators=(",", ":"))

    def argument_chunks(self) -> list[str]:
        """The pieces the arguments are streamed in (several deltas, like a real model)."""
        return split_evenly(self.arguments_json, 3)


@dataclass
class Reply:
    """A successful completion: text and/or tool calls.

    When streamed, the text goes out as ``chunks`` (default: word-sized pieces) and
    each tool call's arguments as a few argument deltas.  Timing: the first piece is
    sent ``first_token_delay`` seconds after the response headers and each further
    piece ``chunk_delay`` seconds after the previous one (``chunk_delay=1/40`` is 40
    tokens/s); a non-streamed reply waits that same total before the body is sent.

    ``finish_reason`` may use either wire's vocabulary ("stop"/"end_turn",
    "length"/"max_tokens", "tool_calls"/"tool_use", ...); it is mapped per wire and
    defaults to the tool-call reason when there are tool calls, else the natural stop.
    ``model`` defaults to the request's model; ``usage`` to plausible counts.

    Structured output: script the JSON answer as ``text``.  It is sent where the
    request's structured output puts it: the message content for OpenAI
    ``response_format`` json_schema, and for Anthropic forced tool use
    (``tool_choice: {"type": "tool", "name": N}``) a ``tool_use`` block calling
    ``N`` with the text, which must then be a JSON object, as its ``input``.
    ``honour_format=False`` answers with plain text regardless, like a proxy or
    model that ignores the structured-output request.
    """

    text: str = ""
    _: KW_ONLY
    chunks: list[str] | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    chunk_delay: float = 0.0
    first_token_delay: float = 0.0
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    honour_format: bool = True

    def __post_init__(self) -> None:
        if self.chunks is None:
            self.chunks = split_text(self.text)
        else:
            self.chunks = [c for c in self.chunks if c]
            joined = "".join(self.chunks)
            if not self.text:
                self.text = joined
            elif joined != self.text:
                raise ValueError("Reply: chunks do not join to text")
        self.tool_calls = list(self.tool_calls)
        _check_delays(self.chunk_delay, self.first_token_delay)

    @property
    def text_chunks(self) -> list[str]:
        return self.chunks or []

    @property
    def piece_count(self) -> int:
        """How many paced pieces a stream of this reply sends (text + argument deltas)."""
        return len(self.text_chunks) + sum(len(c.argument_chunks()) for c in self.tool_calls)

    @property
    def duration(self) -> float:
        """Seconds from the response headers to the last piece."""
        if not self.piece_count:
            return self.first_token_delay
        return self.first_token_delay + (self.piece_count - 1) * self.chunk_delay


@dataclass
class ErrorReply:
    """An HTTP error with the wire's real error body.

    ``error_type`` overrides the body's ``type`` (default: what the real API uses for
    ``status``).  ``retry_after`` (seconds) sets ``Retry-After``; ``should_retry`` sets
    the SDKs' ``x-should-retry`` header; ``headers`` adds anything else
    (e.g. ``{"retry-after-ms": "20"}``).
    """

    status: int
    message: str = ""
    _: KW_ONLY
    retry_after: float | None = None
    error_type: str | None = None
    should_retry: bool | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError("ErrorReply.status must be a 4xx/5xx code")
        if not self.message:
            self.message = f"Scripted error {self.status} from FakeLLM"

    def response_headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.retry_after is not None:
            ra = self.retry_after
            out["retry-after"] = str(int(ra)) if float(ra).is_integer() else repr(float(ra))
        if self.should_retry is not None:
            out["x-should-retry"] = "true" if self.should_retry else "false"
        out.update({k.lower(): v for k, v in self.headers.items()})
        return out


@dataclass
class _Interrupted:
    """A stream that starts like a text :class:`Reply` of ``after_chunks`` and never finishes."""

    after_chunks: list[str] = field(default_factory=list)
    _: KW_ONLY
    chunk_delay: float = 0.0
    first_token_delay: float = 0.0

    def __post_init__(self) -> None:
        self.after_chunks = list(self.after_chunks)
        _check_delays(self.chunk_delay, self.first_token_delay)

    def as_reply(self) -> Reply:
        return Reply(
            chunks=self.after_chunks,
            chunk_delay=self.chunk_delay,
            first_token_delay=self.first_token_delay,
        )


@dataclass
class Hang(_Interrupted):
    """Stream ``after_chunks`` (after the wire's opening events), then send nothing more
    and keep the connection open until the client disconnects or the server stops.
    A non-streaming request gets no response headers at all."""


@dataclass
class Drop(_Interrupted):
    """Stream ``after_chunks`` then close the TCP connection mid-body (the chunked body
    never terminates).  A non-streaming request is closed before any response.

    ``close_after``: seconds between the last chunk and the close (default 50 ms, so
    the client has read the chunks).  aiohttp's ``StreamReader`` (under the SDKs'
    ``DefaultAioHttpClient``) raises a pending connection error before returning
    still-buffered bytes, so with ``close_after=0`` whether a client sees the last
    chunks depends on how it reads.

    ``body_bytes`` (non-streaming only): send the response headers, with the
    ``Content-Length`` of the whole JSON body of ``Reply(chunks=after_chunks)``,
    and only its first ``body_bytes`` bytes, then close: a truncated body."""

    close_after: float = 0.05
    body_bytes: int | None = None


@dataclass
class StreamError(_Interrupted):
    """Stream ``after_chunks`` then an in-stream error, as the real APIs do on overload:
    Anthropic ``event: error`` / OpenAI ``data: {"error": {...}}``.  ``error_type``
    defaults to ``overloaded_error`` (Anthropic) / ``server_error`` (OpenAI).  A
    non-streaming request gets an HTTP ``status`` error with the same body."""

    message: str = "Overloaded"
    _: KW_ONLY
    error_type: str | None = None
    status: int = 529


Response: TypeAlias = Reply | ErrorReply | Hang | Drop | StreamError
ResponseFactory: TypeAlias = Callable[["RecordedRequest"], "Response | Awaitable[Response]"]
Scripted: TypeAlias = Response | ResponseFactory

RESPONSE_TYPES = (Reply, ErrorReply, Hang, Drop, StreamError)
