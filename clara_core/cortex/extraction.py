"""After a turn: pick out what is worth remembering, and apply corrections.

Not every message is stored verbatim.  A cheap model reads the exchange (and
the identity facts already known) and returns the notable facts; identity
facts update the identity, and a correction ("no, my sister is called Ana")
supersedes the memory it corrects instead of standing beside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .llm_json import json_array
from .ports import TextModel
from .rejection import quick_reject
from .types import MemoryType

if TYPE_CHECKING:
    from .manager import MemoryManager

log = logging.getLogger(__name__)

SYSTEM = "You maintain an AI companion's long-term memory about one user. Answer with JSON only."
PROMPT = """Known facts about the user:
{known}

The exchange:
User ({speaker}): {user_text}
Clara: {reply}

List the facts from the USER's message worth remembering for weeks: who they are, people
and pets in their life, preferences, plans, important events, and corrections of earlier
facts. Skip small talk, questions, and anything Clara said. Write each fact in the third
person about the user ("Their sister is called Ana"), self-contained.

Return {{"facts": [...]}} where each fact is
{{"content": str, "type": "identity" | "semantic" | "episodic",
  "key": short identity key like "name", "sister", "occupation", "location" (identity only, else null),
  "value": the identity value (identity only, else null),
  "corrects": the earlier fact this replaces, word for word if known (else null),
  "emotion": emotional intensity 0.0-1.0}}
Return {{"facts": []}} when there is nothing worth remembering."""

#: A correction replaces the closest earlier fact only if it is about the same thing.
CORRECTION_MATCH = 0.6
#: A fact this close to an active memory is already known.
DUPLICATE_MATCH = 0.93
_TYPES = {
    "identity": MemoryType.IDENTITY,
    "semantic": MemoryType.SEMANTIC,
    "episodic": MemoryType.EPISODIC,
}


@dataclass
class ExtractedFact:
    content: str
    memory_type: MemoryType
    key: str | None = None
    value: Any = None
    corrects: str | None = None
    emotion: float | None = None


def parse_facts(answer: str) -> list[ExtractedFact]:
    items = json_array(answer) or []
    facts = []
    for item in items:
        content = item.get("content")
        if not isinstance(content, str) or not content.strip():
            continue
        kind = _TYPES.get(str(item.get("type", "semantic")).lower(), MemoryType.SEMANTIC)
        key = item.get("key") if isinstance(item.get("key"), str) and item.get("key") else None
        if kind is MemoryType.IDENTITY and key is None:
            kind = MemoryType.SEMANTIC  # an identity fact without a key can't be looked up
        emotion = item.get("emotion")
        facts.append(
            ExtractedFact(
                content=content.strip()[:1000],
                memory_type=kind,
                key=key.strip().lower().replace(" ", "_")[:40] if key else None,
                value=item.get("value") if kind is MemoryType.IDENTITY else None,
                corrects=item.get("corrects") if isinstance(item.get("corrects"), str) else None,
                emotion=float(emotion) if isinstance(emotion, (int, float)) else None,
            )
        )
    return facts


class MemoryExtractor:
    def __init__(self, manager: MemoryManager, model: TextModel) -> None:
        self.manager = manager
        self.model = model

    async def remember_turn(
        self,
        user_id: str,
        user_text: str,
        reply: str,
        *,
        speaker: str | None = None,
        project_id: str | None = None,
        still_wanted: Callable[[], bool] = lambda: True,
    ) -> list[str]:
        """Extract and store; returns the ids stored.  Failures are logged, never raised:
        memory upkeep must not break a conversation that already got its answer."""
        if quick_reject(user_text):
            return []
        known = await self.manager.get_identity(user_id)
        prompt = PROMPT.format(
            known="\n".join(f"- {k}: {v}" for k, v in known.items()) or "(none yet)",
            speaker=speaker or "user",
            user_text=user_text[:4000],
            reply=reply[:2000],
        )
        try:
            answer = await self.model.complete_text(prompt, max_tokens=600, system=SYSTEM)
        except Exception as exc:
            log.warning("memory extraction failed for this turn: %s", exc)
            return []
        if not still_wanted():  # e.g. the user was forgotten while the model read the turn
            return []
        return await self.apply(user_id, parse_facts(answer), project_id=project_id)

    async def apply(
        self, user_id: str, facts: list[ExtractedFact], *, project_id: str | None = None
    ) -> list[str]:
        stored: list[str] = []
        for fact in facts:
            if fact.memory_type is MemoryType.IDENTITY:
                # The identity key supersedes its own previous value; a correction may
                # also hit a plain fact stored earlier ("Their sister is called Rita").
                old = await self._corrected(user_id, fact) if fact.corrects else None
                result = await self.manager.update_identity(
                    user_id, fact.key or "fact", fact.value or fact.content
                )
                if old is not None and old != result.memory_id:
                    await self.manager.writer.submit(
                        {"op": "status", "user_id": user_id, "ids": [old], "status": "superseded"}
                    )
                if result.memory_id:
                    stored.append(result.memory_id)
                continue
            vec = await self.manager.embedder.embed(fact.content)
            nearest = (
                await self.manager.warm.search(user_id, vec, limit=1)
                if self.manager.pg_health.up
                else []
            )
            if nearest and (nearest[0].similarity or 0) >= DUPLICATE_MATCH:
                continue
            supersedes = await self._corrected(user_id, fact) if fact.corrects else None
            result = await self.manager.store(
                user_id,
                fact.content,
                fact.memory_type,
                project_id=project_id,
                emotional_score=fact.emotion,
                embedding=vec,
                supersedes=supersedes,
                source="extraction",
            )
            if result.memory_id:
                stored.append(result.memory_id)
        return stored

    async def _corrected(self, user_id: str, fact: ExtractedFact) -> str | None:
        if not self.manager.pg_health.up:
            return None
        vec = await self.manager.embedder.embed(fact.corrects or fact.content)
        found = await self.manager.warm.search(
            user_id,
            vec,
            limit=1,
            memory_types=[MemoryType.SEMANTIC, MemoryType.EPISODIC, MemoryType.IDENTITY],
        )
        if found and (found[0].similarity or 0) >= CORRECTION_MATCH:
            return found[0].id
        return None
