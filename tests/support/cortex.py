"""Shared Cortex test wiring: the real local embedder (loaded once) and a
``TextModel`` that talks to the fake LLM server through the real SDK."""

from __future__ import annotations

import functools

from clara_core.cortex.embedding.local_onnx import LocalOnnxEmbedder
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
