"""What Cortex needs from the outside world, as small protocols.

Cortex sits beside the LLM layer, not above it: it asks for text completions
through ``TextModel`` and the composition root plugs the LLM service in
(``clara_core.pipeline.memory.ServiceTextModel``).  Tests plug in the same
adapter pointed at the fake LLM server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class JsonAnswer:
    """The JSON shape a prompt asks for, so the model layer can use the provider's
    structured output where it has one.  ``schema`` is a JSON Schema with an object
    root in the strict subset (``llm_json.strict_object``); ``name`` is an
    identifier (``[a-zA-Z0-9_-]{1,64}``).  The answer still arrives as text and is
    still parsed tolerantly: not every model or server honours the request."""

    name: str
    schema: dict[str, Any]
    description: str = ""


class TextModel(Protocol):
    """A cheap model for scoring, extraction and summaries."""

    async def complete_text(
        self,
        prompt: str,
        *,
        max_tokens: int,
        system: str | None = None,
        json_answer: JsonAnswer | None = None,
    ) -> str: ...


class Embedder(Protocol):
    #: Identifies the vectors' space: a change of model or dimension means re-embedding.
    model_id: str
    dims: int

    async def embed(self, text: str) -> list[float]: ...

    async def embed_batch(self, texts: list[str]) -> list[list[float]]: ...

    async def aclose(self) -> None: ...
