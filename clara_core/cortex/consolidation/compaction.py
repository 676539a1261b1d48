"""Compaction: old episodes become weekly summaries (spec 8.5).

Nothing is deleted.  A week's summary is stored first and only then are the
week's episodes archived, so a crash in between leaves a summary beside still
active episodes (redundant for a while) rather than archived episodes with no
summary.  The summary's id is derived from the episodes it covers, so the next
run repeats the archive step without storing a second copy.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ..retrieval import TURN_SOURCE
from ..types import Memory, MemoryStatus, MemoryType

if TYPE_CHECKING:
    from collections.abc import Callable

    from clara_core.config import Settings

    from ..ports import Embedder, TextModel
    from ..warm import WarmStore

log = logging.getLogger(__name__)

#: A week with fewer episodes is left alone: a summary would save nothing.
WEEK_MIN_MEMORIES = 5
#: Episodes summarised per week and call; any beyond stay active for the next run.
WEEK_MAX_MEMORIES = 60
PROMPT_CONTENT_CHARS = 300
_SUMMARY_NS = uuid.UUID("0b6c7a52-3f0e-4a1d-8d8e-5d0f3f7c2a91")

WEEK_PROMPT = """Summarize this week's memories into a concise paragraph.
Preserve important facts, emotions, and events. Omit mundane details.

Week of {week:%B %d, %Y}:
{memories}

Summary (2-3 sentences):"""


def week_start(when: datetime) -> datetime:
    """Monday 00:00 UTC of ``when``'s ISO week."""
    day = when.astimezone(UTC)
    monday = day - timedelta(days=day.weekday())
    return monday.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class CompactionResult:
    memories_read: int = 0
    weeks_compacted: int = 0
    memories_compacted: int = 0
    summaries: list[str] = field(default_factory=list)
    #: ``"week YYYY-MM-DD: error"`` per week that was skipped because of a failure.
    failures: list[str] = field(default_factory=list)


@dataclass
class CompactionJob:
    warm: WarmStore
    model: TextModel
    embedder: Embedder
    settings: Settings
    _: KW_ONLY
    clock: Callable[[], datetime]

    async def run(self, user_id: str) -> CompactionResult:
        result = CompactionResult()
        cutoff = self.clock() - timedelta(days=self.settings.cortex_compact_after_days)
        limit = self.settings.cortex_max_memories_per_run
        old = await self.warm.get_memories(
            user_id,
            memory_types=[MemoryType.EPISODIC],
            before=cutoff,
            status=MemoryStatus.ACTIVE,
            limit=limit,
            newest_first=False,  # oldest weeks first
        )
        result.memories_read = len(old)
        full = len(old) == limit
        # The episodic layer's turns (the user's own words, CORTEX_EPISODES) stay as
        # they are: what was said months ago is what they are kept for, and a weekly
        # summary would cost the prompt several times their length (docs/benchmarks.md,
        # "Facts and turns").  Compaction summarises the episodes extraction made.
        old = [m for m in old if m.source != TURN_SOURCE]
        if len(old) < self.settings.cortex_compact_min_memories:
            return result
        weeks: dict[datetime, list[Memory]] = defaultdict(list)
        for memory in old:
            weeks[week_start(memory.created_at)].append(memory)
        if full and len(weeks) > 1:
            # The read stopped inside the newest week: compact it next run, whole.
            weeks.pop(max(weeks))
        for start in sorted(weeks):
            memories = weeks[start][:WEEK_MAX_MEMORIES]
            if len(memories) < WEEK_MIN_MEMORIES:
                continue
            try:
                summary_id = await self._compact_week(user_id, start, memories)
            except Exception as exc:  # this week stays active; the others go on
                log.warning("compaction of %s week %s failed: %r", user_id, start.date(), exc)
                result.failures.append(f"week {start:%Y-%m-%d}: {type(exc).__name__}: {exc}")
                continue
            result.weeks_compacted += 1
            result.memories_compacted += len(memories)
            result.summaries.append(summary_id)
        return result

    async def _compact_week(self, user_id: str, start: datetime, memories: list[Memory]) -> str:
        lines = "\n".join(f"- {m.content[:PROMPT_CONTENT_CHARS]}" for m in memories)
        text = await self.model.complete_text(
            WEEK_PROMPT.format(week=start, memories=lines), max_tokens=200
        )
        summary = text.strip()
        if not summary:
            raise ValueError("the model returned an empty summary")
        ids = sorted(m.id for m in memories)
        summary_id = str(uuid.uuid5(_SUMMARY_NS, f"{user_id}|{'|'.join(ids)}"))
        memory = Memory(
            content=summary,
            user_id=user_id,
            memory_type=MemoryType.SEMANTIC,
            id=summary_id,
            # Dated like the week it tells of, so recency ranking treats it as old news.
            created_at=max(m.created_at for m in memories),
            # The week's strongest moment decides how strongly it is remembered.
            emotional_score=max(m.emotional_score for m in memories),
            importance=max(m.importance for m in memories),
            source="compaction",
            metadata={
                "week_start": start.date().isoformat(),
                "memories_compacted": len(memories),
                "compacted_ids": ids,
            },
        )
        vector = await self.embedder.embed(summary)
        await self.warm.add(memory, vector, model=self.embedder.model_id)
        await self.warm.update_status(user_id, ids, MemoryStatus.ARCHIVED)
        log.info("compacted %d episodes of %s, week %s", len(ids), user_id, start.date())
        return summary_id
