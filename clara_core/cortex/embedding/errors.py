"""Errors of the embedders."""

from __future__ import annotations

from ..types import CortexError


class EmbeddingError(CortexError):
    """Text could not be embedded: the embeddings service failed or answered
    something unusable (wrong dimension, missing items).

    Messages are plain and safe to log: they never contain an API key.
    """
