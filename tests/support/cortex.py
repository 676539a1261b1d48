"""Shared Cortex test wiring: the real local embedder (loaded once) and a
``TextModel`` that talks to the fake LLM server through the real SDK."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from clara_core.cortex.embedding.local_onnx import LocalOnnxEmbedder
from clara_core.cortex.types import Memory, MemoryType
from clara_core.cortex.warm import WarmStore
from clara_core.llm.service import LLMService
from clara_core.pipeline.memory import ServiceTextModel
from tests.fakes.fake_llm import FakeLLM
from tests.support.llm import FAST_RETRIES, settings_for


@functools.cache
def local_embedder() -> LocalOnnxEmbedder:
    """One model per test session: loading it takes ~0.5 s."""
    return LocalOnnxEmbedder()


def text_model_for(fake: FakeLLM, provider: str = "openai") -> tuple[ServiceTextModel, LLMService]:
    """A cheap-model adapter aimed at ``fake``; close the service after the test."""
    service = LLMService(settings_for(fake, provider), policy=FAST_RETRIES)
    return ServiceTextModel(service), service


async def remember_one(engine: AsyncEngine, user_id: str, text: str = "Started the cello") -> None:
    """One episodic memory of an hour ago for ``user_id``, embedded by the real model:
    with CORTEX_PATTERN_MIN_MEMORIES=1 a consolidation of the user then makes
    exactly one model call (pattern extraction)."""
    embedder = local_embedder()
    memory = Memory(
        text, user_id, MemoryType.EPISODIC, created_at=datetime.now(UTC) - timedelta(hours=1)
    )
    [vector] = await embedder.embed_batch([text])
    await WarmStore(engine).add_many([(memory, vector)], model=embedder.model_id)
