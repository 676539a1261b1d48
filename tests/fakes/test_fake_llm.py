"""The fake LLM server against the real, unmodified ``openai`` and ``anthropic`` SDKs
(and raw HTTP where an SDK would hide what the server does)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from tests.fakes.fake_llm import (
    Drop,
    ErrorReply,
    FakeLLM,
    Hang,
    RecordedRequest,
    Reply,
    StreamError,
    ToolCall,
    Usage,
)

KEY = "sk-test-key"
MODEL = "test-model"
HI = [{"role": "user", "content": "hi"}]
PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with FakeLLM(api_keys={KEY}) as server:
        yield server


@pytest.fixture
async def oai(fake: FakeLLM) -> AsyncIterator[AsyncOpenAI]:
    client = AsyncOpenAI(base_url=fake.openai_base_url, api_key=KEY, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def claude(fake: FakeLLM) -> AsyncIterator[AsyncAnthropic]:
    client = AsyncAnthropic(base_url=fake.anthropic_base_url, api_key=KEY, max_retries=0)
    yield client
    await client.close()


async def openai_text(stream: Any) -> tuple[str, str | None]:
    text, finish = "", None
    async for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return text, finish


async def raw_post(fake: FakeLLM, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.base_url + path, json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


# ---------------------------------------------------------------- streaming text


async def test_openai_streams_text(fake: FakeLLM, oai: AsyncOpenAI) -> None:
    fake.enqueue(Reply("Hello there, world!"))
    stream = await oai.chat.completions.create(model=MODEL, messages=HI, stream=True)
    chunks = [chunk async for chunk in stream]

    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello there, world!"
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.object == "chat.completion.chunk" and c.model == MODEL for c in chunks)
    assert len({c.id for c in chunks}) == 1
    request = fake.requests[0]
    assert (request.wire, request.stream, request.outcome) == ("openai", True, "completed")
    assert request.chunks_sent == 3
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.messages == HI
    assert fake.completed == 1


async def test_anthropic_streams_text(fake: FakeLLM, claude: AsyncAnthropic) -> None:
    fake.enqueue(Reply(chunks=["Hel", "lo ", "there"]), Reply("Second answer"))
    stream = await claude.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
    events = [event async for event in stream]

    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == "Hello there"
    assert events[-2].delta.stop_reason == "end_turn"

    async with claude.messages.stream(model=MODEL, max_tokens=64, messages=HI) as helper:
        pieces = [piece async for piece in helper.text_stream]
        final = await helper.get_final_message()
    assert "".join(pieces) == final.content[0].text == "Second answer"
    assert final.stop_reason == "end_turn"
    assert fake.requests[0].headers["anthropic-version"]
    assert [r.outcome for r in fake.requests] == ["completed", "completed"]


# ---------------------------------------------------------------- tool calls


async def test_openai_streams_tool_calls(fake: FakeLLM, oai: AsyncOpenAI) -> None:
    fake.enqueue(
        Reply(
            "Checking.",
            tool_calls=[
                ToolCall("get_weather", {"city": "Paris"}, id="call_1"),
                ToolCall("get_weather", '{"city": "Oslo"}'),
            ],
        )
    )
    stream = await oai.chat.completions.create(
        model=MODEL, messages=HI, tools=[WEATHER_TOOL_OPENAI], stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    text, finish, argument_deltas = "", None, 0
    async for chunk in stream:
        delta = chunk.choices[0].delta
        text += delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
        for call in delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            if call.id:
                assert call.type == "function" and call.function and call.function.name
                entry["id"], entry["name"] = call.id, call.function.name
            if call.function and call.function.arguments:
                entry["arguments"] += call.function.arguments
                argument_deltas += 1

    assert text == "Checking."
    assert finish == "tool_calls"
    assert calls[0] == {"id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert calls[1]["arguments"] == '{"city": "Oslo"}'  # a str is sent verbatim
    assert calls[1]["id"].startswith("call_")
    assert argument_deltas >= 4  # several deltas per call

    # The SDK's own accumulator agrees.
    fake.enqueue(Reply(tool_calls=[ToolCall("get_weather", {"city": "Rome"})]))
    async with oai.chat.completions.stream(
        model=MODEL, messages=HI, tools=[WEATHER_TOOL_OPENAI]
    ) as helper:
        completion = await helper.get_final_completion()
    message = completion.choices[0].message
    assert message.tool_calls[0].function.arguments == '{"city":"Rome"}'
    assert completion.choices[0].finish_reason == "tool_calls"


async def test_anthropic_streams_tool_calls(fake: FakeLLM, claude: AsyncAnthropic) -> None:
    fake.enqueue(
        Reply(
            "Let me check.",
            tool_calls=[
                ToolCall("get_weather", {"city": "Paris"}, id="toolu_A"),
                ToolCall("get_weather", '{"city": "Oslo"}'),
            ],
        )
    )
    async with claude.messages.stream(
        model=MODEL, max_tokens=64, messages=HI, tools=[WEATHER_TOOL_ANTHROPIC]
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()

    assert final.stop_reason == "tool_use"
    text, first, second = final.content
    assert text.type == "text" and text.text == "Let me check."
    assert (first.type, first.id, first.name, first.input) == (
        "tool_use",
        "toolu_A",
        "get_weather",
        {"city": "Paris"},
    )
    assert second.input == {"city": "Oslo"} and second.id.startswith("toolu_")
    assert kinds.count("input_json") >= 4


async def test_malformed_tool_arguments_are_streamed_verbatim(
    fake: FakeLLM, oai: AsyncOpenAI, claude: AsyncAnthropic
) -> None:
    broken = '{"city": Paris'
    fake.enqueue(Reply(tool_calls=[ToolCall("get_weather", broken)]))
    stream = await oai.chat.completions.create(model=MODEL, messages=HI, stream=True)
    arguments = ""
    async for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or []:
            arguments += call.function.arguments or ""
    assert arguments == broken

    # Anthropic: the raw events carry it verbatim ...
    fake.enqueue(Reply(tool_calls=[ToolCall("get_weather", broken)]))
    raw = await claude.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
    partial = [
        e.delta.partial_json
        async for e in raw
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert "".join(partial) == broken
    # ... and the SDK's accumulator (partial-mode jiter) rejects it.
    fake.enqueue(Reply(tool_calls=[ToolCall("get_weather", broken)]))
    with pytest.raises(ValueError, match="Unable to parse tool parameter JSON"):
        async with claude.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
            await stream.get_final_message()

    # A non-streamed Anthropic reply cannot carry it: the fake fails loudly, no retry.
    fake.enqueue(Reply(tool_calls=[ToolCall("get_weather", broken)]))
    with pytest.raises(anthropic.InternalServerError, match="not a JSON object"):
        await claude.messages.create(model=MODEL, max_tokens=64, messages=HI)


# ---------------------------------------------------------------- non-streaming & usage


async def test_non_streaming_both_wires(
    fake: FakeLLM, oai: AsyncOpenAI, claude: AsyncAnthropic
) -> None:
    reply = Reply("Sunny.", tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="c1")])
    fake.enqueue(reply, reply)

    completion = await oai.chat.completions.create(
        model=MODEL, messages=HI, tools=[WEATHER_TOOL_OPENAI]
    )
    choice = completion.choices[0]
    assert completion.object == "chat.completion" and completion.model == MODEL
    assert choice.message.content == "Sunny."
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == (
        "c1",
        "get_weather",
        '{"city":"Paris"}',
    )

    message = await claude.messages.create(
        model=MODEL, max_tokens=64, messages=HI, tools=[WEATHER_TOOL_ANTHROPIC]
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.stop_reason == "tool_use"
    assert message.content[0].text == "Sunny."
    assert message.content[1].input == {"city": "Paris"} and message.content[1].id == "c1"
    assert [r.stream for r in fake.requests] == [False, False]
    assert fake.completed == 2


async def test_usage_is_reported(fake: FakeLLM, oai: AsyncOpenAI, claude: AsyncAnthropic) -> None:
    usage = Usage(input_tokens=120, output_tokens=7, cached_input_tokens=100)
    fake.enqueue(*[Reply("ok", usage=usage)] * 4)

    stream = await oai.chat.completions.create(
        model=MODEL, messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == 120
    assert chunks[-1].usage.completion_tokens == 7
    assert chunks[-1].usage.total_tokens == 127
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == 100
    assert all(c.usage is None for c in chunks[:-1])

    completion = await oai.chat.completions.create(model=MODEL, messages=HI)
    assert completion.usage.completion_tokens == 7

    async with claude.messages.stream(model=MODEL, max_tokens=64, messages=HI) as s:
        final = await s.get_final_message()
    assert (final.usage.input_tokens, final.usage.output_tokens) == (120, 7)
    assert final.usage.cache_read_input_tokens == 100

    message = await claude.messages.create(model=MODEL, max_tokens=64, messages=HI)
    assert message.usage.output_tokens == 7

    # Without scripted usage, counts are still plausible.
    fake.enqueue(Reply("a b c d"))
    completion = await oai.chat.completions.create(model=MODEL, messages=HI)
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0


async def test_finish_reason_is_mapped_per_wire(
    fake: FakeLLM, oai: AsyncOpenAI, claude: AsyncAnthropic
) -> None:
    fake.enqueue(Reply("cut", finish_reason="max_tokens"), Reply("cut", finish_reason="length"))
    completion = await oai.chat.completions.create(model=MODEL, messages=HI)
    message = await claude.messages.create(model=MODEL, max_tokens=64, messages=HI)
    assert completion.choices[0].finish_reason == "length"
    assert message.stop_reason == "max_tokens"


# ---------------------------------------------------------------- errors & retries


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_rate_limit_without_retries(
    fake: FakeLLM, oai: AsyncOpenAI, claude: AsyncAnthropic, wire: str
) -> None:
    fake.enqueue(ErrorReply(429, "Slow down", retry_after=2))
    if wire == "openai":
        with pytest.raises(openai.RateLimitError) as info:
            await oai.chat.completions.create(model=MODEL, messages=HI)
        assert info.value.body["message"] == "Slow down"
        assert info.value.code == "rate_limit_exceeded"
    else:
        with pytest.raises(anthropic.RateLimitError) as info:
            await claude.messages.create(model=MODEL, max_tokens=64, messages=HI)
        assert info.value.type == "rate_limit_error"
        assert info.value.api_message == "Slow down"
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.request_id.startswith("req_")
    assert len(fake.requests) == 1 and fake.requests[0].outcome == "error"


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_sdk_retries_after_retry_after(fake: FakeLLM, wire: str) -> None:
    fake.enqueue(ErrorReply(429, retry_after=0.05), Reply("second time lucky"))
    if wire == "openai":
        async with AsyncOpenAI(base_url=fake.openai_base_url, api_key=KEY, max_retries=1) as c:
            completion = await c.chat.completions.create(model=MODEL, messages=HI)
        text = completion.choices[0].message.content
    else:
        async with AsyncAnthropic(
            base_url=fake.anthropic_base_url, api_key=KEY, max_retries=1
        ) as c:
            message = await c.messages.create(model=MODEL, max_tokens=64, messages=HI)
        text = message.content[0].text
    assert text == "second time lucky"
    first, second = fake.requests
    gap = second.received_at - first.received_at
    # Retry-After (0.05 s) is honoured, not the SDK's own >= 0.375 s backoff.
    assert 0.05 <= gap < 0.3
    assert second.headers["x-stainless-retry-count"] == "1"
    assert second.json == first.json


async def test_openai_sdk_does_not_retry_past_two_minutes(fake: FakeLLM) -> None:
    # openai-python refuses to retry when Retry-After > 120 s (anthropic-python would
    # sleep for it, uncapped).
    fake.enqueue(ErrorReply(429, retry_after=121), Reply("never reached"))
    async with AsyncOpenAI(base_url=fake.openai_base_url, api_key=KEY, max_retries=2) as c:
        with pytest.raises(openai.RateLimitError):
            await c.chat.completions.create(model=MODEL, messages=HI)
    assert len(fake.requests) == 1


async def test_should_retry_header_is_obeyed(fake: FakeLLM) -> None:
    fake.enqueue(ErrorReply(503, should_retry=False), Reply("never reached"))
    async with AsyncOpenAI(base_url=fake.openai_base_url, api_key=KEY, max_retries=3) as c:
        with pytest.raises(openai.InternalServerError):
            await c.chat.completions.create(model=MODEL, messages=HI)
    assert len(fake.requests) == 1 and fake.pending == 1


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_empty_queue_fails_loudly_without_retries(fake: FakeLLM, wire: str) -> None:
    if wire == "openai":
        async with AsyncOpenAI(base_url=fake.openai_base_url, api_key=KEY, max_retries=2) as c:
            with pytest.raises(openai.InternalServerError, match="no scripted response"):
                await c.chat.completions.create(model=MODEL, messages=HI)
    else:
        async with AsyncAnthropic(
            base_url=fake.anthropic_base_url, api_key=KEY, max_retries=2
        ) as c:
            with pytest.raises(anthropic.InternalServerError, match="no scripted response"):
                await c.messages.create(model=MODEL, max_tokens=64, messages=HI)
    assert len(fake.requests) == 1
    assert "no scripted response" in (fake.requests[0].error or "")


async def test_default_response_and_factories(fake: FakeLLM, oai: AsyncOpenAI) -> None:
    def echo(request: RecordedRequest) -> Reply:
        return Reply(f"echo: {request.messages[-1]['content']}")

    async def slow_echo(request: RecordedRequest) -> Reply:
        await asyncio.sleep(0)
        return Reply("queued factory")

    fake.default = echo
    fake.enqueue(slow_echo)
    first = await oai.chat.completions.create(model=MODEL, messages=HI)
    second = await oai.chat.completions.create(model=MODEL, messages=HI)
    assert first.choices[0].message.content == "queued factory"
    assert second.choices[0].message.content == "echo: hi"
    with pytest.raises(TypeError):
        fake.enqueue("not a response")  # type: ignore[arg-type]


# ---------------------------------------------------------------- hang, drop, stream errors


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
@pytest.mark.parametrize("how", ["close", "response_aclose", "cancel"])
async def test_hang_then_client_closes(
    fake: FakeLLM, oai: AsyncOpenAI, claude: AsyncAnthropic, wire: str, how: str
) -> None:
    fake.enqueue(Hang(["partial ", "answer"]))
    first_piece = asyncio.Event()

    async def consume() -> Any:
        if wire == "openai":
            stream = await oai.chat.completions.create(model=MODEL, messages=HI, stream=True)
        else:
            stream = await claude.messages.create(
                model=MODEL, max_tokens=64, messages=HI, stream=True
            )
        received = ""
        async for event in stream:
            if wire == "openai":
                received += event.choices[0].delta.content or ""
            elif event.type == "content_block_delta":
                received += event.delta.text
            if received == "partial answer":
                first_piece.set()
                if how != "cancel":
                    break
        if how == "close":
            await stream.close()
        elif how == "response_aclose":
            await stream.response.aclose()
        return stream

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_piece.wait(), 2)
    assert fake.active_streams == 1
    closed_at = time.monotonic()
    if how == "cancel":
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        await task
    disconnect = await fake.wait_for_disconnect(timeout=1)
    assert disconnect.at - closed_at < 1
    assert disconnect.chunks_sent == 2
    assert disconnect.request is fake.requests[0]
    assert fake.requests[0].outcome == "disconnected"
    assert fake.disconnects == 1
    await fake.wait_idle(1)
    assert fake.active_streams == 0


async def test_breaking_out_of_a_stream_is_not_a_disconnect(
    fake: FakeLLM, oai: AsyncOpenAI
) -> None:
    fake.enqueue(Hang(["x"]))
    stream = await oai.chat.completions.create(model=MODEL, messages=HI, stream=True)
    async for _ in stream:
        break
    with pytest.raises(TimeoutError):
        await fake.wait_for_disconnect(timeout=0.1)
    await stream.close()
    assert (await fake.wait_for_disconnect(timeout=1)).chunks_sent == 1


async def test_non_streaming_hang_and_client_timeout(fake: FakeLLM, oai: AsyncOpenAI) -> None:
    fake.enqueue(Hang())
    with pytest.raises(openai.APITimeoutError):
        await oai.chat.completions.create(model=MODEL, messages=HI, timeout=0.2)
    disconnect = await fake.wait_for_disconnect(timeout=1)
    assert disconnect.request.stream is False and disconnect.chunks_sent == 0


async def test_stop_cuts_off_a_hanging_stream() -> None:
    server = await FakeLLM().start()
    client = AsyncOpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)
    server.enqueue(Hang(["a"]))
    stream = await client.chat.completions.create(model=MODEL, messages=HI, stream=True)
    await stream.__anext__()
    started = time.monotonic()
    await server.stop()
    assert time.monotonic() - started < 1
    with pytest.raises(openai.APIConnectionError):
        async for _ in stream:
            pass
    assert server.requests[0].outcome == "aborted"
    await client.close()


@dataclass
class RawExchange:
    """One HTTP/1.1 exchange as it went over the socket (see :func:`raw_exchange`)."""

    status: int
    headers: dict[str, str]
    #: The body as received: chunk payloads of a chunked body, else the raw bytes.
    pieces: list[bytes]
    #: Seconds from sending the request to each piece's arrival.
    arrivals: list[float]
    #: The body ended properly (chunked terminator, or Content-Length bytes).
    complete: bool
    #: The server closed the connection (EOF) before the body ended.
    closed: bool
    #: Nothing arrived for ``read_timeout`` seconds while the connection stayed open.
    stalled: bool
    #: Seconds from sending the request to the close, the stall or the end.
    ended_at: float

    @property
    def body(self) -> bytes:
        return b"".join(self.pieces)


async def raw_exchange(
    fake: FakeLLM,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    *,
    read_timeout: float = 2.0,
) -> RawExchange:
    """POST ``body`` over a plain socket and record exactly what the fake sends and
    when: no HTTP client library, so nothing of an SDK's error handling is tested."""
    payload = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{fake.port}"]
    head += [f"{k}: {v}" for k, v in {**headers, "content-type": "application/json"}.items()]
    head += [f"Content-Length: {len(payload)}", "", ""]
    started = time.monotonic()
    writer.write("\r\n".join(head).encode() + payload)
    await writer.drain()

    pieces: list[bytes] = []
    arrivals: list[float] = []
    closed = stalled = complete = False

    async def read(coro: Any) -> bytes | None:
        nonlocal stalled
        try:
            return await asyncio.wait_for(coro, read_timeout)
        except TimeoutError:
            stalled = True
            return None

    try:
        status_line = await reader.readline()
        response_headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            response_headers[name.strip().lower()] = value.strip()
        if response_headers.get("transfer-encoding") == "chunked":
            while True:
                size_line = await read(reader.readline())
                if size_line is None:
                    break
                if not size_line:
                    closed = True
                    break
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    complete = True
                    break
                chunk = await read(reader.readexactly(size + 2))
                if chunk is None:
                    break
                pieces.append(chunk[:-2])
                arrivals.append(time.monotonic() - started)
        else:
            expected = int(response_headers.get("content-length", "0"))
            while sum(map(len, pieces)) < expected:
                data = await read(reader.read(65536))
                if data is None:
                    break
                if not data:
                    closed = True
                    break
                pieces.append(data)
                arrivals.append(time.monotonic() - started)
            complete = sum(map(len, pieces)) == expected
    except asyncio.IncompleteReadError as exc:  # EOF inside a chunk
        if exc.partial:
            pieces.append(exc.partial)
            arrivals.append(time.monotonic() - started)
        closed = True
    ended_at = time.monotonic() - started
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return RawExchange(
        status=int(status_line.split()[1]),
        headers=response_headers,
        pieces=pieces,
        arrivals=arrivals,
        complete=complete,
        closed=closed,
        stalled=stalled,
        ended_at=ended_at,
    )


#: Per wire: path, headers and a minimal streaming body for :func:`raw_exchange`.
RAW_WIRES: dict[str, tuple[str, dict[str, str], dict[str, Any]]] = {
    "openai": (
        "/v1/chat/completions",
        {"authorization": f"Bearer {KEY}"},
        {"model": MODEL, "messages": HI},
    ),
    "anthropic": (
        "/v1/messages",
        {"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        {"model": MODEL, "max_tokens": 64, "messages": HI},
    ),
}
#: The events that end a complete stream on each wire.
STREAM_END = {"openai": b"data: [DONE]", "anthropic": b"message_stop"}


def streamed_text(wire: str, body: bytes) -> str:
    """The text deltas in a (possibly cut) SSE body."""
    text = ""
    for line in body.decode().splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line.removeprefix("data: "))
        if wire == "openai":
            text += "".join(c["delta"].get("content") or "" for c in event["choices"])
        elif event["type"] == "content_block_delta":
            text += event["delta"].get("text", "")
    return text


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_drop_mid_stream(fake: FakeLLM, wire: str) -> None:
    """Drop: a 200 chunked SSE stream, the scripted pieces, then a close ~close_after
    later without the wire's closing events or the chunked terminator."""
    fake.enqueue(Drop(["one ", "two "], close_after=0.2))
    path, headers, body = RAW_WIRES[wire]
    raw = await raw_exchange(fake, path, {**body, "stream": True}, headers)

    assert raw.status == 200 and raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers["transfer-encoding"] == "chunked"
    assert streamed_text(wire, raw.body) == "one two "
    assert STREAM_END[wire] not in raw.body
    assert raw.closed and not raw.complete and not raw.stalled
    assert raw.ended_at >= 0.2  # the close came close_after after the last piece
    assert fake.requests[0].outcome == "dropped" and fake.requests[0].chunks_sent == 2


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_read_timeout_mid_stream(fake: FakeLLM, wire: str) -> None:
    """Hang: the pieces, then silence with the connection held open until the client
    gives up; the client's leaving is recorded as a disconnect."""
    fake.enqueue(Hang(["x"]))
    path, headers, body = RAW_WIRES[wire]
    raw = await raw_exchange(fake, path, {**body, "stream": True}, headers, read_timeout=0.3)

    assert raw.status == 200 and streamed_text(wire, raw.body) == "x"
    assert raw.stalled and not raw.closed and not raw.complete
    assert raw.ended_at - raw.arrivals[-1] >= 0.3
    disconnect = await fake.wait_for_disconnect(timeout=1)
    assert disconnect.chunks_sent == 1 and disconnect.request.outcome == "disconnected"


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_truncated_body(fake: FakeLLM, wire: str) -> None:
    """Drop(body_bytes=n) on a non-streamed request: headers promising the whole JSON
    body, n bytes of it, then a close."""
    fake.enqueue(Drop(["a full answer"], body_bytes=20))
    path, headers, body = RAW_WIRES[wire]
    raw = await raw_exchange(fake, path, body, headers)

    assert raw.status == 200 and raw.headers["content-type"] == "application/json"
    assert int(raw.headers["content-length"]) > 20
    assert len(raw.body) == 20 and raw.body.startswith(b"{")
    assert raw.closed and not raw.complete
    assert fake.requests[0].outcome == "dropped"


async def test_aiohttp_transport_drop_and_close(fake: FakeLLM) -> None:
    """Clara runs the SDKs on ``DefaultAioHttpClient`` (aiohttp): a plain aiohttp
    client sees the drop as a body that ends early, and closing an SDK stream early
    on that transport reaches the server at once."""
    fake.enqueue(Drop(["one ", "two "]), Hang(["x"]))
    path, headers, body = RAW_WIRES["openai"]
    received = b""
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.base_url + path, json={**body, "stream": True}, headers=headers) as resp,
    ):
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            async for data in resp.content.iter_any():
                received += data
    assert streamed_text("openai", received) == "one two "
    assert STREAM_END["openai"] not in received

    oai = AsyncOpenAI(
        base_url=fake.openai_base_url,
        api_key=KEY,
        max_retries=0,
        http_client=openai.DefaultAioHttpClient(),
    )
    async with oai:
        stream = await oai.chat.completions.create(model=MODEL, messages=HI, stream=True)
        async for chunk in stream:
            if chunk.choices[0].delta.content:
                break
        await stream.close()
        assert (await fake.wait_for_disconnect(timeout=1)).chunks_sent == 1


async def test_drop_before_response(
    fake: FakeLLM, oai: AsyncOpenAI, claude: AsyncAnthropic
) -> None:
    fake.enqueue(Drop(), Drop())
    with pytest.raises(openai.APIConnectionError):
        await oai.chat.completions.create(model=MODEL, messages=HI)
    with pytest.raises(anthropic.APIConnectionError):
        await claude.messages.create(model=MODEL, max_tokens=64, messages=HI)
    assert [(r.outcome, r.status) for r in fake.requests] == [("dropped", None)] * 2


async def test_stream_error_events(fake: FakeLLM, oai: AsyncOpenAI, claude: AsyncAnthropic) -> None:
    fake.enqueue(StreamError(["so far "]), StreamError(["so far "]), StreamError(status=529))

    with pytest.raises(openai.APIError, match="Overloaded") as oai_error:
        stream = await oai.chat.completions.create(model=MODEL, messages=HI, stream=True)
        async for _ in stream:
            pass
    assert not isinstance(oai_error.value, openai.APIStatusError)
    assert oai_error.value.type == "server_error"

    # anthropic-python raises a plain APIStatusError carrying the stream's 200 status.
    with pytest.raises(anthropic.APIStatusError) as claude_error:
        stream = await claude.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
        async for _ in stream:
            pass
    assert claude_error.value.type == "overloaded_error"
    assert claude_error.value.status_code == 200

    # Not streamed: an HTTP error with the same body.
    with pytest.raises(anthropic.OverloadedError):
        await claude.messages.create(model=MODEL, max_tokens=64, messages=HI)
    assert [r.outcome for r in fake.requests] == ["stream_error"] * 3


# ---------------------------------------------------------------- pacing


async def test_chunk_delay_paces_the_stream(fake: FakeLLM, oai: AsyncOpenAI) -> None:
    fake.enqueue(
        Reply(chunks=[f"t{i} " for i in range(8)], chunk_delay=0.02, first_token_delay=0.05)
    )
    started = time.monotonic()
    stream = await oai.chat.completions.create(model=MODEL, messages=HI, stream=True)
    arrivals = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 8
    assert 0.05 <= arrivals[0] < 0.3
    assert 0.05 + 7 * 0.02 <= arrivals[-1] < 0.6


# ---------------------------------------------------------------- validation


async def test_openai_rejects_orphan_tool_message(fake: FakeLLM, oai: AsyncOpenAI) -> None:
    fake.enqueue(Reply("unused"))
    messages = [*HI, {"role": "tool", "tool_call_id": "call_x", "content": "42"}]
    with pytest.raises(openai.BadRequestError, match="must be a response to a preceeding") as info:
        await oai.chat.completions.create(model=MODEL, messages=messages)
    assert info.value.param == "messages.[1].role"
    assert fake.requests[0].outcome == "rejected"
    assert fake.pending == 1  # rejected requests do not consume the script


@pytest.mark.parametrize(
    ("messages", "tools", "match"),
    [
        pytest.param(
            [
                *HI,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                {"role": "user", "content": "and?"},
            ],
            None,
            "did not have response messages: c2",
            id="unanswered-call",
        ),
        pytest.param(
            [
                *HI,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {}}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            ],
            None,
            "arguments",
            id="arguments-not-a-string",
        ),
        pytest.param([{"role": "bot", "content": "x"}], None, "Supported values", id="bad-role"),
        pytest.param([], None, "empty array", id="no-messages"),
        pytest.param(
            HI,
            [{"type": "function", "function": {"name": "bad name!", "parameters": {}}}],
            "does not match pattern",
            id="bad-tool-name",
        ),
        pytest.param(
            HI,
            [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}],
            'type: "object"',
            id="non-object-parameters",
        ),
        pytest.param(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                    ],
                }
            ],
            None,
            "unsupported image",
            id="garbage-image",
        ),
    ],
)
async def test_openai_validation(
    fake: FakeLLM, oai: AsyncOpenAI, messages: list[Any], tools: Any, match: str
) -> None:
    kwargs: dict[str, Any] = {"tools": tools} if tools else {}
    with pytest.raises(openai.BadRequestError, match=match):
        await oai.chat.completions.create(model=MODEL, messages=messages, **kwargs)


async def test_openai_accepts_a_valid_tool_round_trip(fake: FakeLLM, oai: AsyncOpenAI) -> None:
    fake.enqueue(Reply("It is sunny."))
    messages = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "weather?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1PX}"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    completion = await oai.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER_TOOL_OPENAI], tool_choice="auto"
    )
    assert completion.choices[0].message.content == "It is sunny."
    assert fake.requests[0].system == ["be brief"]


async def test_anthropic_rejects_missing_max_tokens(fake: FakeLLM, claude: AsyncAnthropic) -> None:
    # The SDK's signature requires max_tokens, so go through its generic POST.
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: Field required") as info:
        await claude.post(
            "/v1/messages",
            body={"model": MODEL, "messages": HI},
            cast_to=anthropic.types.Message,
        )
    assert info.value.type == "invalid_request_error"


_TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
_TOOL_RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}


def _image(media_type: str, data: str) -> dict[str, Any]:
    source = {"type": "base64", "media_type": media_type, "data": data}
    return {"role": "user", "content": [{"type": "image", "source": source}]}


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        pytest.param(
            [*HI, {"role": "assistant", "content": [_TOOL_USE]}, {"role": "user", "content": "hm"}],
            "without `tool_result` blocks immediately after: toolu_1",
            id="tool-use-without-result",
        ),
        pytest.param(
            [*HI, {"role": "assistant", "content": [_TOOL_USE]}],
            "without `tool_result`",
            id="trailing-tool-use",
        ),
        pytest.param(
            [
                *HI,
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [_TOOL_RESULT]},
            ],
            "unexpected `tool_use_id`",
            id="orphan-tool-result",
        ),
        pytest.param(
            [{"role": "system", "content": "x"}, *HI], 'Unexpected role "system"', id="system-role"
        ),
        pytest.param(
            [{"role": "assistant", "content": "hi"}, *HI], "first message", id="assistant-first"
        ),
        pytest.param([{"role": "user", "content": ""}], "non-empty content", id="empty-content"),
        pytest.param(
            [{"role": "user", "content": [{"type": "text", "text": "  "}]}],
            "non-whitespace",
            id="whitespace-text",
        ),
        pytest.param([_image("image/bmp", PNG_1PX)], "media_type", id="bad-media-type"),
        pytest.param(
            [_image("image/jpeg", PNG_1PX)],
            "does not match the provided media type",
            id="lying-type",
        ),
        pytest.param([_image("image/png", "bm90IGFuIGltYWdl")], "Could not process", id="garbage"),
    ],
)
async def test_anthropic_validation(
    fake: FakeLLM, claude: AsyncAnthropic, messages: list[Any], match: str
) -> None:
    with pytest.raises(anthropic.BadRequestError, match=match):
        await claude.messages.create(model=MODEL, max_tokens=64, messages=messages)


async def test_anthropic_rejects_bad_tool_definitions(
    fake: FakeLLM, claude: AsyncAnthropic
) -> None:
    with pytest.raises(anthropic.BadRequestError, match="String should match pattern"):
        await claude.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=HI,
            tools=[{"name": "has space", "input_schema": {"type": "object"}}],
        )
    with pytest.raises(anthropic.BadRequestError, match="input_schema: Field required"):
        await claude.messages.create(
            model=MODEL, max_tokens=64, messages=HI, tools=[{"name": "ok"}]
        )


async def test_anthropic_accepts_a_valid_tool_round_trip(
    fake: FakeLLM, claude: AsyncAnthropic
) -> None:
    fake.enqueue(Reply("Sunny in Paris."))
    messages = [
        _image("image/png", PNG_1PX),
        {"role": "user", "content": "weather in Paris?"},  # consecutive user turns merge
        {"role": "assistant", "content": [{"type": "text", "text": "Checking."}, _TOOL_USE]},
        {"role": "user", "content": [_TOOL_RESULT, {"type": "text", "text": "thanks"}]},
    ]
    message = await claude.messages.create(
        model=MODEL,
        max_tokens=64,
        system=[{"type": "text", "text": "be brief"}],
        messages=messages,
        tools=[WEATHER_TOOL_ANTHROPIC],
    )
    assert message.content[0].text == "Sunny in Paris."
    assert fake.requests[0].system == [{"type": "text", "text": "be brief"}]


async def test_body_size_limit() -> None:
    async with FakeLLM(max_body_bytes=2048) as server:
        server.default = Reply("fits")
        async with AsyncOpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0) as c:
            ok = await c.chat.completions.create(model=MODEL, messages=HI)
            assert ok.choices[0].message.content == "fits"
            with pytest.raises(openai.APIStatusError) as info:
                await c.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "x" * 4096}]
                )
        assert info.value.status_code == 413
        assert server.requests[-1].outcome == "rejected"


# ---------------------------------------------------------------- auth, headers, routing


async def test_wrong_key_is_rejected_on_both_wires(fake: FakeLLM) -> None:
    fake.default = Reply("unused")
    async with AsyncOpenAI(base_url=fake.openai_base_url, api_key="wrong", max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError) as oai_error:
            await c.chat.completions.create(model=MODEL, messages=HI)
    assert oai_error.value.code == "invalid_api_key"
    async with AsyncAnthropic(
        base_url=fake.anthropic_base_url, api_key="wrong", max_retries=0
    ) as c:
        with pytest.raises(anthropic.AuthenticationError) as claude_error:
            await c.messages.create(model=MODEL, max_tokens=64, messages=HI)
    assert claude_error.value.type == "authentication_error"
    assert [r.status for r in fake.requests] == [401, 401]


async def test_anthropic_headers_on_the_raw_wire(fake: FakeLLM) -> None:
    fake.default = Reply("hello")
    body = {"model": MODEL, "max_tokens": 8, "messages": HI}
    status, payload = await raw_post(
        fake, "/v1/messages", body, {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    )
    assert status == 200 and payload["content"][0]["text"] == "hello"

    status, payload = await raw_post(fake, "/v1/messages", body, {"x-api-key": KEY})
    assert status == 400
    assert payload["type"] == "error"
    assert payload["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }

    status, payload = await raw_post(
        fake, "/v1/messages", body, {"anthropic-version": "2023-06-01"}
    )
    assert status == 401 and payload["error"]["type"] == "authentication_error"

    status, payload = await raw_post(
        fake, "/v1/chat/completions", {"model": MODEL, "messages": HI}, {}
    )
    assert status == 401
    assert set(payload["error"]) == {"message", "type", "param", "code"}


async def test_openrouter_style_prefix(fake: FakeLLM) -> None:
    fake.enqueue(Reply("routed"))
    async with AsyncOpenAI(base_url=fake.url("/api/v1"), api_key=KEY, max_retries=0) as c:
        stream = await c.chat.completions.create(model="openai/gpt-x", messages=HI, stream=True)
        text, finish = await openai_text(stream)
        models = await c.models.list()
    assert (text, finish) == ("routed", "stop")
    assert fake.requests[0].path == "/api/v1/chat/completions"
    assert fake.requests[0].model == "openai/gpt-x"
    assert [m.id for m in models.data] == ["fake-model"]


async def test_model_list_and_unknown_models() -> None:
    async with FakeLLM(models=["m-1", "m-2"]) as server:
        server.default = Reply("ok")
        async with AsyncAnthropic(
            base_url=server.anthropic_base_url, api_key="x", max_retries=0
        ) as c:
            page = await c.models.list()
            assert [m.id for m in page.data] == ["m-1", "m-2"]
            with pytest.raises(anthropic.NotFoundError, match="model: nope"):
                await c.messages.create(model="nope", max_tokens=8, messages=HI)
            ok = await c.messages.create(model="m-2", max_tokens=8, messages=HI)
            assert ok.model == "m-2"


async def test_concurrent_streams_are_counted(fake: FakeLLM, oai: AsyncOpenAI) -> None:
    fake.enqueue(*[Reply(chunks=["a", "b", "c"], chunk_delay=0.1) for _ in range(3)])

    async def one() -> str:
        stream = await oai.chat.completions.create(model=MODEL, messages=HI, stream=True)
        return (await openai_text(stream))[0]

    results = asyncio.gather(*(one() for _ in range(3)))
    try:
        await fake.wait_until(lambda: fake.active_streams == 3, timeout=2)
    finally:
        assert await results == ["abc"] * 3
    await fake.wait_idle(1)
    assert fake.active_streams == 0 and fake.completed == 3


# ---------------------------------------------------------------- request fields & structured output

FACTS_SCHEMA = {
    "type": "object",
    "properties": {"facts": {"type": "array", "items": {"type": "string"}}},
    "required": ["facts"],
    "additionalProperties": False,
}


def test_anthropic_known_fields_match_the_sdk() -> None:
    """The fake's idea of the Messages API is the installed SDK's: a lock upgrade that
    changes the request fields fails here first."""
    from typing import get_type_hints

    from anthropic.types import message_create_params

    from tests.fakes.fake_llm.anthropic_validation import KNOWN_FIELDS

    sdk = set(get_type_hints(message_create_params.MessageCreateParamsBase))
    assert sdk | {"stream"} == KNOWN_FIELDS


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_rejects_unknown_top_level_fields(fake: FakeLLM, stream: bool) -> None:
    fake.enqueue(Reply("unused"))
    body = {"model": MODEL, "max_tokens": 8, "messages": HI, "temperature": 0.0, "stream": stream}
    status, payload = await raw_post(
        fake, "/v1/messages", body, {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    )
    assert status == 400
    assert payload["error"] == {
        "type": "invalid_request_error",
        "message": "temperature: Extra inputs are not permitted",
    }
    assert fake.requests[0].outcome == "rejected" and fake.pending == 1


async def test_openai_json_schema_answer_is_the_content(fake: FakeLLM, oai: AsyncOpenAI) -> None:
    fake.enqueue(Reply('{"facts": ["likes tea"]}'))
    completion = await oai.chat.completions.create(
        model=MODEL,
        messages=HI,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "facts", "schema": FACTS_SCHEMA, "strict": True},
        },
    )
    assert json.loads(completion.choices[0].message.content) == {"facts": ["likes tea"]}
    assert fake.requests[0].body["response_format"]["json_schema"]["name"] == "facts"


@pytest.mark.parametrize(
    ("response_format", "match"),
    [
        pytest.param({"type": "xml"}, "Supported values", id="bad-type"),
        pytest.param(
            {"type": "json_schema", "json_schema": {"schema": FACTS_SCHEMA}},
            "json_schema.name",
            id="no-name",
        ),
        pytest.param(
            {"type": "json_schema", "json_schema": {"name": "has space", "schema": FACTS_SCHEMA}},
            "does not match pattern",
            id="bad-name",
        ),
        pytest.param(
            {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "array", "items": {}}},
            },
            'type: "object"',
            id="array-root",
        ),
        pytest.param(
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "x",
                    "schema": {"type": "object", "properties": {"a": {"type": "text"}}},
                },
            },
            "not a JSON type",
            id="bad-json-type",
        ),
        pytest.param(
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "x",
                    "strict": True,
                    "schema": {**FACTS_SCHEMA, "additionalProperties": True},
                },
            },
            "'additionalProperties' is required to be supplied and to be false",
            id="strict-additional-properties",
        ),
        pytest.param(
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "x",
                    "strict": True,
                    "schema": {**FACTS_SCHEMA, "required": []},
                },
            },
            "Missing 'facts'",
            id="strict-required",
        ),
        pytest.param({"type": "json_object"}, "must contain the word 'json'", id="json-object"),
    ],
)
async def test_openai_rejects_malformed_response_formats(
    fake: FakeLLM, oai: AsyncOpenAI, response_format: dict[str, Any], match: str
) -> None:
    fake.enqueue(Reply("{}"))
    with pytest.raises(openai.BadRequestError, match=match):
        await oai.chat.completions.create(model=MODEL, messages=HI, response_format=response_format)
    assert fake.pending == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_forced_tool_answer_is_a_tool_use_block(
    fake: FakeLLM, claude: AsyncAnthropic, stream: bool
) -> None:
    fake.enqueue(Reply('{"facts": ["likes tea"]}'))
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 64,
        "messages": HI,
        "tools": [{"name": "facts", "input_schema": FACTS_SCHEMA}],
        "tool_choice": {"type": "tool", "name": "facts"},
    }
    if stream:
        async with claude.messages.stream(**kwargs) as helper:
            message = await helper.get_final_message()
    else:
        message = await claude.messages.create(**kwargs)
    (block,) = message.content
    assert (block.type, block.name, block.input) == ("tool_use", "facts", {"facts": ["likes tea"]})
    assert message.stop_reason == "tool_use"


async def test_anthropic_forced_tool_needs_an_object_or_an_ignoring_model(
    fake: FakeLLM, claude: AsyncAnthropic
) -> None:
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 64,
        "messages": HI,
        "tools": [{"name": "facts", "input_schema": FACTS_SCHEMA}],
        "tool_choice": {"type": "tool", "name": "facts"},
    }
    fake.enqueue(Reply('["a list"]'))
    with pytest.raises(anthropic.InternalServerError, match="must be a JSON object"):
        await claude.messages.create(**kwargs)
    # A proxy that ignores tool_choice answers in prose.
    fake.enqueue(Reply('Sure: {"facts": []}', honour_format=False))
    message = await claude.messages.create(**kwargs)
    assert [b.type for b in message.content] == ["text"]


@pytest.mark.parametrize(
    ("schema", "match"),
    [
        pytest.param({"type": "object", "properties": []}, "properties: must be an object", id="p"),
        pytest.param({"type": "object", "required": "facts"}, "required", id="required"),
        pytest.param(
            {"type": "object", "properties": {"a": {"type": "str"}}}, "not a JSON type", id="type"
        ),
    ],
)
async def test_anthropic_rejects_malformed_input_schemas(
    fake: FakeLLM, claude: AsyncAnthropic, schema: dict[str, Any], match: str
) -> None:
    with pytest.raises(anthropic.BadRequestError, match=f"JSON schema is invalid.*{match}"):
        await claude.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=HI,
            tools=[{"name": "facts", "input_schema": schema}],
            tool_choice={"type": "tool", "name": "facts"},
        )
