"""Both embedders for real: the local ONNX model, and ``OpenAIEmbedder`` through the
real ``openai`` SDK against the fake server's embeddings endpoint.  No database."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator

import openai
import pytest

from clara_core.config import load_settings
from clara_core.cortex.embedding import build_embedder
from clara_core.cortex.embedding.errors import EmbeddingError
from clara_core.cortex.embedding.openai_api import OpenAIEmbedder
from clara_core.cortex.types import CortexError
from clara_core.errors import ConfigError
from tests.fakes.fake_llm import ErrorReply, FakeLLM
from tests.fakes.fake_llm.embeddings import embed_text
from tests.support.cortex import local_embedder

SECRET = "sk-test-embeddings-0123456789abcdef"


def _dot(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def _norm(v: list[float]) -> float:
    return math.sqrt(_dot(v, v))


# ------------------------------------------------------------------ local ONNX


async def test_local_vectors_are_unit_length_and_meaningful() -> None:
    emb = local_embedder()
    assert emb.dims == 384
    cat, kitten, tax = await emb.embed_batch(
        [
            "My cat loves sleeping on the windowsill.",
            "Our kitten likes to nap by the window.",
            "I need to file my tax return before April.",
        ]
    )
    for v in (cat, kitten, tax):
        assert len(v) == 384
        assert _norm(v) == pytest.approx(1.0, abs=1e-4)
    assert _dot(cat, kitten) > _dot(cat, tax) + 0.2


async def test_local_batch_equals_single_and_empty_batch() -> None:
    emb = local_embedder()
    texts = ["short", "a somewhat longer sentence about gardening in spring", "", "x " * 300]
    batch = await emb.embed_batch(texts)
    for text, vec in zip(texts, batch, strict=True):
        single = (await emb.embed_batch([text]))[0]
        assert max(abs(a - b) for a, b in zip(vec, single, strict=True)) < 1e-5
    assert await emb.embed_batch([]) == []
    # The query cache hands back the same vector the batch path makes.
    assert await emb.embed(texts[1]) == pytest.approx(batch[1], abs=1e-5)


async def test_local_embedding_runs_off_the_event_loop() -> None:
    """A 500-text batch must not stall the loop (Discord heartbeats live there)."""
    emb = local_embedder()
    texts = [f"memory number {i}: went hiking with friends near the lake" for i in range(500)]
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)  # let the ticker start
    started = time.perf_counter()
    vectors = await emb.embed_batch(texts)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    assert len(vectors) == 500
    assert len(lags) >= 3, f"loop barely ticked during a {elapsed:.2f}s batch"
    assert max(lags) < 0.1, f"event loop stalled for {max(lags) * 1000:.0f} ms"


def test_local_rejects_other_dimensions() -> None:
    # Configuration refuses it at load (exit 2 before anything starts) ...
    with pytest.raises(ConfigError, match=r"CORTEX_EMBEDDING_DIMS=256.*PROVIDER=openai"):
        load_settings(env_file=None, cortex_embedding_dims=256)
    # ... and the embedder itself still refuses a width its model cannot make.
    from clara_core.cortex.embedding.local_onnx import LocalOnnxEmbedder

    with pytest.raises(CortexError, match="CORTEX_EMBEDDING_PROVIDER=openai"):
        LocalOnnxEmbedder(dims=256)


# ------------------------------------------------------------------ OpenAI API


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with FakeLLM(api_keys={SECRET}) as server:
        yield server


def _settings(fake: FakeLLM, **overrides):
    values = {
        "cortex_embedding_provider": "openai",
        "cortex_embedding_api_key": SECRET,
        "cortex_embedding_base_url": fake.openai_base_url,
        "cortex_embedding_dims": 256,
        **overrides,
    }
    return load_settings(env_file=None, **values)


@pytest.fixture
async def embedder(fake: FakeLLM) -> AsyncIterator[OpenAIEmbedder]:
    emb = build_embedder(_settings(fake))
    assert isinstance(emb, OpenAIEmbedder)
    yield emb
    await emb.aclose()


async def test_openai_honours_model_and_dimensions(fake: FakeLLM, embedder: OpenAIEmbedder) -> None:
    assert embedder.model_id == "text-embedding-3-small"
    assert embedder.dims == 256
    vec = await embedder.embed("Grandma's apple pie recipe")
    assert len(vec) == 256
    assert _norm(vec) == pytest.approx(1.0, abs=1e-6)
    (request,) = fake.embeddings.requests
    assert request.body["model"] == "text-embedding-3-small"
    assert request.body["dimensions"] == 256
    assert request.body["encoding_format"] == "float"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert vec == pytest.approx(embed_text("Grandma's apple pie recipe", 256), abs=1e-6)
    # Repeated queries come from the cache.
    assert await embedder.embed("Grandma's apple pie recipe") == vec
    assert len(fake.embeddings.requests) == 1


async def test_openai_vectors_reflect_shared_words(embedder: OpenAIEmbedder) -> None:
    pie, cake, car = await embedder.embed_batch(
        ["baked an apple pie for grandma", "grandma baked an apple cake", "the car needs new tyres"]
    )
    assert _dot(pie, cake) > _dot(pie, car) + 0.3


async def test_openai_keeps_order_across_chunks(fake: FakeLLM) -> None:
    emb = OpenAIEmbedder(
        api_key=SECRET, base_url=fake.openai_base_url, dims=64, chunk_size=3, max_retries=0
    )
    try:
        texts = [f"memory {i} about topic {i * 7}" for i in range(10)] + [""]
        vectors = await emb.embed_batch(texts)
        assert await emb.embed_batch([]) == []
    finally:
        await emb.aclose()
    requests = fake.embeddings.requests
    assert [len(r.body["input"]) for r in requests] == [3, 3, 3, 2]
    assert [t for r in requests for t in r.body["input"]] == [*texts[:-1], " "]
    for text, vec in zip(texts, vectors, strict=True):
        assert vec == pytest.approx(embed_text(text or " ", 64), abs=1e-6)


async def test_openai_wrong_dimension_is_an_embedding_error(
    fake: FakeLLM, embedder: OpenAIEmbedder
) -> None:
    fake.embeddings.fixed_dims = 64  # a compatible server that ignores 'dimensions'
    with pytest.raises(EmbeddingError, match="64-dimensional") as info:
        await embedder.embed_batch(["hello"])
    assert "CORTEX_EMBEDDING_DIMS=256" in str(info.value)


async def test_openai_server_error_is_an_embedding_error(fake: FakeLLM) -> None:
    emb = OpenAIEmbedder(api_key=SECRET, base_url=fake.openai_base_url, dims=64, max_retries=1)
    fake.embeddings.default = ErrorReply(500, retry_after=0.01)
    started = time.perf_counter()
    try:
        with pytest.raises(EmbeddingError, match="HTTP 500") as info:
            await emb.embed("hello")
    finally:
        await emb.aclose()
    assert time.perf_counter() - started < 5
    assert len(fake.embeddings.requests) == 2  # the SDK retried once
    assert SECRET not in str(info.value)


async def test_openai_rate_limit_then_success_is_retried_by_the_sdk(fake: FakeLLM) -> None:
    emb = OpenAIEmbedder(api_key=SECRET, base_url=fake.openai_base_url, dims=32, max_retries=2)
    fake.embeddings.enqueue(ErrorReply(429, retry_after=0.01))
    try:
        assert len(await emb.embed("hello")) == 32
    finally:
        await emb.aclose()
    assert [r.status for r in fake.embeddings.requests] == [429, 200]


async def test_openai_bad_key_never_leaks(fake: FakeLLM) -> None:
    wrong = "sk-wrong-key-abcdefghijklmnop"
    emb = OpenAIEmbedder(api_key=wrong, base_url=fake.openai_base_url, dims=32, max_retries=0)
    try:
        with pytest.raises(EmbeddingError, match="CORTEX_EMBEDDING_API_KEY") as info:
            await emb.embed("hello")
    finally:
        await emb.aclose()
    assert wrong not in str(info.value)
    assert fake.embeddings.requests[0].status == 401


async def test_openai_unreachable_is_an_embedding_error(fake: FakeLLM) -> None:
    url = fake.openai_base_url
    await fake.stop()
    emb = OpenAIEmbedder(api_key=SECRET, base_url=url, dims=32, max_retries=0)
    try:
        with pytest.raises(EmbeddingError, match="could not reach") as info:
            await emb.embed("hello")
    finally:
        await emb.aclose()
    assert SECRET not in str(info.value)


def test_openai_missing_key_is_a_config_error() -> None:
    settings = load_settings(env_file=None, cortex_embedding_provider="openai")
    with pytest.raises(ConfigError, match="CORTEX_EMBEDDING_API_KEY"):
        build_embedder(settings)


# ------------------------------------------------------------------ fake server wire


async def test_fake_embeddings_wire_rules(fake: FakeLLM) -> None:
    """The fake rejects what the real API rejects, and can answer in base64."""
    client = openai.AsyncOpenAI(api_key=SECRET, base_url=fake.openai_base_url, max_retries=0)
    try:
        for bad in ("", [], ["ok", ""], ["ok", 3.5], ["x"] * 2049):
            with pytest.raises(openai.BadRequestError) as info:
                await client.embeddings.create(model="text-embedding-3-small", input=bad)
            assert info.value.body["type"] == "invalid_request_error"
        with pytest.raises(openai.BadRequestError):
            await client.embeddings.create(
                model="text-embedding-3-small", input="hi", dimensions=4096
            )
        # The SDK asks for base64 by default and decodes it.
        response = await client.embeddings.create(model="text-embedding-3-small", input="hi there")
        assert fake.embeddings.requests[-1].body["encoding_format"] == "base64"
        assert len(response.data[0].embedding) == 1536
        assert response.data[0].embedding == pytest.approx(embed_text("hi there", 1536), abs=1e-6)
        assert response.usage.prompt_tokens == 2
    finally:
        await client.close()
    async with openai.AsyncOpenAI(
        api_key="nope", base_url=fake.openai_base_url, max_retries=0
    ) as stranger:
        with pytest.raises(openai.AuthenticationError):
            await stranger.embeddings.create(model="text-embedding-3-small", input="hi")
