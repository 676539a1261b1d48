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

Modules: :mod:`.server` (``FakeLLM``), :mod:`.responses` (the script types),
:mod:`.records` (what was seen), :mod:`.openai_wire` / :mod:`.anthropic_wire`
(rendering, auth, error bodies), :mod:`.openai_validation` /
:mod:`.anthropic_validation` (request rules), :mod:`.sse`, :mod:`.wire`.
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
