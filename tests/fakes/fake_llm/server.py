"""``FakeLLM``: a loopback OpenAI + Anthropic API server for the real SDKs.

Routing (any prefix, so OpenRouter / NanoGPT style base URLs work too):

* ``POST …/chat/completions`` — OpenAI wire;
* ``POST …/messages`` — Anthropic wire;
* ``POST …/embeddings`` — OpenAI Embeddings (computed vectors; see :mod:`.embeddings`);
* ``GET …/models`` — the wire's model list (Anthropic when ``anthropic-version`` is sent).

Each completion request is recorded, authenticated, validated like the real API,
then answered by the next scripted response (``enqueue``), else ``default``, else a
loud 500 (with ``x-should-retry: false`` so SDK retries don't hide it).  Requests
rejected by auth / validation do not consume the script.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from aiohttp import web

from .anthropic_wire import ANTHROPIC
from .embeddings import EmbeddingsEndpoint
from .errors import WireError
from .openai_wire import OPENAI
from .records import Disconnect, Outcome, RecordedRequest, WireName
from .responses import (
    RESPONSE_TYPES,
    Drop,
    ErrorReply,
    Hang,
    Reply,
    Response,
    Scripted,
    StreamError,
)
from .sse import StreamPlan, dumps
from .wire import RenderContext, Wire, estimate_tokens

#: How often a long wait (Hang, a long first-token delay) checks for a disconnect.
POLL_INTERVAL = 0.01
#: Waits up to this long (typical gaps between pieces) are one plain sleep: no polling
#: overhead at benchmark rates; a disconnect then shows on the next write.
SHORT_WAIT = 0.05
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MODEL = "fake-model"
_NO_RETRY = {"x-should-retry": "false"}

_Pause = Literal["ok", "gone", "stopping"]


class FakeLLM:
    """OpenAI Chat Completions + Anthropic Messages on 127.0.0.1.

    ``api_keys``: accepted keys (``None`` accepts anything).  ``models``: served
    models (``None`` accepts any model name; ``GET /models`` then lists
    ``fake-model``).  ``validate=False`` turns request validation off.
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str] | None = None,
        models: list[str] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        validate: bool = True,
        default: Scripted | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_keys = set(api_keys) if api_keys is not None else None
        self.models = list(models) if models is not None else None
        self.max_body_bytes = max_body_bytes
        self.validate = validate
        #: Answers requests when the queue is empty: a Response or ``(request) -> Response``.
        self.default: Scripted | None = default
        #: Every completion request, in arrival order.
        self.requests: list[RecordedRequest] = []
        #: Every client that left before its response finished.
        self.disconnect_log: list[Disconnect] = []
        #: Replies delivered in full.
        self.completed = 0
        #: Streaming responses currently open.
        self.active_streams = 0
        self._queue: deque[Scripted] = deque()
        self._disconnects_taken = 0
        self._changed = asyncio.Event()
        self._stopping = False
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        #: ``POST …/embeddings``: its own failure script and knobs.
        self.embeddings = EmbeddingsEndpoint(self)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> FakeLLM:
        if self._runner is not None:
            raise RuntimeError("FakeLLM already started")
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        await web.TCPSite(runner, self._host, self._requested_port).start()
        self._runner = runner
        self._port = runner.addresses[0][1]
        self._stopping = False
        return self

    async def stop(self) -> None:
        """Stop listening; hanging responses are cut off (outcome ``aborted``)."""
        if self._runner is None:
            return
        self._stopping = True
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> FakeLLM:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeLLM not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """For ``AsyncOpenAI(base_url=...)``."""
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """For ``AsyncAnthropic(base_url=...)`` (the SDK appends ``/v1/messages``)."""
        return self.base_url

    def url(self, prefix: str) -> str:
        """Base URL under another prefix, e.g. ``fake.url("/api/v1")`` (OpenRouter style)."""
        return f"{self.base_url}/{prefix.strip('/')}"

    # ------------------------------------------------------------ script

    def enqueue(self, *responses: Scripted) -> None:
        """Append responses, consumed one per completion request (either wire)."""
        for response in responses:
            if not isinstance(response, RESPONSE_TYPES) and not callable(response):
                raise TypeError(f"not a scripted response: {response!r}")
        self._queue.extend(responses)

    @property
    def pending(self) -> int:
        """Scripted responses not consumed yet."""
        return len(self._queue)

    def reset(self) -> None:
        """Forget the script, ``default``, recordings and counters (keeps running)."""
        self._queue.clear()
        self.default = None
        self.requests.clear()
        self.disconnect_log.clear()
        self._disconnects_taken = 0
        self.completed = 0
        self.embeddings.reset()

    # ------------------------------------------------------------ observations

    @property
    def disconnects(self) -> int:
        return len(self.disconnect_log)

    async def wait_for_disconnect(self, timeout: float = 5.0) -> Disconnect:
        """The next client disconnect not returned by an earlier call (waiting for it)."""
        index = self._disconnects_taken
        await self.wait_until(lambda: len(self.disconnect_log) > index, timeout, "a disconnect")
        self._disconnects_taken = index + 1
        return self.disconnect_log[index]

    async def wait_for_requests(self, count: int, timeout: float = 5.0) -> RecordedRequest:
        """Wait until ``count`` requests arrived; returns the ``count``-th."""
        await self.wait_until(lambda: len(self.requests) >= count, timeout, f"{count} requests")
        return self.requests[count - 1]

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until every recorded request has finished."""
        await self.wait_until(
            lambda: all(r.outcome != "pending" for r in self.requests), timeout, "idle"
        )

    async def wait_until(
        self, ready: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
    ) -> None:
        """Wait until ``ready()`` is true; it is re-checked whenever the fake's state
        changes (a request arrives, a stream opens or ends, a disconnect, ...)."""
        deadline = time.monotonic() + timeout
        while not ready():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"FakeLLM: no {what} within {timeout}s")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------ routing

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/")
        if request.method == "POST" and path.endswith("/chat/completions"):
            return await self._completion(request, OPENAI)
        if request.method == "POST" and path.endswith("/messages"):
            return await self._completion(request, ANTHROPIC)
        if request.method == "POST" and path.endswith("/embeddings"):
            return await self.embeddings.handle(request)
        wire: Wire = ANTHROPIC if "anthropic-version" in request.headers else OPENAI
        if request.method == "GET" and path.endswith("/models"):
            headers = _lower(request.headers)
            try:
                wire.authenticate(headers, self.api_keys)
                wire.check_headers(headers)
            except WireError as err:
                return _error_response(wire, err)
            body = wire.models_body(self.models or [DEFAULT_MODEL])
            return _json_response(body, {wire.request_id_header: wire.new_request_id()})
        return _error_response(
            wire, WireError(404, f"Invalid URL ({request.method} {request.path})")
        )

    async def record(
        self, request: web.Request, wire_name: WireName
    ) -> tuple[RecordedRequest, WireError | None]:
        """Read, parse and record a request (rejected ones too, so tests see them);
        also returns the API's 413 error when the body was too large."""
        received_at = time.monotonic()
        headers = _lower(request.headers)
        too_large = False
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raw, too_large = b"", True
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        record = RecordedRequest(
            wire=wire_name,
            method=request.method,
            path=request.path,
            headers=headers,
            json=body,
            received_at=received_at,
            stream=isinstance(body, dict) and body.get("stream") is True,
            body_bytes=len(raw),
        )
        self.requests.append(record)
        self._notify()
        too_large_error = (
            WireError(
                413,
                f"Request exceeds the maximum allowed number of bytes ({self.max_body_bytes}).",
                code="request_too_large",
            )
            if too_large
            else None
        )
        return record, too_large_error

    async def _completion(self, request: web.Request, wire: Wire) -> web.StreamResponse:
        record, too_large = await self.record(request, wire.name)
        headers, body = record.headers, record.json
        try:
            if too_large is not None:
                raise too_large
            wire.authenticate(headers, self.api_keys)
            wire.check_headers(headers)
            if not isinstance(body, dict):
                raise WireError(400, "We could not parse the JSON body of your request.")
            if self.validate:
                wire.validate(body)
            if self.models is not None and body.get("model") not in self.models:
                raise wire.unknown_model(str(body.get("model")))
        except WireError as err:
            return self._fail(record, wire, err, "rejected")

        try:
            response = await self._next_response(record)
        except Exception as exc:  # a broken factory must fail the test loudly
            err = WireError(500, f"FakeLLM: response factory raised {exc!r}", headers=_NO_RETRY)
            return self._fail(record, wire, err, "error")
        if response is None:
            message = (
                f"FakeLLM: no scripted response for {wire.name} request #{len(self.requests)} "
                f"({request.method} {request.path}): the queue is empty and fake.default is unset"
            )
            return self._fail(record, wire, WireError(500, message, headers=_NO_RETRY), "error")

        stream_options = body.get("stream_options")
        ctx = RenderContext(
            model=str(body.get("model") or DEFAULT_MODEL),
            input_tokens=estimate_tokens(record.body_bytes),
            include_usage=isinstance(stream_options, dict)
            and stream_options.get("include_usage") is True,
            created=int(time.time()),
            forced_tool=wire.forced_tool(body),
        )
        try:
            return await self._respond(request, record, wire, response, ctx)
        except WireError as err:
            return self._fail(record, wire, err, "error")

    async def _next_response(self, record: RecordedRequest) -> Response | None:
        if self._queue:
            item = self._queue.popleft()
        elif self.default is not None:
            item = self.default
        else:
            return None
        if not isinstance(item, RESPONSE_TYPES):
            item = item(record)
            if inspect.isawaitable(item):
                item = await item
        if not isinstance(item, RESPONSE_TYPES):
            raise TypeError(f"response factory returned {item!r}, not a Response")
        return item

    # ------------------------------------------------------------ responding

    async def _respond(
        self,
        request: web.Request,
        record: RecordedRequest,
        wire: Wire,
        response: Response,
        ctx: RenderContext,
    ) -> web.StreamResponse:
        if isinstance(response, ErrorReply):
            err = WireError(
                response.status,
                response.message,
                error_type=response.error_type,
                headers=response.response_headers(),
            )
            return self._fail(record, wire, err, "error")
        if isinstance(response, Reply):
            if record.stream:
                plan = wire.render_stream(response, ctx)
                return await self._stream(request, record, wire, plan, response, "complete")
            return await self._json(request, record, wire, response, ctx)
        # Hang / Drop / StreamError
        reply = response.as_reply()
        if record.stream:
            plan = wire.render_stream(reply, ctx)
            if isinstance(response, StreamError):
                final = wire.stream_error_event(response.message, response.error_type)
                return await self._stream(request, record, wire, plan, reply, "stream_error", final)
            if isinstance(response, Hang):
                return await self._stream(request, record, wire, plan, reply, "hang")
            return await self._stream(
                request, record, wire, plan, reply, "drop", linger=response.close_after
            )
        started = time.monotonic()
        delay = math.inf if isinstance(response, Hang) else reply.duration
        pause = await self._pause(request, started + delay)
        if pause != "ok":
            return self._interrupted(request, record, pause, started)
        if isinstance(response, Drop):
            if response.body_bytes is not None:
                return await self._truncated(request, record, wire, reply, ctx, response.body_bytes)
            record.outcome = "dropped"
            _close(request)
            self._notify()
            return web.Response()  # never reaches the client
        assert isinstance(response, StreamError)
        err = WireError(response.status, response.message, error_type=response.error_type)
        return self._fail(record, wire, err, "stream_error")

    async def _json(
        self,
        request: web.Request,
        record: RecordedRequest,
        wire: Wire,
        reply: Reply,
        ctx: RenderContext,
    ) -> web.StreamResponse:
        body = wire.render_json(reply, ctx)
        started = time.monotonic()
        if reply.duration > 0:
            pause = await self._pause(request, started + reply.duration)
            if pause != "ok":
                return self._interrupted(request, record, pause, started)
        record.status = 200
        record.outcome = "completed"
        record.chunks_sent = reply.piece_count
        self.completed += 1
        self._notify()
        return _json_response(body, {wire.request_id_header: wire.new_request_id()})

    async def _truncated(
        self,
        request: web.Request,
        record: RecordedRequest,
        wire: Wire,
        reply: Reply,
        ctx: RenderContext,
        keep: int,
    ) -> web.StreamResponse:
        """Headers promising the whole JSON body, ``keep`` bytes of it, then a close."""
        body = dumps(wire.render_json(reply, ctx))
        response = web.StreamResponse(
            status=200,
            headers={
                "content-type": "application/json",
                wire.request_id_header: wire.new_request_id(),
            },
        )
        response.content_length = len(body)
        await response.prepare(request)
        record.status = 200
        await response.write(body[:keep])
        await asyncio.sleep(0.05)  # let the client read what was sent before the close
        record.outcome = "dropped"
        _close(request)
        self._notify()
        return response

    async def _stream(
        self,
        request: web.Request,
        record: RecordedRequest,
        wire: Wire,
        plan: StreamPlan,
        timing: Reply,
        ending: Literal["complete", "hang", "drop", "stream_error"],
        final: bytes = b"",
        *,
        linger: float = 0.0,
    ) -> web.StreamResponse:
        """Send ``plan`` paced by ``timing``, then end as ``ending`` says: the tail
        (complete), ``final`` (stream_error), nothing (hang), or a close ``linger``
        seconds after the last chunk (drop)."""
        response = web.StreamResponse(
            status=200,
            headers={
                "content-type": "text/event-stream; charset=utf-8",
                "cache-control": "no-cache",
                wire.request_id_header: wire.new_request_id(),
            },
        )
        self.active_streams += 1
        last_write = time.monotonic()
        try:
            await response.prepare(request)
            record.status = 200
            self._notify()
            if plan.head:
                await response.write(plan.head)
            start = last_write = time.monotonic()
            for i, step in enumerate(plan.steps):
                due = start + timing.first_token_delay + i * timing.chunk_delay
                pause = await self._pause(request, due)
                if pause != "ok":
                    return self._interrupted(request, record, pause, last_write, response)
                await response.write(step)
                record.chunks_sent += 1
                last_write = time.monotonic()
            if ending == "hang":
                pause = await self._pause(request, math.inf)
                return self._interrupted(request, record, pause, last_write, response)
            if ending == "drop":
                pause = await self._pause(request, last_write + linger)
                if pause != "ok":
                    return self._interrupted(request, record, pause, last_write, response)
                record.outcome = "dropped"
                _close(request)
                return response
            await response.write(plan.tail if ending == "complete" else final)
            await response.write_eof()
            if ending == "complete":
                record.outcome = "completed"
                self.completed += 1
            else:
                record.outcome = "stream_error"
            return response
        except ConnectionError:
            return self._interrupted(request, record, "gone", last_write, response)
        finally:
            self.active_streams -= 1
            self._notify()

    async def _pause(self, request: web.Request, due: float) -> _Pause:
        """Wait until ``due`` (monotonic), returning early if the client leaves or the
        server stops.  Returns at once, without yielding, when ``due`` has passed."""
        while True:
            transport = request.transport
            if transport is None or transport.is_closing():
                return "gone"
            if self._stopping:
                return "stopping"
            remaining = due - time.monotonic()
            if remaining <= 0:
                return "ok"
            await asyncio.sleep(remaining if remaining <= SHORT_WAIT else POLL_INTERVAL)

    def _interrupted(
        self,
        request: web.Request,
        record: RecordedRequest,
        pause: _Pause,
        last_write: float,
        response: web.StreamResponse | None = None,
    ) -> web.StreamResponse:
        """The client left (record a :class:`Disconnect`) or the server is stopping."""
        if pause == "stopping":
            record.outcome = "aborted"
            _close(request)
        else:
            now = time.monotonic()
            record.outcome = "disconnected"
            self.disconnect_log.append(
                Disconnect(record, now, record.chunks_sent, now - last_write)
            )
        self._notify()
        return response if response is not None else web.Response()

    def _fail(
        self, record: RecordedRequest, wire: Wire, err: WireError, outcome: Outcome
    ) -> web.Response:
        record.status = err.status
        record.outcome = outcome
        record.error = err.message
        self._notify()
        return _error_response(wire, err)


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _close(request: web.Request) -> None:
    """Close the connection: buffered bytes are flushed, then FIN — the client sees the
    body end without the chunked terminator (or no response at all)."""
    if request.transport is not None:
        request.transport.close()


def _json_response(body: Any, headers: dict[str, str], status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=dumps(body), content_type="application/json", headers=headers
    )


def _error_response(wire: Wire, err: WireError) -> web.Response:
    request_id = wire.new_request_id()
    headers = {wire.request_id_header: request_id, **err.headers}
    return _json_response(wire.error_body(err, request_id), headers, err.status)
