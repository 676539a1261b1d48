"""Contradiction detection: cluster facts by meaning, ask the model within clusters (spec 8.4).

Only facts that talk about the same thing can contradict each other, so the
model never sees the whole memory at once: embeddings group the facts first
(average-linkage agglomerative clustering on cosine similarity, the spec's
``AgglomerativeClustering(linkage="average")`` in a few lines of numpy), and
one small prompt per cluster asks which pairs conflict.  Flags go to the
ledger; resolving them is the user's (or an admin's) call, not the model's.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..llm_json import as_index, json_array, strict_object
from ..ports import JsonAnswer
from ..types import Memory, MemoryStatus, MemoryType

if TYPE_CHECKING:
    from clara_core.config import Settings

    from ..ports import TextModel
    from ..warm import WarmStore
    from .ledger import ConsolidationLedger

log = logging.getLogger(__name__)

#: Statements per prompt: pairs grow quadratically, a cheap model loses track.
MAX_CLUSTER = 12
PROMPT_CONTENT_CHARS = 300

CONTRADICTION_PROMPT = """Do any of these statements contradict each other?

Statements:
{statements}

If contradictions exist, return JSON array:
[{{"a": <index>, "b": <index>, "reason": "explanation"}}]

If no contradictions, return: []"""


#: The answer's shape, for providers with structured output: the prompt's array,
#: inside an object (both wires want an object at the root).
CONTRADICTIONS_ANSWER = JsonAnswer(
    name="report_contradictions",
    description="Pairs of statements (by index) that contradict each other; empty if none.",
    schema=strict_object(
        {
            "contradictions": {
                "type": "array",
                "items": strict_object(
                    {
                        "a": {"type": "integer"},
                        "b": {"type": "integer"},
                        "reason": {"type": "string"},
                    }
                ),
            }
        }
    ),
)
_PAIR_FIELDS = frozenset({"a", "b"})


def cluster_by_similarity(vectors: Sequence[Sequence[float]], threshold: float) -> list[list[int]]:
    """Average-linkage clusters (lists of indices) whose members' mean pairwise
    cosine similarity is at least ``threshold``; singletons included.

    O(n³) in the worst case with vectorised steps: ~0.1 s at the 500-fact cap."""
    n = len(vectors)
    if n == 0:
        return []
    x = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.clip(norms, 1e-12, None)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    sizes = np.ones(n)
    members: list[list[int]] = [[i] for i in range(n)]
    while True:
        flat = int(np.argmax(sim))
        i, j = divmod(flat, n)
        if not sim[i, j] >= threshold:
            break
        # Lance–Williams update for average linkage: the merged cluster's
        # similarity to k is the size-weighted mean of its parts' similarities.
        merged = (sizes[i] * sim[i] + sizes[j] * sim[j]) / (sizes[i] + sizes[j])
        sim[i, :] = merged
        sim[:, i] = merged
        sim[i, i] = -np.inf
        sim[j, :] = -np.inf
        sim[:, j] = -np.inf
        sizes[i] += sizes[j]
        members[i] += members[j]
        members[j] = []
    return [sorted(m) for m in members if m]


def _chunks(cluster: list[int], vectors: np.ndarray) -> list[list[int]]:
    """Split an oversized cluster into prompt-sized groups of close neighbours:
    ordered by similarity to the cluster's centroid, so near-duplicates stay together."""
    if len(cluster) <= MAX_CLUSTER:
        return [cluster]
    sub = vectors[cluster]
    centroid = sub.mean(axis=0)
    order = [cluster[k] for k in np.argsort(-(sub @ centroid))]
    return [order[k : k + MAX_CLUSTER] for k in range(0, len(order), MAX_CLUSTER)]


@dataclass
class DetectionResult:
    facts_read: int = 0
    clusters_checked: int = 0
    clusters_skipped: int = 0
    #: Pairs flagged for the first time.
    flagged: int = 0
    #: ``"cluster of N: error"`` per failed model call or unreadable answer.
    failures: list[str] = field(default_factory=list)


class ContradictionDetector:
    def __init__(
        self,
        warm: WarmStore,
        ledger: ConsolidationLedger,
        model: TextModel,
        settings: Settings,
    ) -> None:
        self.warm = warm
        self.ledger = ledger
        self.model = model
        self.settings = settings

    async def run(self, user_id: str) -> DetectionResult:
        result = DetectionResult()
        facts = await self.warm.get_memories(
            user_id,
            memory_types=[MemoryType.IDENTITY, MemoryType.SEMANTIC],
            status=MemoryStatus.ACTIVE,
            limit=self.settings.cortex_max_memories_per_run,
        )
        result.facts_read = len(facts)
        if len(facts) < 2:
            return result
        embeddings = await self.warm.get_embeddings(user_id, [m.id for m in facts])
        facts = [m for m in facts if m.id in embeddings]  # unembedded facts can't be clustered
        if len(facts) < 2:
            return result
        vectors = np.asarray([embeddings[m.id] for m in facts], dtype=np.float64)
        vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        clusters = cluster_by_similarity(vectors, self.settings.cortex_contradiction_similarity)
        known = await self.ledger.known_pairs(user_id)
        for cluster in clusters:
            for chunk in _chunks(cluster, vectors):
                if len(chunk) < 2:
                    continue
                group = [facts[k] for k in chunk]
                pairs = {frozenset((a.id, b.id)) for a, b in itertools.combinations(group, 2)}
                if pairs <= known:
                    result.clusters_skipped += 1  # every pair was judged before
                    continue
                result.clusters_checked += 1
                try:
                    found = await self.check_cluster(group)
                except Exception as exc:  # one cluster's failure must not stop the others
                    log.warning("contradiction check failed for %s: %r", user_id, exc)
                    result.failures.append(f"cluster of {len(group)}: {type(exc).__name__}: {exc}")
                    continue
                if found is None:
                    result.failures.append(f"cluster of {len(group)}: unreadable answer")
                    continue
                for a, b, reason in found:
                    pair = frozenset((a.id, b.id))
                    if pair in known:
                        continue
                    _, new = await self.ledger.flag_contradiction(user_id, a.id, b.id, reason)
                    known.add(pair)
                    result.flagged += int(new)
        return result

    async def check_cluster(self, group: list[Memory]) -> list[tuple[Memory, Memory, str]] | None:
        """Conflicting pairs the model names; ``None`` when its answer was unreadable."""
        statements = "\n".join(
            f"{i}. {m.content[:PROMPT_CONTENT_CHARS]}" for i, m in enumerate(group)
        )
        text = await self.model.complete_text(
            CONTRADICTION_PROMPT.format(statements=statements),
            max_tokens=500,
            json_answer=CONTRADICTIONS_ANSWER,
        )
        items = json_array(text, field="contradictions", item_fields=_PAIR_FIELDS)
        if items is None:
            log.warning("contradiction check: unreadable model answer: %.200r", text)
            return None
        found: list[tuple[Memory, Memory, str]] = []
        for item in items:
            a = as_index(item.get("a"), len(group))
            b = as_index(item.get("b"), len(group))
            if a is None or b is None or a == b:
                continue  # an index the model made up
            found.append((group[a], group[b], str(item.get("reason") or "")[:1000]))
        return found
