"""Model tiers: message prefixes, per-provider tier models, auto selection."""

from __future__ import annotations

import re
from typing import Literal

Tier = Literal["high", "mid", "low"]

PREFIXES: dict[str, Tier] = {
    "!high": "high",
    "!opus": "high",
    "!mid": "mid",
    "!sonnet": "mid",
    "!low": "low",
    "!haiku": "low",
    "!fast": "low",
}
_PREFIX_RE = re.compile(
    r"^\s*(" + "|".join(re.escape(p) for p in PREFIXES) + r")(?=\s|$)\s*", re.IGNORECASE
)


def parse_tier_prefix(text: str) -> tuple[Tier | None, str]:
    """``"!high what is X"`` -> ``("high", "what is X")``; no prefix -> ``(None, text)``.

    Only a leading prefix counts, and only as a whole word: ``"!higher"`` and
    ``"use !high"`` are ordinary text.
    """
    m = _PREFIX_RE.match(text)
    if not m:
        return None, text
    return PREFIXES[m.group(1).lower()], text[m.end() :]


CLASSIFIER_SYSTEM = """\
You route chat messages to a model tier. Reply with exactly one word: LOW, MID or HIGH.
LOW: greetings, thanks, quick facts, simple questions, casual chat.
MID: explanations, summaries, advice, most coding questions, moderate tasks.
HIGH: complex reasoning, long-form writing, difficult code, multi-step analysis.
Judge the newest message in the context of the recent conversation: a short
"yes, go on" inside a hard discussion is as hard as the discussion."""

_ANSWER_RE = re.compile(r"\b(LOW|MID|HIGH)\b", re.IGNORECASE)


def parse_tier_answer(answer: str) -> Tier:
    """The classifier's answer -> a tier; anything unclear means ``mid``."""
    found = {m.lower() for m in _ANSWER_RE.findall(answer)}
    if len(found) == 1:
        return found.pop()  # type: ignore[return-value]
    return "mid"
