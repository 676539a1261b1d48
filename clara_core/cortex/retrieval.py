"""Hybrid retrieval rules (pure, no I/O): fusion, low-information penalty, diversity.

Why each leg exists (measured on bench/datasets/long_conversations.json with
bench/retrieval_quality.py; figures in docs/benchmarks.md, issue 14):

- the vector leg alone ranks short generic turns ("What was it like?",
  "That's awesome!") next to every question, and has no pull for the names,
  places and titles a question repeats;
- a lexical leg (PostgreSQL full text, IDF-weighted) finds those names; the
  two rankings are fused with weighted reciprocal rank fusion, which needs no
  score calibration between a cosine and a text rank;
- a turn with almost no content words is multiplied down (it answers nothing
  on its own);
- a time expression in the question ("last May") boosts memories of that
  window (clara_core/cortex/retrieval_time.py);
- maximal marginal relevance over word overlap keeps ten near-identical turns
  ("Ran 5k this morning") from filling the top 10.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .ports import Embedder
from .types import Memory

_WORD = re.compile(r"[a-z0-9][a-z0-9']*")
# English function words and chat filler: they carry no answer.  Kept small and
# local: the lexical leg uses PostgreSQL's own stop list, this one only decides
# "is there anything in this turn" and what counts as overlap for diversity.
_STOP_TEXT = """a about above after again against all am an and any are as at be because been
before being below between both but by can could did do does doing done down during
each few for from further get got had has have having he her here hers herself him
himself his how i if in into is it its itself just like lol me more most my myself
no nor not now of off on once only or other our ours ourselves out over own really
same she should so some such than that that's the their theirs them themselves then
there these they this those through to too under until up very was we were what
when where which while who whom why will with would yeah yes you your yours
yourself yourselves it's i'm i've you're ok okay oh ooh haha hey hi wow thanks
thank wait tell much well also still ever even way thing things something anything
feel felt sounds sound go going went great good nice love awesome amazing lovely
glad always honestly anyway later night morning again today"""
STOP_WORDS = frozenset(_STOP_TEXT.split())


@dataclass(frozen=True)
class RetrievalConfig:
    """How search and get_context rank (CORTEX_* settings, clara_core/config/cortex.py).

    Defaults are the measured ones (docs/benchmarks.md, retrieval section)."""

    #: Lexical leg on (PostgreSQL full text over ``memories.content_tsv``).
    lexical: bool = True
    #: Weight of the lexical ranking against the vector ranking (1.0) in the fusion.
    lexical_weight: float = 1.0
    #: Reciprocal rank fusion constant: larger flattens the rank differences.
    rrf_k: int = 60
    #: Candidates each leg contributes per retrieved memory.
    candidate_factor: int = 3
    #: Ranking rows the lexical leg looks at, at most (bounds a huge user's latency).
    lexical_max_matches: int = 200
    #: Words in more than this share of all memories are left out of the lexical
    #: query (near-zero IDF, and the slow part of a lookup at 100k memories).
    lexical_common_share: float = 0.05
    #: A lexical hit must match at least this share of the question's IDF mass (0 = any
    #: shared word).  0.2 lifted the small dataset's MRR 0.806 -> 0.821 but cost the
    #: long one single-hop recall (1.000 -> 0.990, below BM25): off by default.
    lexical_min_coverage: float = 0.0
    #: Lexical hits with equal scores share one (mean) rank in the fusion (the order
    #: among them was arbitrary, newest first, yet counted as evidence): MRR 0.797 ->
    #: 0.806 on the small dataset, 0.739 -> 0.758 on the long one.  False: the bench.
    lexical_ties: bool = True
    #: A memory with fewer content words than this is "generic"...
    min_content_words: int = 3
    #: ...and its score is multiplied by this (1.0 = no penalty).
    generic_penalty: float = 0.5
    #: Score multiplier for memories inside a time window named in the query (1.0 = off).
    time_boost: float = 1.5
    #: Diversity: score minus this × the best word overlap with what is already picked (0 = off).
    mmr_lambda: float = 0.0
    #: Embed a memory with its speaker and the turns before it (metadata ``speaker``,
    #: ``context``) so a reply like "It was unreal" carries what it is about.
    contextual_embedding: bool = False
    #: Weight of the context's vector blended into the memory's own.
    context_weight: float = 0.5
    #: The episodic layer: the user's own words of each exchange are stored beside the
    #: facts extracted from them (clara_core/cortex/extraction.py), linked by an
    #: episode key so retrieval shows one of the two (bench/retrieval_layers.py).
    episodes: bool = True
    #: PostgreSQL text search configuration (language) of the lexical leg; the stored
    #: column must use the same one (clara_core/cortex/text_search.py).
    text_search_config: str = "english"

    @classmethod
    def from_settings(cls, settings: Any) -> RetrievalConfig:
        """From the CORTEX_* settings (clara_core/config/cortex.py)."""
        return cls(
            lexical=settings.cortex_lexical_search,
            lexical_weight=settings.cortex_lexical_weight,
            lexical_min_coverage=settings.cortex_lexical_min_coverage,
            generic_penalty=settings.cortex_generic_penalty,
            time_boost=settings.cortex_time_boost,
            mmr_lambda=settings.cortex_diversity,
            contextual_embedding=settings.cortex_contextual_embedding,
            context_weight=settings.cortex_context_weight,
            text_search_config=settings.cortex_text_search_config,
            episodes=settings.cortex_episodes,
        )

    def off(self) -> RetrievalConfig:
        """Everything beyond the vector leg switched off (the pre-issue-14 ranking)."""
        return RetrievalConfig(
            lexical=False,
            generic_penalty=1.0,
            time_boost=1.0,
            mmr_lambda=0.0,
            contextual_embedding=False,
            candidate_factor=self.candidate_factor,
            text_search_config=self.text_search_config,
        )


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS and len(w) > 1]


def is_generic(text: str, min_words: int) -> bool:
    """Too few content words to answer anything by itself ("That's awesome!")."""
    return len(content_words(text)) < min_words


#: Context kept in a contextual embedding: the turns just before matter most.
CONTEXT_CHARS = 240


def embedding_text(content: str, metadata: Mapping[str, Any], *, contextual: bool) -> str:
    """The memory's own text as embedded: with its speaker when contextual."""
    speaker = metadata.get("speaker") if contextual else None
    return f"{speaker}: {content}" if isinstance(speaker, str) and speaker else content


def context_text(metadata: Mapping[str, Any], *, contextual: bool) -> str | None:
    """The turns before the memory (metadata ``context``), when contextual and given."""
    context = metadata.get("context") if contextual else None
    if isinstance(context, str) and context.strip():
        return context.strip()[-CONTEXT_CHARS:]
    return None


def blend(own: Sequence[float], context: Sequence[float], weight: float) -> list[float]:
    """normalise(own + weight × context): the memory's meaning, pulled toward what it
    answers.  A vector, not a longer text, so ``weight`` keeps the memory's own words
    dominant (a long context embedded with the text drowned them)."""
    mixed = [a + weight * b for a, b in zip(own, context, strict=True)]
    norm = sum(x * x for x in mixed) ** 0.5 or 1.0
    return [x / norm for x in mixed]


async def embed_for_storage(
    embedder: Embedder,
    memories: Sequence[tuple[str, Mapping[str, Any]]],
    config: RetrievalConfig,
) -> list[list[float]]:
    """The stored vector of each (content, metadata): the bare content, or, with
    contextual embeddings on, "speaker: content" blended with its context's vector.

    One batch for all texts.  Ingest (MemoryManager) and ``cortex reembed`` both
    call this, so a re-embedded memory gets exactly the vector it got when stored.
    Embedder errors propagate (the callers decide: store without a vector, retry)."""
    on = config.contextual_embedding
    texts = [embedding_text(c, meta, contextual=on) for c, meta in memories]
    contexts = [context_text(meta, contextual=on) for _, meta in memories]
    extra = [c for c in contexts if c is not None]
    vectors = list(await embedder.embed_batch(texts + extra)) if texts else []
    own, context_vectors = vectors[: len(texts)], iter(vectors[len(texts) :])
    out: list[list[float]] = []
    for vec, ctx in zip(own, contexts, strict=True):
        if ctx is not None:
            vec = blend(vec, next(context_vectors), config.context_weight)
        out.append(list(vec))
    return out


def tied_ranks(ranked: Sequence[Memory]) -> list[float]:
    """Fractional ranks of a list sorted by ``score``: memories with equal scores share
    the mean of their positions (1, 2.5, 2.5, 2.5, 2.5, 6, ...), so a tie neither gains
    nor loses fusion weight in total.  For the lexical leg, where a question's one
    matching word gives every memory holding it the same score; ranked one after
    another (newest first) the order among them was arbitrary, yet the fusion read it
    as evidence (bench: the small dataset lost MRR to it, issue 14).  Measured against
    giving ties the best rank, which lifted them all and cost long-conversation recall
    (0.875 -> 0.868); the mean rank kept it (0.879)."""
    ranks: list[float] = []
    i = 0
    while i < len(ranked):
        j = i
        while (
            j + 1 < len(ranked)
            and ranked[i].score is not None
            and ranked[j + 1].score == ranked[i].score
        ):
            j += 1
        ranks += [(i + 1 + j + 1) / 2] * (j - i + 1)
        i = j + 1
    return ranks


Leg = tuple[Sequence[Memory], float] | tuple[Sequence[Memory], float, Sequence[float]]


def fuse(rankings: Sequence[Leg], *, k: int) -> list[tuple[Memory, float]]:
    """Weighted reciprocal rank fusion, normalised so 1.0 = first in every leg.

    ``rankings`` are (memories best first, weight[, their ranks when some share
    one]).  A memory in several legs keeps the first leg's object (it carries the
    vector similarity)."""
    score: dict[str, float] = {}
    first: dict[str, Memory] = {}
    for leg in rankings:
        ranked, weight = leg[0], leg[1]
        ranks = leg[2] if len(leg) > 2 else range(1, len(ranked) + 1)  # type: ignore[misc]
        for rank, m in zip(ranks, ranked, strict=True):
            score[m.id] = score.get(m.id, 0.0) + weight / (k + rank)
            first.setdefault(m.id, m)
    best = sum(leg[1] / (k + 1) for leg in rankings if leg[0]) or 1.0
    order = sorted(score, key=lambda i: -score[i])
    return [(first[i], score[i] / best) for i in order]


def adjust(
    scored: Sequence[tuple[Memory, float]],
    config: RetrievalConfig,
    window: tuple[datetime | None, datetime | None] | None,
) -> list[tuple[Memory, float]]:
    """Generic-turn penalty and time-window boost, then re-sorted."""
    out = []
    for m, s in scored:
        if config.generic_penalty != 1.0 and is_generic(m.content, config.min_content_words):
            s *= config.generic_penalty
        if window is not None and config.time_boost != 1.0 and in_window(m.created_at, window):
            s *= config.time_boost
        out.append((m, s))
    return sorted(out, key=lambda p: -p[1])


#: Metadata key shared by the memories made from one exchange: the user's own words
#: (the episodic layer, CORTEX_EPISODES) and the facts extracted from them.
EPISODE_KEY = "episode"
#: ``source`` of the episodic layer's memories (the user's own words of an exchange).
TURN_SOURCE = "turn"


def one_per_episode(scored: Sequence[tuple[Memory, float]]) -> list[tuple[Memory, float]]:
    """Keep the best-ranked memory of each exchange: a fact and the turn it was
    extracted from say the same thing, and both in the list took two of its slots
    (bench/retrieval_layers.py: facts + turns recall@10 0.856 unlinked, 0.890 one
    per episode).  Memories without the key are all kept."""
    seen: set[str] = set()
    out = []
    for m, s in scored:
        episode = m.metadata.get(EPISODE_KEY)
        if isinstance(episode, str):
            if episode in seen:
                continue
            seen.add(episode)
        out.append((m, s))
    return out


def in_window(when: datetime, window: tuple[datetime | None, datetime | None]) -> bool:
    start, end = window
    return (start is None or when >= start) and (end is None or when < end)


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def diversify(
    scored: Sequence[tuple[Memory, float]], limit: int, mmr_lambda: float
) -> list[tuple[Memory, float]]:
    """Maximal marginal relevance with word-set Jaccard as the redundancy measure:
    cheap (no vectors fetched) and exactly what near-duplicate phrasing shares.

    Returns (memory, marginal value), values non-increasing so a caller can show
    them as the ranking's scores.  Only the best 3 × ``limit`` are considered, and
    each item's redundancy is updated as items are picked: O(limit × pool), which
    bench/cortex.py needed (recomputed against every pick, it cost 7 ms a call)."""
    if mmr_lambda <= 0 or len(scored) <= 1:
        return list(scored[:limit])
    pool = list(scored[: limit * 3])
    words = [frozenset(content_words(m.content)) for m, _ in pool]
    redundancy = [0.0] * len(pool)
    alive = list(range(len(pool)))
    picked: list[tuple[Memory, float]] = []
    while alive and len(picked) < limit:
        best = max(alive, key=lambda i: pool[i][1] - mmr_lambda * redundancy[i])
        value = pool[best][1] - mmr_lambda * redundancy[best]
        ceiling = picked[-1][1] if picked else value
        picked.append((pool[best][0], min(value, ceiling)))
        alive.remove(best)
        chosen = words[best]
        for i in alive:
            overlap = _overlap(chosen, words[i])
            if overlap > redundancy[i]:
                redundancy[i] = overlap
    return picked
