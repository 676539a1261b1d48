"""Each provider through the real SDKs against the fake LLM server."""

from __future__ import annotations

import asyncio

import pytest

from clara_core.config import PROVIDERS as PROVIDER_FIELDS
from clara_core.llm.errors import ProviderAuthError, ProviderUnavailable, StreamInterrupted
from clara_core.llm.service import ChatRequest
from clara_core.llm.types import Completion, ImagePart, Message, TextDelta, TextPart
from tests.fakes.fake_llm import Drop, ErrorReply, FakeLLM, Hang, Reply
from tests.support.llm import KEY, PROVIDERS, build_runner, provider_settings, settings_for

pytestmark = pytest.mark.parametrize("provider", PROVIDERS)


@pytest.fixture
async def fake():
    async with FakeLLM(api_keys={KEY}) as server:
        yield server


async def _stream(service, req, tier=None) -> tuple[str, Completion]:
    text, completion = [], None
    async for event in service.stream(req, tier=tier):
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, Completion):
            completion = event
    return "".join(text), completion


async def test_streaming_text(fake, provider):
    fake.enqueue(Reply("Hello there, friend!", chunks=["Hello", " there,", " friend!"]))
    _, service = build_runner(settings_for(fake, provider))
    try:
        text, done = await _stream(
            service, ChatRequest([Message.text("user", "hi")], system="be kind")
        )
    finally:
        await service.aclose()
    assert text == done.text == "Hello there, friend!"
    assert done.finish_reason == "stop" and done.usage.output_tokens > 0
    req = fake.requests[0]
    assert req.stream and req.wire == ("anthropic" if provider == "anthropic" else "openai")
    expected_model = {
        "openrouter": "anthropic/claude-sonnet-5.5",
        "nanogpt": "moonshotai/Kimi-K2-Instruct-0905",
        "openai": "gpt-4o",
        "anthropic": "claude-sonnet-5-5",
    }[provider]
    assert req.model == expected_model


async def test_non_streaming(fake, provider):
    fake.enqueue(Reply("forty-two"))
    _, service = build_runner(settings_for(fake, provider))
    try:
        done = await service.complete(ChatRequest([Message.text("user", "answer?")]), tier=None)
    finally:
        await service.aclose()
    assert done.text == "forty-two" and not fake.requests[0].stream


async def test_provider_headers(fake, provider):
    fake.enqueue(Reply("ok"))
    _, service = build_runner(settings_for(fake, provider))
    try:
        await _stream(service, ChatRequest([Message.text("user", "hi")]))
    finally:
        await service.aclose()
    headers = fake.requests[0].headers
    if provider == "openrouter":
        assert headers["http-referer"] == "https://clara.example" and headers["x-title"] == "Clara"
        assert fake.requests[0].path == "/api/v1/chat/completions"
    if provider == "openai":
        assert headers["cf-access-client-id"] == "cf-id"
        assert headers["cf-access-client-secret"] == "cf-secret"
    # anthropic-python 2.x sends its key as a Bearer token too
    assert headers.get("authorization") == f"Bearer {KEY}" or headers.get("x-api-key") == KEY


async def test_images_reach_the_model_in_its_wire_format(fake, provider):
    fake.enqueue(Reply("a red square"))
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    _, service = build_runner(settings_for(fake, provider))
    msg = Message(
        role="user", content=[TextPart("what is this?"), ImagePart("image/png", data=png)]
    )
    try:
        text, _ = await _stream(service, ChatRequest([msg]))
    finally:
        await service.aclose()
    assert text == "a red square"
    content = fake.requests[0].messages[-1]["content"]
    kinds = [part["type"] for part in content]
    assert kinds == (["text", "image"] if provider == "anthropic" else ["text", "image_url"])


async def test_retry_after_is_honoured(fake, provider):
    fake.enqueue(ErrorReply(429, retry_after=0.3), Reply("made it"))
    _, service = build_runner(settings_for(fake, provider))
    try:
        text, _ = await _stream(service, ChatRequest([Message.text("user", "hi")]))
    finally:
        await service.aclose()
    assert text == "made it"
    first, second = fake.requests
    assert second.received_at - first.received_at >= 0.3


async def test_gives_up_after_retries(fake, provider):
    fake.enqueue(*[ErrorReply(503)] * 3)
    _, service = build_runner(settings_for(fake, provider))
    try:
        with pytest.raises(ProviderUnavailable):
            await _stream(service, ChatRequest([Message.text("user", "hi")]))
    finally:
        await service.aclose()
    assert len(fake.requests) == 3  # first try + 2 retries (FAST_RETRIES)


async def test_wrong_key_is_an_auth_error_without_retries(fake, provider):
    key_field = PROVIDER_FIELDS[provider].api_key
    _, service = build_runner(settings_for(fake, provider, **{key_field: "wrong"}))
    try:
        with pytest.raises(ProviderAuthError):
            await _stream(service, ChatRequest([Message.text("user", "hi")]))
    finally:
        await service.aclose()
    assert len(fake.requests) == 1


async def test_drop_mid_stream_is_not_retried(fake, provider):
    fake.enqueue(Drop(["partial ", "answer"]))
    _, service = build_runner(settings_for(fake, provider))
    seen = []
    try:
        with pytest.raises(ProviderUnavailable) as info:
            async for event in service.stream(ChatRequest([Message.text("user", "hi")]), tier=None):
                seen.append(event)
    finally:
        await service.aclose()
    assert any(isinstance(e, TextDelta) for e in seen)
    assert type(info.value).__name__ == "StreamInterrupted"
    assert len(fake.requests) == 1  # half an answer was shown: no silent retry


async def test_cancelling_closes_the_http_stream(fake, provider):
    fake.enqueue(Hang(["thinking about it"]))
    _, service = build_runner(settings_for(fake, provider))
    first = asyncio.Event()

    async def consume():
        async for event in service.stream(ChatRequest([Message.text("user", "hi")]), tier=None):
            if isinstance(event, TextDelta):
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    disconnect = await fake.wait_for_disconnect(timeout=2)
    assert disconnect.chunks_sent >= 1
    await service.aclose()


# -- transport failures: one outcome, whichever way the SDK reports them ----------------
#
# Which exception class a dropped connection, a read timeout or a cut body arrives as
# differs between SDK releases (raw httpx2/aiohttp errors, or the SDK's own
# APIConnectionError/APITimeoutError).  Clara's outcome must not: before any output
# the call is retried (ProviderUnavailable), after output it is StreamInterrupted.


async def test_read_timeout_mid_stream_is_interrupted(fake, provider):
    fake.enqueue(Hang(["partial "]))
    _, service = build_runner(settings_for(fake, provider, llm_timeout=0.5))
    seen = []
    try:
        with pytest.raises(StreamInterrupted):
            async for event in service.stream(ChatRequest([Message.text("user", "hi")]), tier=None):
                seen.append(event)
    finally:
        await service.aclose()
    assert [e.text for e in seen if isinstance(e, TextDelta)] == ["partial "]
    assert len(fake.requests) == 1
    assert (await fake.wait_for_disconnect(timeout=1)).chunks_sent == 1


@pytest.mark.parametrize("failure", ["drop", "timeout"])
async def test_failure_before_any_output_is_retried(fake, provider, failure):
    first = Drop() if failure == "drop" else Hang()
    fake.enqueue(first, Reply("second try"))
    _, service = build_runner(settings_for(fake, provider, llm_timeout=0.5))
    try:
        text, done = await _stream(service, ChatRequest([Message.text("user", "hi")]))
    finally:
        await service.aclose()
    assert text == done.text == "second try"
    assert [r.stream for r in fake.requests] == [True, True]


async def test_truncated_body_is_retried_then_reported(fake, provider):
    fake.enqueue(Drop(["forty-two"], body_bytes=20), Reply("forty-two"))
    _, service = build_runner(settings_for(fake, provider))
    try:
        done = await service.complete(ChatRequest([Message.text("user", "answer?")]), tier=None)
        assert done.text == "forty-two"
        assert [r.outcome for r in fake.requests] == ["dropped", "completed"]

        fake.enqueue(*[Drop(["x"], body_bytes=5)] * 3)
        with pytest.raises(ProviderUnavailable) as info:
            await service.complete(ChatRequest([Message.text("user", "again?")]), tier=None)
    finally:
        await service.aclose()
    assert type(info.value) is ProviderUnavailable
    assert len(fake.requests) == 2 + 3  # first try + 2 retries (FAST_RETRIES)


async def test_a_dropping_provider_falls_back(fake, provider):
    other = "anthropic" if provider != "anthropic" else "openai"
    settings = settings_for(
        fake,
        provider,
        llm_fallback_providers=[other],
        **provider_settings(fake, other),
    )
    fake.enqueue(*[Drop()] * 3, Reply("from the fallback"))
    _, service = build_runner(settings)
    try:
        text, _ = await _stream(service, ChatRequest([Message.text("user", "hi")]))
    finally:
        await service.aclose()
    assert text == "from the fallback"
    wires = [r.wire for r in fake.requests]
    primary_wire = "anthropic" if provider == "anthropic" else "openai"
    assert wires == [primary_wire] * 3 + [("anthropic" if other == "anthropic" else "openai")]
