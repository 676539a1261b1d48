"""Retrieval quality on long multi-session conversations (issue 14), for
``bench/retrieval_quality.py`` when its dataset is ``long_conversations.json``.

Protocol (the outside benchmark's): every turn of a user is stored through
``MemoryManager.store_many`` (created_at = the turn's time; metadata: turn id,
speaker, session, and the two turns before it as ``context``; embeddings made
by Cortex itself), then every question is asked through
``MemoryManager.search(limit=10)`` with the clock at the dataset's
``asked_at``.  Each user is stored several times (``COPIES``): with contextual
embeddings as shipped, with the bare text, and with other context weights, so
the ablation compares them on the same questions.

Compared side by side, on the same stored turns:

- BM25: Okapi BM25 (k1=1.2, b=0.75) over each user's turns, lower-cased words
  minus English stop words: the textbook lexical baseline;
- FTS: PostgreSQL ``ts_rank_cd`` over ``content_tsv`` with the question's
  lexemes OR-ed;
- cosine: the vector leg alone, similarity order (no re-ranking);
- the ablation ladder, each a ``RetrievalConfig`` through the public ``search``;
- ``get_context`` with the defaults (it must see what search sees).

Metrics per question (top 10): recall@5, recall@10, hit@10, MRR, nDCG@10
(binary gains), per category and overall, plus search latency p50/p95.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bench._cortex_env import Services, services
from clara_core.cortex.embedding.local_onnx import LocalOnnxEmbedder
from clara_core.cortex.emotion import HeuristicEmotionScorer
from clara_core.cortex.manager import MemoryManager, NewMemory
from clara_core.cortex.retrieval import RetrievalConfig
from clara_core.cortex.scoring import RetrievalWeights

LIMIT = 10

DEFAULT = RetrievalConfig()
OFF = DEFAULT.off()
WITH_MMR = replace(DEFAULT, mmr_lambda=0.2)
COSINE_ONLY = RetrievalWeights(1.0, 0.0, 0.0, 0.0)

# name -> (stored copy: "plain" or "ctx", weights, RetrievalConfig).  The ladder adds
# one step at a time; "Clara default" is the shipped configuration.
CONFIGS: dict[str, tuple[str, RetrievalWeights, RetrievalConfig]] = {
    "cosine": ("plain", COSINE_ONLY, OFF),
    "Clara before (vector, re-ranked)": ("plain", RetrievalWeights(), OFF),
    "+ lexical leg (RRF)": ("plain", RetrievalWeights(), replace(OFF, lexical=True)),
    "+ generic-turn penalty": (
        "plain",
        RetrievalWeights(),
        replace(OFF, lexical=True, generic_penalty=DEFAULT.generic_penalty),
    ),
    "+ time window = Clara default": ("plain", RetrievalWeights(), DEFAULT),
    "default + diversity (MMR 0.2)": ("plain", RetrievalWeights(), WITH_MMR),
    "default + contextual embeddings": ("ctx", RetrievalWeights(), DEFAULT),
    "default + contextual + MMR 0.2": ("ctx", RetrievalWeights(), WITH_MMR),
    "default without lexical": ("plain", RetrievalWeights(), replace(DEFAULT, lexical=False)),
    "default without generic penalty": ("plain", RetrievalWeights(), replace(DEFAULT, generic_penalty=1.0)),
    "default without time window": ("plain", RetrievalWeights(), replace(DEFAULT, time_boost=1.0)),
    "contextual, context weight 0.25": ("ctx-w0.25", RetrievalWeights(), DEFAULT),
    "contextual, context weight 1.0": ("ctx-w1.0", RetrievalWeights(), DEFAULT),
    "default without tied lexical ranks": ("plain", RetrievalWeights(), replace(DEFAULT, lexical_ties=False)),
    "default + lexical coverage >= 0.2": ("plain", RetrievalWeights(), replace(DEFAULT, lexical_min_coverage=0.2)),
}  # fmt: skip
# How each stored copy of a user is embedded (prefix of its user ids, RetrievalConfig);
# "plain" is what Clara ships (contextual embedding off), get_context asks it.
COPIES: dict[str, tuple[str, RetrievalConfig]] = {
    "plain": ("", DEFAULT),
    "ctx": ("ctx-", replace(DEFAULT, contextual_embedding=True)),
    "ctx-w0.25": ("w025-", replace(DEFAULT, contextual_embedding=True, context_weight=0.25)),
    "ctx-w1.0": ("w100-", replace(DEFAULT, contextual_embedding=True, context_weight=1.0)),
}
# Parameter sweep (--configs sweep): one knob at a time around the default.
SWEEP: dict[str, tuple[str, RetrievalWeights, RetrievalConfig]] = {
    f"sweep {knob}={value}": ("plain", RetrievalWeights(), replace(DEFAULT, **{knob: value}))
    for knob, values in (
        ("lexical_weight", (0.5, 0.75)),
        ("rrf_k", (20, 120)),
        ("generic_penalty", (0.3, 0.7)),
        ("min_content_words", (2, 4)),
        ("time_boost", (1.25, 2.0)),
        ("mmr_lambda", (0.1, 0.3)),
        ("candidate_factor", (2, 5)),
    )
    for value in values
} | {  # store-side: a copy embedded with another context weight
    f"sweep context_weight={w}": (f"ctx-w{w}", RetrievalWeights(), DEFAULT) for w in (0.25, 1.0)
}
BASELINES = ("BM25", "FTS ts_rank_cd (OR)")
GET_CONTEXT = "get_context (defaults)"


@dataclass
class Metrics:
    rows: list[tuple[str, float, float, float, float, float]] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)

    def add(self, kind: str, ranked: Sequence[str], gold: Sequence[str]) -> None:
        top = list(dict.fromkeys(ranked))[:LIMIT]
        answers = set(gold)
        r5 = len(answers & set(top[:5])) / len(answers)
        r10 = len(answers & set(top)) / len(answers)
        first = next((i for i, t in enumerate(top, 1) if t in answers), None)
        dcg = sum(1 / math.log2(i + 1) for i, t in enumerate(top, 1) if t in answers)
        ideal = sum(1 / math.log2(i + 1) for i in range(1, min(len(answers), LIMIT) + 1))
        self.rows.append(
            (kind, r5, r10, 1.0 if first else 0.0, 1 / first if first else 0.0, dcg / ideal)
        )

    def summary(self, kind: str | None = None) -> dict[str, float]:
        rows = [r for r in self.rows if kind is None or r[0] == kind]
        mean = statistics.fmean
        out = {
            "n": len(rows),
            "recall@5": mean(r[1] for r in rows),
            "recall@10": mean(r[2] for r in rows),
            "hit@10": mean(r[3] for r in rows),
            "mrr": mean(r[4] for r in rows),
            "ndcg@10": mean(r[5] for r in rows),
        }
        if kind is None and self.latency_ms:
            lat = sorted(self.latency_ms)
            out["p50_ms"] = lat[len(lat) // 2]
            out["p95_ms"] = lat[int(len(lat) * 0.95)]
        return out


# -- baselines -----------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+")
# A standard English stop list (no chat filler: the baseline must not borrow Clara's).
_BM25_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "he",
        "her",
        "his",
        "i",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "that",
        "the",
        "their",
        "them",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "did",
        "does",
        "do",
        "how",
        "been",
        "had",
    ]
)


def _tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in _BM25_STOP]


class BM25:
    """Okapi BM25 over one user's turns (k1=1.2, b=0.75, Lucene's idf)."""

    def __init__(self, docs: list[tuple[str, str]], k1: float = 1.2, b: float = 0.75) -> None:
        self.ids = [i for i, _ in docs]
        self.tf = [Counter(_tokens(t)) for _, t in docs]
        self.len = [sum(c.values()) for c in self.tf]
        self.avg = statistics.fmean(self.len) or 1.0
        df: Counter[str] = Counter()
        for c in self.tf:
            df.update(c.keys())
        n = len(docs)
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        self.k1, self.b = k1, b

    def rank(self, query: str, k: int = LIMIT) -> list[str]:
        q = set(_tokens(query))
        scores = []
        for i, tf in enumerate(self.tf):
            s = 0.0
            norm = self.k1 * (1 - self.b + self.b * self.len[i] / self.avg)
            for t in q:
                f = tf.get(t)
                if f:
                    s += self.idf[t] * f * (self.k1 + 1) / (f + norm)
            if s > 0:
                scores.append((s, i))
        scores.sort(key=lambda p: (-p[0], p[1]))
        return [self.ids[i] for _, i in scores[:k]]


FTS_SQL = """
SELECT metadata->>'turn_id' FROM memories,
  (SELECT replace(plainto_tsquery('english', %(q)s)::text, '&', '|')::tsquery AS q) AS query
WHERE user_id = %(u)s AND status = 'active' AND content_tsv @@ q
ORDER BY ts_rank_cd(content_tsv, q) DESC, created_at DESC
LIMIT %(k)s
"""


# -- run -----------------------------------------------------------------------------


def make_manager(
    svc: Services,
    embedder: LocalOnnxEmbedder,
    *,
    clock: Callable[[], datetime],
    name: str,
    weights: RetrievalWeights | None = None,
    retrieval: RetrievalConfig | None = None,
) -> MemoryManager:
    return MemoryManager(
        redis=svc.redis,
        engine=svc.engine,
        embedder=embedder,
        scorer=HeuristicEmotionScorer(),
        outbox_dir=svc.workdir / name,
        weights=weights,
        retrieval=retrieval,
        clock=clock,
    )


def _items(user: dict[str, Any]) -> list[NewMemory]:
    turns = user["turns"]
    items = []
    for n, t in enumerate(turns):
        before = [p for p in turns[max(0, n - 2) : n] if p["session"] == t["session"]]
        items.append(
            NewMemory(
                content=t["text"],
                created_at=datetime.fromisoformat(t["at"]),
                metadata={
                    "turn_id": t["id"],
                    "speaker": t["speaker"],
                    "session": t["session"],
                    "context": " ".join(f"{p['speaker']}: {p['text']}" for p in before),
                },
            )
        )
    return items


async def _store(
    managers: dict[str, MemoryManager], users: list[dict[str, Any]]
) -> dict[str, float]:
    """Store every user once per copy (contextual, plain, ...); returns ingest rates."""
    rates: dict[str, float] = {}
    for copy, mm in managers.items():
        prefix = COPIES[copy][0]
        t0, n = time.perf_counter(), 0
        for u in users:
            items = _items(u)
            for i in range(0, len(items), 200):  # store_many batches as an importer would
                await mm.store_many(prefix + u["user_id"], items[i : i + 200], to_hot=False)
            n += len(items)
        rates[f"store_many_{copy}_per_s"] = n / (time.perf_counter() - t0)
    return rates


async def run_long(
    dataset: dict[str, Any], n_users: int = 0, only: Sequence[str] = ()
) -> tuple[dict[str, Metrics], dict[str, Any]]:
    import psycopg

    users = dataset["users"][: n_users or None]
    asked_at = datetime.fromisoformat(dataset["asked_at"])
    pool = {**CONFIGS, **SWEEP} if "sweep" in only else CONFIGS
    configs = {k: v for k, v in pool.items() if not only or k in only or "sweep" in only}
    embedder = LocalOnnxEmbedder()
    t0 = time.perf_counter()
    metrics: dict[str, Metrics] = {n: Metrics() for n in (*BASELINES, *configs, GET_CONTEXT)}

    def clock() -> datetime:
        return asked_at

    async with services() as svc:
        copies = {"plain", *(pool[name][0] for name in configs)}
        store_mgr = {
            copy: make_manager(svc, embedder, clock=clock, name=f"ob-{copy}", retrieval=cfg)
            for copy, (_, cfg) in COPIES.items()
            if copy in copies
        }
        search_mgr = {
            name: make_manager(svc, embedder, clock=clock, weights=w, retrieval=cfg, name=f"ob-{i}")
            for i, (name, (_, w, cfg)) in enumerate(configs.items())
        }
        for mm in (*store_mgr.values(), *search_mgr.values()):
            await mm.initialize(watch=False)
        try:
            rates = await _store(store_mgr, users)
            async with await psycopg.AsyncConnection.connect(svc.conninfo, autocommit=True) as c:
                for u in users:
                    await _ask_user(u, c, search_mgr, store_mgr["plain"], embedder, metrics)
        finally:
            for mm in (*store_mgr.values(), *search_mgr.values()):
                await mm.close()
            await embedder.aclose()
    info = {
        "users": len(users),
        "turns": sum(len(u["turns"]) for u in users),
        "questions": sum(len(u["questions"]) for u in users),
        "seconds": time.perf_counter() - t0,
        **rates,
    }
    return metrics, info


async def _ask_user(
    user: dict[str, Any],
    conn: Any,
    managers: dict[str, MemoryManager],
    default: MemoryManager,
    embedder: LocalOnnxEmbedder,
    metrics: dict[str, Metrics],
) -> None:
    uid = user["user_id"]
    bm25 = BM25([(t["id"], t["text"]) for t in user["turns"]])
    vectors = await embedder.embed_batch([q["q"] for q in user["questions"]])
    for q, vec in zip(user["questions"], vectors, strict=True):
        gold, kind = q["answer_turns"], q["kind"]
        t = time.perf_counter()
        metrics["BM25"].add(kind, bm25.rank(q["q"]), gold)
        metrics["BM25"].latency_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        cur = await conn.execute(FTS_SQL, {"q": q["q"], "u": uid, "k": LIMIT})
        fts = [r[0] for r in await cur.fetchall()]
        metrics["FTS ts_rank_cd (OR)"].latency_ms.append((time.perf_counter() - t) * 1000)
        metrics["FTS ts_rank_cd (OR)"].add(kind, fts, gold)
        for name, mm in managers.items():
            who = COPIES[{**CONFIGS, **SWEEP}[name][0]][0] + uid
            t = time.perf_counter()
            res = await mm.search(who, q["q"], limit=LIMIT, query_embedding=vec)
            metrics[name].latency_ms.append((time.perf_counter() - t) * 1000)
            metrics[name].add(kind, [m.metadata["turn_id"] for m in res.memories], gold)
        t = time.perf_counter()
        ctx = await default.get_context(
            uid, q["q"], include_working=False, max_retrieved=LIMIT, query_embedding=vec
        )
        metrics[GET_CONTEXT].latency_ms.append((time.perf_counter() - t) * 1000)
        metrics[GET_CONTEXT].add(kind, [m.metadata["turn_id"] for m in ctx.retrieved], gold)


# -- output ----------------------------------------------------------------------------

KINDS = ("single-hop", "multi-hop", "temporal", "open-domain")


def print_long(metrics: dict[str, Metrics], info: dict[str, Any]) -> None:
    print(
        f"{info['questions']} questions over {info['turns']} turns of {info['users']} users "
        f"(search limit {LIMIT}); store_many memories/s: "
        + ", ".join(f"{k[11:-6]} {v:.0f}" for k, v in info.items() if k.startswith("store_many"))
    )
    w = max(map(len, metrics))
    print(
        f"{'configuration':<{w}}  r@5    r@10   hit@10 MRR    nDCG10 "
        + " ".join(f"{k[:11]:>11}" for k in KINDS)
        + "   p50ms  p95ms"
    )
    for name, m in metrics.items():
        s = m.summary()
        by = " ".join(f"{m.summary(k)['recall@10']:11.3f}" for k in KINDS)
        print(
            f"{name:<{w}}  {s['recall@5']:.3f}  {s['recall@10']:.3f}  {s['hit@10']:.3f}  "
            f"{s['mrr']:.3f}  {s['ndcg@10']:.3f}  {by}   {s.get('p50_ms', 0):5.1f}  "
            f"{s.get('p95_ms', 0):5.1f}"
        )
    print("(per-category columns: recall@10)")
    print(f"\nMRR by category\n{'configuration':<{w}}  " + " ".join(f"{k[:11]:>11}" for k in KINDS))
    for name, m in metrics.items():
        print(f"{name:<{w}}  " + " ".join(f"{m.summary(k)['mrr']:11.3f}" for k in KINDS))
    print(f"({info['seconds']:.0f}s)")


def main_long(args: argparse.Namespace, out: Callable[[str], None] = print) -> None:
    dataset = json.loads(args.dataset.read_text())
    only = [c.strip() for c in args.configs.split(",") if c.strip()]
    metrics, info = asyncio.run(run_long(dataset, args.users, only))
    print_long(metrics, info)
    if args.json:
        payload = {
            "info": info,
            "results": {
                name: {
                    "overall": m.summary(),
                    **{k: m.summary(k) for k in KINDS if any(r[0] == k for r in m.rows)},
                }
                for name, m in metrics.items()
            },
        }
        args.json.write_text(json.dumps(payload, indent=2))
        out(f"wrote {args.json}")
