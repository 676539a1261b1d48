"""Facts and turns (issue 14): what should be searchable for a long conversation?

In conversation Clara stores the facts a cheap model extracts from each
exchange (``clara_core/cortex/extraction.py``), not the turns.  This bench
measures, on ``bench/datasets/long_conversations.json`` (840 questions, gold
turn ids), which memory layers answer the questions best through the public
``MemoryManager.search(limit=10)`` with the default ranking:

- **turns**: every turn of both speakers (what ``retrieval_quality.py`` stores),
  or the user's turns only;
- **facts**: the extracted facts only (what Clara stored before issue 14);
- **facts + user turns**: the user's own words as an episodic layer, unlinked, or
  linked to the facts made from them (``retrieval.EPISODE_KEY``; a result keeps the
  better-ranked of a fact and its turn: ``retrieval.one_per_episode``), as Clara
  stores them now (``CORTEX_EPISODES``);
- **facts + summaries**, and all three layers.

**The fact-extraction stand-in** (deterministic, no LLM): the extractor sees one
exchange (the user's message and Clara's reply), never the turns before it, and
keeps the user's facts in the third person, skipping small talk, questions and
anything Clara said.  Here: a user turn is kept when ``quick_reject`` lets it
through, it has at least three content words (``retrieval.content_words``) and
is not a question; it is rewritten in the third person as the prompt asks ("I
hurt my knee" -> "They hurt their knee"); and, as ``MemoryExtractor.apply`` does,
a fact whose vector is within cosine 0.93 of an earlier fact of the user is
skipped.  Each
fact keeps the id of the turn it came from.  Like a real extractor, it cannot
resolve "It was unreal" to the trip it answers.

**The summary stand-in**: one memory per session, "On 3 March 2025, Maya: " and
the session's facts joined (an extractive summary; an LLM's would be shorter).

A memory answers a question when it came from one of the gold turns (a summary:
when it contains one).  Metrics over the top 10 memories: recall@10 (share of
the gold turns covered), hit@10, MRR (first covering memory), and what the top
10 costs the prompt (characters), plus recall within a 1,200-character budget
(memories of a 20-long list taken in rank order while they fit), which is what
the prompt section can really show.  Figures and the decision: docs/benchmarks.md,
"Facts and turns".

``python bench/retrieval_layers.py [--users N] [--json out.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # also when run directly: python bench/x.py

import numpy as np  # noqa: E402

from bench._cortex_env import services  # noqa: E402
from bench.retrieval_long import make_manager  # noqa: E402
from clara_core.cortex.embedding.local_onnx import LocalOnnxEmbedder  # noqa: E402
from clara_core.cortex.extraction import DUPLICATE_MATCH  # noqa: E402
from clara_core.cortex.manager import MemoryManager, NewMemory  # noqa: E402
from clara_core.cortex.rejection import quick_reject  # noqa: E402
from clara_core.cortex.retrieval import (  # noqa: E402
    EPISODE_KEY,
    RetrievalConfig,
    content_words,
)
from clara_core.cortex.types import Memory, MemoryType  # noqa: E402

DATASET = ROOT / "bench" / "datasets" / "long_conversations.json"
LIMIT = 10
BUDGET_CHARS = 1200
KINDS = ("single-hop", "multi-hop", "temporal", "open-domain")


# -- the stand-ins -----------------------------------------------------------------


def third_person(text: str) -> str:
    """The user's words as a fact about them, the way the extraction prompt asks for
    it ("Write each fact in the third person about the user ('Their sister is called
    Ana')"): "I hurt my knee" -> "They hurt their knee"."""
    swaps = {
        "i'm": "they're",
        "i've": "they've",
        "i'll": "they'll",
        "i'd": "they'd",
        "i": "they",
        "we": "they",
        "we're": "they're",
        "my": "their",
        "our": "their",
        "me": "them",
        "us": "them",
        "myself": "themselves",
    }

    def swap(m: re.Match[str]) -> str:
        word = m.group(0)
        out = swaps.get(word.lower(), word)
        return out[0].upper() + out[1:] if m.start() == 0 else out

    return re.sub(r"\b[A-Za-z]+(?:'[a-z]+)?\b", swap, text)


def keeps(turn: dict[str, Any], user_name: str) -> bool:
    """Would the extractor keep a fact from this turn?"""
    text = turn["text"].strip()
    return (
        turn["speaker"] == user_name
        and not quick_reject(text)
        and len(content_words(text)) >= 3
        and not text.endswith("?")
    )


@dataclass
class Layer:
    """One stored memory of a layer: its text, time, kind and the turns it covers."""

    text: str
    at: datetime
    kind: str  # "turn", "fact", "summary"
    turns: list[str]
    session: int
    speaker: str = ""


async def derive(
    user: dict[str, Any], embedder: LocalOnnxEmbedder
) -> tuple[list[Layer], list[Layer], list[Layer], dict[str, list[float]]]:
    """(turns, facts, summaries) of one user, and every text's vector."""
    name = user["name"]
    turns = [
        Layer(
            t["text"],
            datetime.fromisoformat(t["at"]),
            "turn",
            [t["id"]],
            t["session"],
            t["speaker"],
        )
        for t in user["turns"]
    ]
    candidates = [
        Layer(
            third_person(t["text"]),
            datetime.fromisoformat(t["at"]),
            "fact",
            [t["id"]],
            t["session"],
        )
        for t in user["turns"]
        if keeps(t, name)
    ]
    texts = list(dict.fromkeys([t.text for t in turns] + [c.text for c in candidates]))
    vectors = dict(zip(texts, await embedder.embed_batch(texts), strict=True))
    facts: list[Layer] = []
    kept: list[np.ndarray] = []
    for c in candidates:  # MemoryExtractor.apply: a near-duplicate of a known fact is skipped
        v = np.asarray(vectors[c.text], dtype=np.float32)
        if kept and float(np.max(np.stack(kept) @ v)) >= DUPLICATE_MATCH:
            continue
        kept.append(v)
        facts.append(c)
    summaries: list[Layer] = []
    for s in sorted({f.session for f in facts}):
        of = [f for f in facts if f.session == s]
        body = " ".join(f.text for f in of)
        day = max(f.at for f in of)
        summaries.append(
            Layer(
                f"On {day:%-d %B %Y}, {name}: {body}",
                day,
                "summary",
                [t for f in of for t in f.turns],
                s,
            )
        )
    for text, vec in zip(
        [s.text for s in summaries],
        await embedder.embed_batch([s.text for s in summaries]),
        strict=True,
    ):
        vectors[text] = vec
    return turns, facts, summaries, vectors


# -- variants --------------------------------------------------------------------

#: name -> (layers stored, RetrievalConfig used to search)
DEFAULT = RetrievalConfig()
VARIANTS: dict[str, tuple[tuple[str, ...], RetrievalConfig, bool]] = {
    # name -> (layers stored, RetrievalConfig, facts and turns linked by an episode key)
    "turns only (both speakers)": (("turn",), DEFAULT, False),
    "user turns only": (("user-turn",), DEFAULT, False),
    "facts only (Clara before)": (("fact",), DEFAULT, False),
    "facts + user turns, unlinked": (("fact", "user-turn"), DEFAULT, False),
    "facts + user turns, one per episode": (("fact", "user-turn"), DEFAULT, True),
    "facts + summaries": (("fact", "summary"), DEFAULT, False),
    "facts + user turns + summaries, one per episode": (
        ("fact", "user-turn", "summary"),
        DEFAULT,
        True,
    ),
}


@dataclass
class Tally:
    rows: list[tuple[str, float, float, float, float, float]] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)

    def add(
        self, kind: str, top: Sequence[Memory], deep: Sequence[Memory], gold: Sequence[str]
    ) -> None:
        answers = set(gold)
        top = list(top[:LIMIT])
        covered: set[str] = set()
        first = None
        for i, m in enumerate(top, 1):
            turns = set(m.metadata["turns"])
            if first is None and turns & answers:
                first = i
            covered |= turns & answers
        budget: set[str] = set()
        used = 0
        for m in deep:
            if used + len(m.content) > BUDGET_CHARS:
                break
            used += len(m.content)
            budget |= set(m.metadata["turns"]) & answers
        self.rows.append(
            (
                kind,
                len(covered) / len(answers),
                1.0 if first else 0.0,
                1 / first if first else 0.0,
                len(budget) / len(answers),
                float(sum(len(m.content) for m in top)),
            )
        )

    def summary(self, kind: str | None = None) -> dict[str, float]:
        rows = [r for r in self.rows if kind is None or r[0] == kind]
        mean = statistics.fmean
        out = {
            "n": len(rows),
            "recall@10": mean(r[1] for r in rows),
            "hit@10": mean(r[2] for r in rows),
            "mrr": mean(r[3] for r in rows),
            "recall@1200chars": mean(r[4] for r in rows),
            "top10_chars": mean(r[5] for r in rows),
        }
        if kind is None and self.latency_ms:
            lat = sorted(self.latency_ms)
            out["p50_ms"] = lat[len(lat) // 2]
            out["p95_ms"] = lat[int(len(lat) * 0.95)]
        return out


def _items(layers: Sequence[Layer], kind: str, linked: bool) -> list[NewMemory]:
    """As Clara stores them: a fact is semantic (source extraction), a turn or a
    summary episodic; linked, a fact and its turn share the exchange's episode key
    (``retrieval.EPISODE_KEY``), as MemoryExtractor stores them."""
    out = []
    for x in layers:
        meta: dict[str, Any] = {"turns": x.turns, "layer": kind}
        if linked and x.kind in ("fact", "turn"):
            meta[EPISODE_KEY] = x.turns[0]
        out.append(
            NewMemory(
                content=x.text,
                created_at=x.at,
                memory_type=MemoryType.SEMANTIC if x.kind == "fact" else MemoryType.EPISODIC,
                source={"fact": "extraction", "turn": "turn", "summary": "summary"}[x.kind],
                metadata=meta,
            )
        )
    return out


async def run(users: list[dict[str, Any]], asked_at: datetime) -> tuple[dict[str, Tally], dict]:
    embedder = LocalOnnxEmbedder()
    t0 = time.perf_counter()
    tallies = {name: Tally() for name in VARIANTS}
    counts: dict[str, int] = {"turn": 0, "user-turn": 0, "fact": 0, "summary": 0}
    async with services() as svc:
        managers: dict[str, MemoryManager] = {
            name: make_manager(svc, embedder, clock=lambda: asked_at, name=f"ob-{i}", retrieval=cfg)
            for i, (name, (_, cfg, _)) in enumerate(VARIANTS.items())
        }
        for mm in managers.values():
            await mm.initialize(watch=False)
        try:
            for u in users:
                turns, facts, summaries, vectors = await derive(u, embedder)
                layers = {
                    "turn": turns,
                    "user-turn": [t for t in turns if t.speaker == u["name"]],
                    "fact": facts,
                    "summary": summaries,
                }
                for k, v in layers.items():
                    counts[k] += len(v)
                for i, (name, (kinds, _, linked)) in enumerate(VARIANTS.items()):
                    items = [it for k in kinds for it in _items(layers[k], k, linked)]
                    vecs = [vectors[it.content] for it in items]
                    for j in range(0, len(items), 500):
                        await managers[name].store_many(
                            f"v{i}-{u['user_id']}",
                            items[j : j + 500],
                            embeddings=vecs[j : j + 500],
                            to_hot=False,
                        )
                qvecs = await embedder.embed_batch([q["q"] for q in u["questions"]])
                for q, qv in zip(u["questions"], qvecs, strict=True):
                    for i, name in enumerate(VARIANTS):
                        who = f"v{i}-{u['user_id']}"
                        t = time.perf_counter()
                        top = await managers[name].search(
                            who, q["q"], limit=LIMIT, query_embedding=qv
                        )
                        tallies[name].latency_ms.append((time.perf_counter() - t) * 1000)
                        # The prompt budget is filled from a longer list (get_context's
                        # default is 15 memories): 20 ranked, taken while they fit.
                        deep = await managers[name].search(
                            who, q["q"], limit=2 * LIMIT, query_embedding=qv
                        )
                        tallies[name].add(q["kind"], top.memories, deep.memories, q["answer_turns"])
        finally:
            for mm in managers.values():
                await mm.close()
            await embedder.aclose()
    info = {
        "users": len(users),
        "memories": counts,
        "questions": sum(len(u["questions"]) for u in users),
        "seconds": time.perf_counter() - t0,
    }
    return tallies, info


def print_table(tallies: dict[str, Tally], info: dict[str, Any]) -> None:
    print(
        f"{info['questions']} questions, {info['users']} users; memories per layer: "
        + ", ".join(f"{k} {v}" for k, v in info["memories"].items())
    )
    w = max(map(len, tallies))
    print(
        f"{'layers':<{w}}  r@10   hit@10 MRR    r@1200c chars10 "
        + " ".join(f"{k[:11]:>11}" for k in KINDS)
        + "  p50ms p95ms"
    )
    for name, t in tallies.items():
        s = t.summary()
        by = " ".join(f"{t.summary(k)['recall@10']:.3f}/{t.summary(k)['mrr']:.3f}" for k in KINDS)
        print(
            f"{name:<{w}}  {s['recall@10']:.3f}  {s['hit@10']:.3f}  {s['mrr']:.3f}  "
            f"{s['recall@1200chars']:.3f}   {s['top10_chars']:6.0f}  {by}  "
            f"{s.get('p50_ms', 0):5.1f} {s.get('p95_ms', 0):5.1f}"
        )
    print("(per category: recall@10 / MRR)")
    print(f"({info['seconds']:.0f}s)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", type=Path, default=DATASET)
    p.add_argument("--users", type=int, default=0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    data = json.loads(args.dataset.read_text())
    users = data["users"][: args.users or None]
    tallies, info = asyncio.run(run(users, datetime.fromisoformat(data["asked_at"])))
    print_table(tallies, info)
    if args.json:
        payload = {
            "info": info,
            "results": {
                n: {"overall": t.summary(), **{k: t.summary(k) for k in KINDS}}
                for n, t in tallies.items()
            },
        }
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main(sys.argv[1:])
