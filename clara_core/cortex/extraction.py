"""After a turn: pick out what is worth remembering, and apply corrections.

Not every message is stored verbatim.  A cheap model reads the exchange (and
the identity facts already known) and returns the notable facts; identity
facts update the identity, and a correction ("no, my sister is called Ana")
supersedes the memory it corrects instead of standing beside it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .llm_json import as_number, json_items, strict_object
from .ports import JsonAnswer, TextModel
from .rejection import is_short_answer, quick_reject
from .retrieval import EPISODE_KEY, TURN_SOURCE
from .types import Memory, MemoryType

if TYPE_CHECKING:
    from .manager import MemoryManager

log = logging.getLogger(__name__)

SYSTEM = "You maintain an AI companion's long-term memory about one user. Answer with JSON only."
PROMPT = """Known facts about the user:
{known}

The exchange:
{question}User ({speaker}): {user_text}
Clara: {reply}

List the facts from the USER's message worth remembering for weeks: who they are, people
and pets in their life, preferences, plans, important events, and corrections of earlier
facts. Skip small talk, questions, and anything Clara said. Write each fact in the third
person about the user ("Their sister is called Ana"), self-contained. When the user's
message answers Clara's question, the fact is what the answer says about the user
("Are you vegetarian?" "no": "They are not vegetarian").

Return {{"facts": [...]}} where each fact is
{{"content": str, "type": "identity" | "semantic" | "episodic",
  "key": short identity key like "name", "sister", "occupation", "location" (identity only, else null),
  "value": the identity value (identity only, else null),
  "corrects": the earlier fact this replaces, word for word if known (else null),
  "emotion": emotional intensity 0.0-1.0}}
Return {{"facts": []}} when there is nothing worth remembering."""

_NULLABLE_STRING = {"type": ["string", "null"]}
#: The answer's shape, for providers with structured output (the prompt says the same).
FACTS_ANSWER = JsonAnswer(
    name="remember_facts",
    description="The facts from the user's message worth remembering (may be empty).",
    schema=strict_object(
        {
            "facts": {
                "type": "array",
                "items": strict_object(
                    {
                        "content": {"type": "string"},
                        "type": {"type": "string", "enum": ["identity", "semantic", "episodic"]},
                        "key": _NULLABLE_STRING,
                        "value": _NULLABLE_STRING,
                        "corrects": _NULLABLE_STRING,
                        "emotion": {"type": ["number", "null"]},
                    }
                ),
            }
        }
    ),
)
#: Keys that mark an object as one fact given without its list around it.
_FACT_FIELDS = frozenset({"content", "fact"})

#: A correction replaces the closest earlier fact only if it is about the same thing.
CORRECTION_MATCH = 0.6
#: A fact this close to an active memory is already known.
DUPLICATE_MATCH = 0.93
_TYPES = {
    "identity": MemoryType.IDENTITY,
    "semantic": MemoryType.SEMANTIC,
    "episodic": MemoryType.EPISODIC,
}


#: Longest turn kept as an episode: a pasted page is the facts' job, not the prompt's.
TURN_CHARS = 1000
#: Nearest memories looked at for a duplicate or a correction: turns among them are
#: skipped (a fact is always near the turn it came from; a turn is what was said,
#: never corrected).
NEAREST = 4


def _not_turns(found: list[Memory]) -> list[Memory]:
    return [m for m in found if m.source != TURN_SOURCE][:1]


@dataclass
class ExtractedFact:
    content: str
    memory_type: MemoryType
    key: str | None = None
    value: Any = None
    corrects: str | None = None
    emotion: float | None = None


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _fact(item: Any) -> ExtractedFact | None:
    """One fact from one item: an object as the prompt asks, or a plain string."""
    if isinstance(item, str):
        content = _text(item)
        return ExtractedFact(content[:1000], MemoryType.SEMANTIC) if content else None
    if not isinstance(item, dict):
        return None
    content = _text(item.get("content")) or _text(item.get("fact"))
    if content is None:
        return None
    kind = _TYPES.get(str(item.get("type") or "semantic").strip().lower(), MemoryType.SEMANTIC)
    key = _text(item.get("key"))
    if kind is MemoryType.IDENTITY and key is None:
        kind = MemoryType.SEMANTIC  # an identity fact without a key can't be looked up
    emotion = as_number(item.get("emotion"))
    return ExtractedFact(
        content=content[:1000],
        memory_type=kind,
        key=key.lower().replace(" ", "_")[:40] if key else None,
        value=item.get("value") if kind is MemoryType.IDENTITY else None,
        corrects=_text(item.get("corrects")),
        emotion=min(1.0, max(0.0, emotion)) if emotion is not None else None,
    )


def parse_facts(answer: str) -> list[ExtractedFact]:
    """The facts in the model's answer, in the shape asked for or a common deviation
    (plain strings, one object without its list, the list bare, fenced, in prose)."""
    items = json_items(answer, field="facts", item_fields=_FACT_FIELDS) or []
    return [fact for fact in map(_fact, items) if fact is not None]


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
        asked: str | None = None,
    ) -> list[str]:
        """Extract and store; returns the ids stored.  Failures are logged, never raised:
        memory upkeep must not break a conversation that already got its answer.
        ``asked``: Clara's question this message may answer (a bare "no" is then read)."""
        if quick_reject(user_text) and not (asked and is_short_answer(user_text)):
            return []
        episodes = self.manager.retrieval.episodes
        known = await self.manager.get_identity(user_id)
        try:
            facts = await self.extract(known, user_text, reply, speaker=speaker, asked=asked)
        except Exception as exc:
            log.warning("memory extraction failed for this turn: %s", exc)
            if not episodes:
                return []
            facts = []  # the user's words are still worth keeping as an episode
        if not still_wanted():  # e.g. the user was forgotten while the model read the turn
            return []
        episode = str(uuid.uuid4()) if episodes else None
        stored = await self.apply(user_id, facts, project_id=project_id, episode=episode)
        if episode is not None and still_wanted():
            # After the facts: their duplicate check must not find this very turn.
            turn = await self._store_turn(user_id, user_text, facts, speaker, project_id, episode)
            stored += turn
        return stored

    async def _store_turn(
        self,
        user_id: str,
        user_text: str,
        facts: list[ExtractedFact],
        speaker: str | None,
        project_id: str | None,
        episode: str,
    ) -> list[str]:
        """The episodic layer (CORTEX_EPISODES): the user's own words, searchable beside
        the facts.  A fact written in the third person loses what the extractor did
        not keep (bench/retrieval_layers.py: facts alone recall@10 0.84, multi-hop
        0.65; with the turns 0.89 and 0.87); the turn keeps it.  Warm tier only: the
        conversation itself is already in the prompt, so working memory ("Recent
        context") does not repeat it."""
        from .manager import NewMemory  # manager imports nothing of this module's

        emotions = [f.emotion for f in facts if f.emotion is not None]
        metadata: dict[str, Any] = {EPISODE_KEY: episode}
        if speaker:
            metadata["speaker"] = speaker
        item = NewMemory(
            content=user_text.strip()[:TURN_CHARS],
            memory_type=MemoryType.EPISODIC,
            # No extra LLM call per turn for the emotion: the facts' estimate, if any.
            emotional_score=max(emotions) if emotions else 0.5,
            metadata=metadata,
            project_id=project_id,
            source=TURN_SOURCE,
        )
        try:
            results = await self.manager.store_many(user_id, [item], to_hot=False)
        except Exception as exc:
            log.warning("could not store this turn as an episode: %s", exc)
            return []
        return [r.memory_id for r in results if r.memory_id]

    async def extract(
        self,
        known: dict[str, Any],
        user_text: str,
        reply: str,
        *,
        speaker: str | None = None,
        asked: str | None = None,
    ) -> list[ExtractedFact]:
        """Ask the model for the turn's facts (errors propagate)."""
        prompt = PROMPT.format(
            known="\n".join(f"- {k}: {v}" for k, v in known.items()) or "(none yet)",
            question=f"Clara (before): {asked[-500:]}\n" if asked else "",
            speaker=speaker or "user",
            user_text=user_text[:4000],
            reply=reply[:2000],
        )
        answer = await self.model.complete_text(
            prompt, max_tokens=600, system=SYSTEM, json_answer=FACTS_ANSWER
        )
        facts = parse_facts(answer)
        if not facts and json_items(answer, field="facts", item_fields=_FACT_FIELDS) is None:
            log.warning("memory extraction: unreadable model answer: %.200r", answer)
        return facts

    async def apply(
        self,
        user_id: str,
        facts: list[ExtractedFact],
        *,
        project_id: str | None = None,
        episode: str | None = None,
    ) -> list[str]:
        """Store the facts; ``episode`` links each to the turn it came from (retrieval
        then shows one of them, retrieval.one_per_episode)."""
        stored: list[str] = []
        for fact in facts:
            if fact.corrects and self.manager.retrieval.episodes:
                # The turn that said the corrected thing ("my sister is Rita") would
                # bring it back into the prompt as an episode: it is superseded too.
                await self._supersede_turn(user_id, fact.corrects)
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
                _not_turns(await self.manager.warm.search(user_id, vec, limit=NEAREST))
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
                metadata={EPISODE_KEY: episode} if episode else None,
            )
            if result.memory_id:
                stored.append(result.memory_id)
        return stored

    async def _supersede_turn(self, user_id: str, corrected: str) -> None:
        if not self.manager.pg_health.up:
            return
        vec = await self.manager.embedder.embed(corrected)
        found = await self.manager.warm.search(
            user_id, vec, limit=NEAREST, memory_types=[MemoryType.EPISODIC]
        )
        turns = [m for m in found if m.source == TURN_SOURCE]
        if turns and (turns[0].similarity or 0) >= CORRECTION_MATCH:
            await self.manager.writer.submit(
                {"op": "status", "user_id": user_id, "ids": [turns[0].id], "status": "superseded"}
            )

    async def _corrected(self, user_id: str, fact: ExtractedFact) -> str | None:
        if not self.manager.pg_health.up:
            return None
        vec = await self.manager.embedder.embed(fact.corrects or fact.content)
        found = _not_turns(
            await self.manager.warm.search(
                user_id,
                vec,
                limit=NEAREST,
                memory_types=[MemoryType.SEMANTIC, MemoryType.EPISODIC, MemoryType.IDENTITY],
            )
        )
        if found and (found[0].similarity or 0) >= CORRECTION_MATCH:
            return found[0].id
        return None
