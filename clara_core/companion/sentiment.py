"""Sentiment and intensity from the low tier, as structured output (optional).

The local heuristic (``events.stimulus_from_text``) is always computed; the
model only refines sentiment, intensity, praise and conflict, which it reads
far better (irony, other languages).  It runs before the answer, so it gets a
short deadline: a slow, failing or unreadable answer costs nothing but the
refinement.  It asks through the same small ``TextModel`` port Cortex uses,
so this module never imports the LLM layer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any, Protocol

from clara_core.cortex.llm_json import as_number, json_items, strict_object
from clara_core.cortex.ports import JsonAnswer, TextModel

from .events import stimulus_from_text
from .hormones import Stimulus

log = logging.getLogger(__name__)

#: The refinement must not hold up the answer: past this, the heuristic stands.
DEFAULT_TIMEOUT_S = 1.5
#: Long messages are read from their start: the tone is set early, and tokens cost.
MAX_CHARS = 1500

SYSTEM = (
    "You rate the emotional tone of one chat message written to an assistant named Clara. "
    "Answer only with the JSON object asked for."
)
ANSWER = JsonAnswer(
    "message_tone",
    strict_object(
        {
            "sentiment": {
                "type": "number",
                "description": "-1 hostile/sad .. 0 neutral .. 1 warm/happy",
            },
            "intensity": {"type": "number", "description": "0 calm .. 1 very strong feeling"},
            "praise": {"type": "boolean", "description": "thanks or praise for Clara"},
            "conflict": {"type": "boolean", "description": "hostility toward Clara"},
        }
    ),
    "The tone of a chat message.",
)


def parse_tone(text: str) -> dict[str, Any] | None:
    """The tone object in the answer, or ``None`` when there is no usable one."""
    found = json_items(text, item_fields=frozenset({"sentiment", "intensity"}))
    for value in found or ():
        if isinstance(value, dict):
            sentiment = as_number(value.get("sentiment"))
            intensity = as_number(value.get("intensity"))
            if sentiment is None or intensity is None:
                continue
            return {
                "sentiment": max(-1.0, min(1.0, sentiment)),
                "intensity": max(0.0, min(1.0, intensity)),
                "praise": value.get("praise") is True,
                "conflict": value.get("conflict") is True,
            }
    return None


class SentimentReader(Protocol):
    async def stimulus(self, text: str, *, mention: bool = False) -> Stimulus: ...


class LocalSentiment:
    """The heuristic alone (the default: no model call, microseconds)."""

    async def stimulus(self, text: str, *, mention: bool = False) -> Stimulus:
        return stimulus_from_text(text, mention=mention)


class ModelSentiment:
    """Stimulus = heuristic, refined by the model's reading when it comes in time."""

    def __init__(self, model: TextModel, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.model = model
        self.timeout = timeout

    async def stimulus(self, text: str, *, mention: bool = False) -> Stimulus:
        local = stimulus_from_text(text, mention=mention)
        if not text.strip():
            return local
        try:
            async with asyncio.timeout(self.timeout):
                answer = await self.model.complete_text(
                    text[:MAX_CHARS], max_tokens=60, system=SYSTEM, json_answer=ANSWER
                )
        except Exception as exc:  # timeouts and model errors alike: the heuristic stands
            log.info("mood: tone model unavailable (%r); using the local heuristic", exc)
            return local
        tone = parse_tone(answer)
        if tone is None:
            log.info("mood: tone answer unreadable; using the local heuristic")
            return local
        return replace(
            local,
            sentiment=tone["sentiment"],
            intensity=tone["intensity"],
            praise=tone["praise"] or local.praise,
            conflict=tone["conflict"] or local.conflict,
        )
