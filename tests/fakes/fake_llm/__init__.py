"""A loopback fake LLM API that the real ``openai`` and ``anthropic`` SDKs talk to.

It speaks the real wire protocols — OpenAI Chat Completions (``…/chat/completions``,
any prefix, so OpenRouter-style ``/api/v1`` works) and Anthropic Messages
(``/v1/messages``) — streamed (SSE) and not, rejects requests the real APIs would
reject, and answers from a wire-neutral script.  Typical use::

    async with FakeLLM(api_keys={"k"}) as fake:
        fake.enqueue(
            Reply("Hello there!", chunk_delay=0.01),
            Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
            ErrorReply(429, retry_after=0.05),
            Hang(["partial "]),
        )
        client = AsyncOpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
        ...
        assert fake.requests[0].messages[-1]["content"] == "hi"
        await fake.wait_for_disconnect(timeout=1)

Script: ``fake.enqueue(*responses)`` is consumed one per request (either wire), then
``fake.default``, else a 500 "no scripted response" (sent with ``x-should-retry:
false``).  Responses: :class:`Reply` (text and/or :class:`ToolCall` s, pacing via
``chunk_delay`` / ``first_token_delay``), :class:`ErrorReply`, :class:`Hang`,
:class:`Drop` (``body_bytes=n``: a truncated non-streamed body), :class:`StreamError`,
or a ``(RecordedRequest) -> Response`` factory.

SDK behaviour worth knowing (openai 3.63 / anthropic 2.17, both on httpx2):

* Both retry 408/409/429/5xx and connection errors (``max_retries``, default 2) and
  obey ``x-should-retry``.  Both honour ``retry-after-ms`` then ``retry-after``
  (float seconds or an HTTP date) when > 0; otherwise they back off
  0.5 s * 2^n (jittered -25%, max 8 s).  openai refuses to retry at all when
  Retry-After > 120 s; anthropic sleeps for any Retry-After, uncapped.
* anthropic-python 2.x sends ``api_key`` as ``Authorization: Bearer``, not
  ``x-api-key``; the fake accepts either on the Anthropic wire.
* Mid-stream transport failures: openai raises ``APIConnectionError`` /
  ``APITimeoutError`` (``__cause__`` is the httpx2 error).  anthropic up to 2.10 did
  NOT wrap them (the raw ``httpx2.RemoteProtocolError`` / ``httpx2.ReadTimeout``
  escaped the stream iterator); 2.17 wraps them like openai.  Which class arrives is
  the SDK's business: the fake's self-tests check what goes over the wire (raw
  sockets), and Clara maps both forms alike (``clara_core/llm/providers/http_errors``).
  With ``DefaultAioHttpClient`` a cut chunked body is ``httpx2.ReadError``
  ("Response payload is not completed") instead of ``RemoteProtocolError``.
* A truncated non-streamed body (``Drop(body_bytes=n)``) surfaces as both SDKs'
  ``APIConnectionError`` caused by ``httpx2.ReadError``.
* Structured output: OpenAI ``response_format`` json_schema (validated, strict rules
  included) returns the scripted text as the message content; Anthropic forced tool
  use (``tool_choice: {"type": "tool"}``) returns it as that tool's ``tool_use``
  input.  Unknown top-level Anthropic fields (``temperature``, ...) are a 400.
* In-stream error events: openai raises ``APIError`` (not a status error);
  anthropic raises a plain ``APIStatusError`` whose ``status_code`` is the stream's 200.
* To make the server see a disconnect, close the stream: ``await stream.close()``,
  ``await stream.response.aclose()``, or cancel the consuming task (the SDK's
  generator closes the response).  Merely ``break``-ing out of ``async for``
  leaves the connection open until the stream object is garbage-collected.
* The anthropic ``messages.stream()`` accumulator parses ``input_json_delta`` with
  partial-mode jiter: truncated JSON becomes a partial dict, invalid JSON raises
  ``ValueError("Unable to parse tool parameter JSON ...")``.

Modules: :mod:`.server` (``FakeLLM``), :mod:`.responses` (the script types),
:mod:`.records` (what was seen), :mod:`.openai_wire` / :mod:`.anthropic_wire`
(rendering, auth, error bodies), :mod:`.openai_validation` /
:mod:`.anthropic_validation` (request rules), :mod:`.json_schema` (structured-output
schema rules), :mod:`.sse`, :mod:`.wire`.
"""

from .errors import WireError
from .records import Disconnect, Outcome, RecordedRequest
from .responses import (
    Drop,
    ErrorReply,
    Hang,
    Reply,
    Response,
    ResponseFactory,
    Scripted,
    StreamError,
    ToolCall,
    Usage,
)
from .server import DEFAULT_MODEL, FakeLLM

__all__ = [
    "DEFAULT_MODEL",
    "Disconnect",
    "Drop",
    "ErrorReply",
    "FakeLLM",
    "Hang",
    "Outcome",
    "RecordedRequest",
    "Reply",
    "Response",
    "ResponseFactory",
    "Scripted",
    "StreamError",
    "ToolCall",
    "Usage",
    "WireError",
]
