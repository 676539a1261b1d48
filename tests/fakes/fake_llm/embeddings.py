"""``POST …/embeddings``: the OpenAI Embeddings wire, answered with computed vectors.

Unlike completions, embeddings are not scripted: each input gets a deterministic
hashed bag-of-words vector (lower-cased word tokens hashed into ``dimensions``
buckets with a hashed sign, then L2-normalised).  Texts that share words are
therefore closer than unrelated texts, which is enough for retrieval tests, and the
same text always gets the same vector.

Failures are scripted on a queue of their own, ``fake.embeddings.enqueue(...)``
(:class:`ErrorReply`, :class:`Hang`, :class:`Drop`): kept apart from the completion
queue so a test that both chats and embeds knows which call gets which failure.

Knobs for clients that must cope with imperfect OpenAI-compatible servers:
``fake.embeddings.fixed_dims`` makes every vector that size, ignoring the request's
``dimensions`` (as some compatible servers do).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import WireError
from .openai_validation import json_type
from .openai_wire import OPENAI
from .records import RecordedRequest
from .responses import Drop, ErrorReply, Hang
from .sse import dumps

if TYPE_CHECKING:
    from .server import FakeLLM

#: The real API's limit on inputs per request.
MAX_INPUTS = 2048
DEFAULT_DIMS = 1536
#: Native sizes of OpenAI's models: ``dimensions`` may shorten, never lengthen.
NATIVE_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
#: Models that reject ``dimensions`` outright.
NO_DIMENSIONS = {"text-embedding-ada-002"}
#: Other model names (``fake-model``, compatible servers' names) may ask for up to this.
MAX_DIMS = 3072

_WORD = re.compile(r"\w+")
_INVALID_INPUT = (
    "'$.input' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)

EmbeddingScript = ErrorReply | Hang | Drop


def embed_text(text: str, dims: int) -> list[float]:
    """The fake's vector for ``text``: a signed hashed bag of words, unit length."""
    vec = [0.0] * dims
    tokens = _WORD.findall(text.lower()) or [text]  # punctuation-only text still gets a vector
    for token in tokens:
        digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
        h = int.from_bytes(digest, "little")
        vec[h % dims] += 1.0 if (h >> 63) & 1 else -1.0
    norm = math.sqrt(math.fsum(x * x for x in vec))
    if norm == 0.0:  # every token cancelled out: fall back to one bucket
        vec[0] = 1.0
        return vec
    return [x / norm for x in vec]


def _token_count(item: str | list[int]) -> int:
    if isinstance(item, list):
        return max(1, len(item))
    return max(1, len(_WORD.findall(item)))


def _invalid(message: str = _INVALID_INPUT, *, param: str | None = None) -> WireError:
    return WireError(400, message, param=param)


def parse_inputs(body: dict[str, Any]) -> list[str | list[int]]:
    """The request's inputs, rejected the way the real API rejects them.

    The API also takes token arrays (``list[int]`` or ``list[list[int]]``); they are
    accepted and embedded by their token ids.
    """
    if "input" not in body:
        raise WireError(
            400,
            "Missing required parameter: 'input'.",
            param="input",
            code="missing_required_parameter",
        )
    raw = body["input"]
    if isinstance(raw, str):
        items: list[Any] = [raw]
    elif isinstance(raw, list):
        if raw and all(isinstance(x, int) and not isinstance(x, bool) for x in raw):
            items = [raw]  # one token array
        else:
            items = raw
    else:
        raise _invalid()
    if not items:
        raise _invalid()
    if len(items) > MAX_INPUTS:
        raise _invalid(
            f"Too many inputs. The max number of inputs is {MAX_INPUTS}. We recommend "
            "splitting your inputs into smaller batches.",
            param="input",
        )
    for item in items:
        if isinstance(item, str):
            if not item:
                raise _invalid()
        elif isinstance(item, list):
            if not item or not all(
                isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in item
            ):
                raise _invalid()
        else:
            raise _invalid()
    return items


def requested_dims(body: dict[str, Any], model: str) -> int:
    native = NATIVE_DIMS.get(model)
    dims = body.get("dimensions")
    if dims is None:
        return native or DEFAULT_DIMS
    if model in NO_DIMENSIONS:
        raise WireError(400, "This model does not support specifying dimensions.")
    if not isinstance(dims, int) or isinstance(dims, bool):
        raise WireError(
            400,
            f"Invalid type for 'dimensions': expected an integer, but got {json_type(dims)} "
            "instead.",
            param="dimensions",
            code="invalid_type",
        )
    limit = native or MAX_DIMS
    if not 1 <= dims <= limit:
        raise WireError(
            400,
            f"Invalid value for 'dimensions' = {dims}. Must be between 1 and {limit}.",
            param="dimensions",
            code="invalid_value",
        )
    return dims


def _encode(vec: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode("ascii")
    return vec


class EmbeddingsEndpoint:
    """The embeddings route of one :class:`FakeLLM` (``fake.embeddings``)."""

    def __init__(self, server: FakeLLM) -> None:
        self._server = server
        self._queue: deque[EmbeddingScript] = deque()
        #: Answers every request when set (after the queue), e.g. a permanent ``ErrorReply(500)``.
        self.default: EmbeddingScript | None = None
        #: Ignore ``dimensions`` and always return vectors of this size.
        self.fixed_dims: int | None = None

    def enqueue(self, *responses: EmbeddingScript) -> None:
        """Failures for the next embeddings requests, one per request; then vectors again."""
        for response in responses:
            if not isinstance(response, (ErrorReply, Hang, Drop)):
                raise TypeError(
                    f"embeddings can be scripted with ErrorReply/Hang/Drop, not {response!r}"
                )
        self._queue.extend(responses)

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        """The embeddings requests among ``fake.requests``."""
        return [r for r in self._server.requests if r.path.rstrip("/").endswith("/embeddings")]

    def reset(self) -> None:
        self._queue.clear()
        self.default = None
        self.fixed_dims = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        server = self._server
        record, too_large = await server.record(request, "openai")
        headers, body = record.headers, record.json
        try:
            if too_large is not None:
                raise too_large
            OPENAI.authenticate(headers, server.api_keys)
            if not isinstance(body, dict):
                raise WireError(400, "We could not parse the JSON body of your request.")
            model = body.get("model")
            if not isinstance(model, str) or not model:
                raise WireError(400, "you must provide a model parameter")
            items = parse_inputs(body)
            dims = requested_dims(body, model)
            encoding_format = body.get("encoding_format", "float")
            if encoding_format not in ("float", "base64"):
                raise WireError(
                    400,
                    f"Invalid value: '{encoding_format}'. Supported values are: 'float' and "
                    "'base64'.",
                    param="encoding_format",
                    code="invalid_value",
                )
            if server.models is not None and model not in server.models:
                raise OPENAI.unknown_model(model)
        except WireError as err:
            return self._fail(record, err, "rejected")

        script = self._queue.popleft() if self._queue else self.default
        if isinstance(script, ErrorReply):
            err = WireError(
                script.status,
                script.message,
                error_type=script.error_type,
                headers=script.response_headers(),
            )
            return self._fail(record, err, "error")
        if isinstance(script, (Hang, Drop)):
            started = time.monotonic()
            due = math.inf if isinstance(script, Hang) else started + script.as_reply().duration
            pause = await server._pause(request, due)
            if pause != "ok":
                return server._interrupted(request, record, pause, started)
            record.outcome = "dropped"
            if request.transport is not None:
                request.transport.close()
            server._notify()
            return web.Response()  # never reaches the client

        size = self.fixed_dims or dims
        data = []
        tokens = 0
        for index, item in enumerate(items):
            text = item if isinstance(item, str) else " ".join(f"#{t}" for t in item)
            tokens += _token_count(item)
            data.append(
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": _encode(embed_text(text, size), encoding_format),
                }
            )
        response = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        record.status = 200
        record.outcome = "completed"
        server.completed += 1
        server._notify()
        return web.Response(
            body=dumps(response),
            content_type="application/json",
            headers={OPENAI.request_id_header: OPENAI.new_request_id()},
        )

    def _fail(self, record: RecordedRequest, err: WireError, outcome: Any) -> web.Response:
        server = self._server
        record.status = err.status
        record.outcome = outcome
        record.error = err.message
        server._notify()
        request_id = OPENAI.new_request_id()
        return web.Response(
            status=err.status,
            body=dumps(OPENAI.error_body(err, request_id)),
            content_type="application/json",
            headers={OPENAI.request_id_header: request_id, **err.headers},
        )
