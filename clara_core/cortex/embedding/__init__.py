"""Embedders for the warm tier: a local offline model (default) or OpenAI's API.

See docs/cortex-embedder-evaluation.md for why the local default is
all-MiniLM-L6-v2 int8 on onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..ports import Embedder

if TYPE_CHECKING:
    from clara_core.config import Settings

__all__ = ["Embedder", "build_embedder"]


def build_embedder(settings: Settings) -> Embedder:
    """The embedder the settings ask for (loading a local model takes ~0.8 s: call at start-up)."""
    if settings.cortex_embedding_provider == "openai":
        from .openai_api import OpenAIEmbedder

        return OpenAIEmbedder.from_settings(settings)
    from .local_onnx import LocalOnnxEmbedder

    return LocalOnnxEmbedder(dims=settings.cortex_embedding_dims)
