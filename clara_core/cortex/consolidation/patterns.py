"""Pattern extraction: stable facts read out of a user's recent episodes (spec 8.3).

One model call per user and run.  High-confidence patterns become semantic
memories (so retrieval finds them) and, for identity facts, fields of the hot
identity (so every prompt carries them).
"""

from __future__ import annotations

import logging
import re
from dataclasses import KW_ONLY, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from ..llm_json import as_index, as_number, json_array, strict_object
from ..ports import JsonAnswer
from ..types import Memory, MemoryType
from .records import Pattern

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from clara_core.config import Settings

    from ..hot import HotStore
    from ..ports import Embedder, TextModel
    from ..warm import WarmStore

log = logging.getLogger(__name__)

#: Episodes shown to the model: enough for patterns, few enough for a cheap model.
PROMPT_MEMORIES = 50
#: Longer episodes are cut in the prompt; the gist is what patterns come from.
PROMPT_CONTENT_CHARS = 400
#: A pattern this close to a stored fact is that fact again.
DUPLICATE_SIMILARITY = 0.95
CATEGORIES = ("identity", "preference", "behavior", "relationship")
MAX_FACT_CHARS = 500

PATTERN_PROMPT = """Analyze these recent memories and identify stable patterns about this user.

Memories:
{memories}

For each pattern, provide:
1. category: identity | preference | behavior | relationship
2. fact: The pattern statement
3. confidence: 0.0 to 1.0
4. evidence: Which memories support this (their numbers)

Only report patterns with confidence >= 0.7.
Return as JSON array.

Example:
[
  {{"category": "identity", "fact": "works as software engineer", "confidence": 0.9, "evidence": [0, 5, 12]}},
  {{"category": "preference", "fact": "prefers direct communication", "confidence": 0.75, "evidence": [3, 8]}}
]"""

#: The answer's shape, for providers with structured output: the prompt's array,
#: inside an object (both wires want an object at the root).
PATTERNS_ANSWER = JsonAnswer(
    name="report_patterns",
    description="Stable patterns about the user, with confidence and evidence.",
    schema=strict_object(
        {
            "patterns": {
                "type": "array",
                "items": strict_object(
                    {
                        "category": {"type": "string", "enum": list(CATEGORIES)},
                        "fact": {"type": "string"},
                        "confidence": {"type": "number"},
                        "evidence": {"type": "array", "items": {"type": "integer"}},
                    }
                ),
            }
        }
    ),
)
_PATTERN_FIELDS = frozenset({"fact"})

# Identity facts land under a field named for what they say.  A small fixed
# table, not a model call: the same fact must always land under the same key,
# or identity fields would multiply.  Order matters: first match wins.
_SINGLE_KEYS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("name", re.compile(r"\b(name is|is called|goes by|is named)\b", re.I)),
    ("pronouns", re.compile(r"\bpronouns?\b", re.I)),
    ("age", re.compile(r"\b(\d{1,3} years? old|aged? \d{1,3}|born in \d{4})\b", re.I)),
    (
        "occupation",
        re.compile(
            r"\b(works? (as|at|for|in)|employed|job|occupation|profession|career"
            r"|is an? [\w\s-]*(engineer|developer|teacher|nurse|doctor|designer|manager"
            r"|writer|artist|scientist|student|lawyer|chef|programmer))\b",
            re.I,
        ),
    ),
    ("location", re.compile(r"\b(lives? in|living in|based in|moved to|resides in)\b", re.I)),
    ("hometown", re.compile(r"\b(is from|comes from|grew up in|born in)\b", re.I)),
    ("education", re.compile(r"\b(stud(y|ies|ying)|university|college|degree)\b", re.I)),
)
# Facts that accumulate rather than replace: a second child does not undo a spouse.
_LIST_KEYS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "family",
        re.compile(
            r"\b(children|child|kids?|sons?|daughters?|married|wife|husband|spouse|partner"
            r"|sister|brother|sibling|mother|father|mom|dad|parents?)\b",
            re.I,
        ),
    ),
)
FALLBACK_KEY = "facts"


def identity_key(fact: str) -> tuple[str, bool]:
    """``(field, is_list)`` under which an identity fact is kept in the hot identity."""
    for key, pattern in _SINGLE_KEYS:
        if pattern.search(fact):
            return key, False
    for key, pattern in _LIST_KEYS:
        if pattern.search(fact):
            return key, True
    return FALLBACK_KEY, True


@dataclass
class PatternResult:
    memories_read: int = 0
    #: Valid patterns the model reported (any confidence).
    found: int = 0
    #: Patterns at or above the confidence threshold.
    applied: int = 0
    #: New semantic memories (applied minus duplicates of stored facts).
    stored: int = 0
    identities_updated: int = 0
    #: False when the model's answer could not be read.
    parsed: bool = True


@dataclass
class PatternExtractor:
    warm: WarmStore
    hot: HotStore
    model: TextModel
    embedder: Embedder
    settings: Settings
    _: KW_ONLY
    clock: Callable[[], datetime]

    async def run(self, user_id: str) -> PatternResult:
        """Extract and apply; model errors propagate (the runner records them)."""
        result = PatternResult()
        memories = await self.recent_episodes(user_id)
        result.memories_read = len(memories)
        if len(memories) < self.settings.cortex_pattern_min_memories:
            return result  # not enough to see a pattern: no model call at all
        patterns = await self.extract(memories)
        if patterns is None:
            result.parsed = False
            return result
        result.found = len(patterns)
        await self.apply(user_id, patterns, result)
        return result

    async def recent_episodes(self, user_id: str) -> list[Memory]:
        since = self.clock() - timedelta(days=self.settings.cortex_pattern_lookback_days)
        newest = await self.warm.get_memories(
            user_id,
            memory_types=[MemoryType.EPISODIC],
            since=since,
            limit=min(PROMPT_MEMORIES, self.settings.cortex_max_memories_per_run),
        )
        return list(reversed(newest))  # chronological reads more naturally

    @staticmethod
    def build_prompt(memories: list[Memory]) -> str:
        lines = [
            f"{i}. [{m.created_at:%Y-%m-%d}] {m.content[:PROMPT_CONTENT_CHARS]}"
            for i, m in enumerate(memories)
        ]
        return PATTERN_PROMPT.format(memories="\n".join(lines))

    async def extract(self, memories: list[Memory]) -> list[Pattern] | None:
        """The model's patterns; ``None`` when its answer was unreadable."""
        text = await self.model.complete_text(
            self.build_prompt(memories), max_tokens=1000, json_answer=PATTERNS_ANSWER
        )
        patterns = parse_patterns(text, memories)
        if patterns is None:
            log.warning("pattern extraction: unreadable model answer: %.200r", text)
        return patterns

    async def apply(self, user_id: str, patterns: list[Pattern], result: PatternResult) -> None:
        threshold = self.settings.cortex_pattern_confidence
        confident = [p for p in patterns if p.confidence >= threshold]
        result.applied = len(confident)
        if not confident:
            return
        vectors = await self.embedder.embed_batch([p.fact for p in confident])
        to_store: list[tuple[Memory, list[float]]] = []
        kept: list[np.ndarray] = []
        identity_facts: list[str] = []
        for pattern, vector in zip(confident, vectors, strict=True):
            if pattern.category == "identity":
                # Even a known fact is written to the hot identity: Redis may have
                # lost it, and rewriting an equal value changes nothing.
                identity_facts.append(pattern.fact)
            if await self._known(user_id, vector, kept):
                log.debug("pattern already known for %s: %r", user_id, pattern.fact)
                continue
            kept.append(np.asarray(vector, dtype=np.float32))
            to_store.append(
                (
                    Memory(
                        content=pattern.fact,
                        user_id=user_id,
                        memory_type=MemoryType.SEMANTIC,
                        created_at=self.clock(),
                        confidence=pattern.confidence,
                        importance=max(0.5, pattern.confidence),
                        source="consolidation",
                        metadata={
                            "pattern_category": pattern.category,
                            "evidence": pattern.evidence,
                        },
                    ),
                    vector,
                )
            )
        if to_store:
            result.stored = await self.warm.add_many(to_store, model=self.embedder.model_id)
        if identity_facts:
            result.identities_updated = await self._update_identity(user_id, identity_facts)

    async def _known(self, user_id: str, vector: list[float], kept: list[np.ndarray]) -> bool:
        v = np.asarray(vector, dtype=np.float32)
        # Duplicates within this batch, then against what is stored.
        if any(float(v @ k) >= DUPLICATE_SIMILARITY for k in kept):
            return True
        nearest = await self.warm.search(
            user_id, vector, limit=1, memory_types=[MemoryType.SEMANTIC, MemoryType.IDENTITY]
        )
        return bool(nearest) and (nearest[0].similarity or 0.0) >= DUPLICATE_SIMILARITY

    async def _update_identity(self, user_id: str, facts: list[str]) -> int:
        """Write identity facts under their inferred keys; returns fields changed."""
        current = await self.hot.get_identity(user_id)
        changes: dict[str, Any] = {}
        for fact in facts:
            key, is_list = identity_key(fact)
            value = changes.get(key, current.get(key))
            if not is_list:
                if value != fact:
                    changes[key] = fact
                continue
            if value is None:
                value = []
            elif isinstance(value, str):
                value = [value]
            elif not isinstance(value, list):
                # Another writer keeps a structured value here: don't clobber it.
                key, value = FALLBACK_KEY, changes.get(FALLBACK_KEY, current.get(FALLBACK_KEY))
                value = list(value) if isinstance(value, list) else []
            if fact.casefold() not in {str(v).casefold() for v in value}:
                changes[key] = [*value, fact]
        if changes:
            await self.hot.update_identity(user_id, changes)
        return len(changes)


def parse_patterns(text: str, memories: list[Memory]) -> list[Pattern] | None:
    """Patterns from the model's answer, invalid items dropped; ``None`` if unreadable."""
    items = json_array(text, field="patterns", item_fields=_PATTERN_FIELDS)
    if items is None:
        return None
    patterns: list[Pattern] = []
    for item in items:
        fact = item.get("fact")
        if not isinstance(fact, str) or not fact.strip():
            continue
        confidence = as_number(item.get("confidence", 0.0))
        if confidence is None:
            continue
        # Only "identity" changes behaviour; other labels are kept as metadata.
        category = str(item.get("category") or "").strip().lower()[:32] or "unknown"
        raw_evidence = item.get("evidence") or []
        if not isinstance(raw_evidence, list):
            raw_evidence = [raw_evidence]
        indices = [as_index(e, len(memories)) for e in raw_evidence]
        evidence = list(dict.fromkeys(memories[i].id for i in indices if i is not None))
        patterns.append(
            Pattern(
                category=category,
                fact=" ".join(fact.split())[:MAX_FACT_CHARS],
                confidence=min(1.0, max(0.0, confidence)),
                evidence=evidence,
            )
        )
    return patterns
