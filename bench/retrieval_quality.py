"""Retrieval quality of Cortex: which ranking finds the memories a question needs?

Default dataset: ``bench/datasets/long_conversations.json`` (issue 14, generated
by ``bench/datasets/make_long_conversations.py``): long multi-session chats,
840 questions in four categories, compared against BM25, PostgreSQL full text
and plain cosine, with the ablation of each retrieval step — see
``bench/retrieval_long.py`` for that protocol.

``--dataset bench/datasets/retrieval_conversations.json`` runs the earlier,
smaller replay described below: ten invented users'
messages to Clara over nine months (each message one memory) and 165 questions,
each asked at a point in time, with the turns that answer it.

Every turn is stored through ``MemoryManager.store_many`` (real local embedder,
heuristic emotion scorer, ``created_at`` = the turn's time) in a fresh
PostgreSQL + pgvector database.  Users are replayed in time order: before a
question, only the turns said before it are stored, and the manager's clock is
set to the question's time, so recency ranks as it would live (a turn from the
"future" would otherwise count as brand new).

Compared, all on the same stored memories and query embeddings:

- the manager's re-ranked ``search`` (limit 10) with several weightings of
  similarity / recency / emotion / reinforcement — the default
  0.40/0.25/0.20/0.15 (``CORTEX_RETRIEVAL_WEIGHTS``), similarity only, others;
- hybrid: reciprocal rank fusion (k=60) of a vector ranking and a lexical
  ranking.  The lexical leg is PostgreSQL full-text search in this script:
  ``to_tsvector('english', content) @@ q`` ranked by ``ts_rank``, where ``q`` is
  ``plainto_tsquery('english', question)`` with its ANDs turned into ORs (with
  AND, most questions match nothing: a question rarely repeats every word of
  the memory that answers it);
- ``get_context`` with the default weights, in a second copy of each user:
  it also reinforces what it returns (access counts), as it does live.

Metrics: recall@5 and recall@10 (share of a question's answer turns in the top
5 / 10), MRR (1 / rank of the first answer turn within the top 10, else 0) and
hit@1.  ``get_context`` runs ``quick_reject`` first; a question it skipped
would count as a miss (the count is printed).

``python bench/retrieval_quality.py [--users N] [--configs sweep] [--json out.json]``;
``python bench/retrieval_quality.py --dataset bench/datasets/retrieval_conversations.json
[--filler 200] [--misses]`` for the small replay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # also when run directly: python bench/x.py

from bench._cortex_env import Services, make_manager, services  # noqa: E402
from clara_core.cortex.embedding.local_onnx import LocalOnnxEmbedder  # noqa: E402
from clara_core.cortex.manager import MemoryManager, NewMemory  # noqa: E402
from clara_core.cortex.retrieval import RetrievalConfig  # noqa: E402
from clara_core.cortex.scoring import RetrievalWeights  # noqa: E402

DATASET = ROOT / "bench" / "datasets" / "long_conversations.json"
LIMIT = 10
RRF_K = 60
LEG_DEPTH = 30  # candidates per leg before fusion

WEIGHTINGS: dict[str, RetrievalWeights] = {
    "spec 0.40/0.25/0.20/0.15": RetrievalWeights(0.40, 0.25, 0.20, 0.15),
    "similarity only 1/0/0/0": RetrievalWeights(1.0, 0.0, 0.0, 0.0),
    "0.70/0.10/0.10/0.10": RetrievalWeights(0.70, 0.10, 0.10, 0.10),
    "0.60/0.20/0.10/0.10": RetrievalWeights(0.60, 0.20, 0.10, 0.10),
    "default 0.85/0.10/0.05/0.00": RetrievalWeights(),
    "0.90/0.10/0.00/0.00": RetrievalWeights(0.90, 0.10, 0.00, 0.00),
}
HYBRIDS = {  # name -> (weighting of the vector leg, lexical query mode)
    "hybrid RRF: similarity-only vector + FTS(or)": ("similarity only 1/0/0/0", "or"),
    "hybrid RRF: spec re-ranked + FTS(or)": ("spec 0.40/0.25/0.20/0.15", "or"),
    "hybrid RRF: similarity-only vector + FTS(and)": ("similarity only 1/0/0/0", "and"),
}
# Clara's default weights with parts of the hybrid ranking (issue 14) taken away,
# to see which step moves this dataset's figures (docs/benchmarks.md).
VARIANTS: dict[str, RetrievalConfig] = {
    "default, vector leg only (before issue 14)": RetrievalConfig().off(),
    "default without lexical": replace(RetrievalConfig(), lexical=False),
    "default without generic penalty": replace(RetrievalConfig(), generic_penalty=1.0),
    "default without time window": replace(RetrievalConfig(), time_boost=1.0),
    "default without tied lexical ranks": replace(RetrievalConfig(), lexical_ties=False),
    "default + lexical coverage >= 0.2": replace(RetrievalConfig(), lexical_min_coverage=0.2),
    "default + lexical coverage >= 0.5": replace(RetrievalConfig(), lexical_min_coverage=0.5),
}
BEFORE = "default, vector leg only (before issue 14)"
DEFAULT = "spec 0.40/0.25/0.20/0.15"
GET_CONTEXT = "get_context, Clara's default weights"
CLARA_DEFAULT = "default 0.85/0.10/0.05/0.00"
LEXICAL_ONLY = "FTS(or) alone"


class Clock:
    """The managers' shared, settable clock: the replay moves it to each event."""

    def __init__(self) -> None:
        self.now = datetime.fromisoformat("2026-01-01T00:00:00+00:00")

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Question:
    user_id: str
    q: str
    at: datetime
    answers: list[str]
    kind: str


@dataclass
class Scores:
    """Per-question metrics of one configuration."""

    r5: list[float] = field(default_factory=list)
    r10: list[float] = field(default_factory=list)
    rr: list[float] = field(default_factory=list)
    hit1: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    rr_by_kind: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    ranked: list[list[str]] = field(default_factory=list)

    def add(self, ranked: Sequence[str], question: Question) -> None:
        answers = set(question.answers)
        top = list(ranked[:LIMIT])
        self.ranked.append(top)
        self.r5.append(len(answers & set(top[:5])) / len(answers))
        self.r10.append(len(answers & set(top)) / len(answers))
        first = next((i for i, t in enumerate(top, 1) if t in answers), None)
        self.rr.append(1 / first if first else 0.0)
        self.hit1.append(1.0 if first == 1 else 0.0)
        self.by_kind[question.kind].append(self.r5[-1])
        self.rr_by_kind[question.kind].append(self.rr[-1])

    def summary(self) -> dict[str, Any]:
        mean = statistics.fmean
        return {
            "recall@5": mean(self.r5),
            "recall@10": mean(self.r10),
            "mrr": mean(self.rr),
            "hit@1": mean(self.hit1),
            "recall@5_by_kind": {k: mean(v) for k, v in sorted(self.by_kind.items())},
            "mrr_by_kind": {k: mean(v) for k, v in sorted(self.rr_by_kind.items())},
        }


# -- dataset ----------------------------------------------------------------------


def load_dataset(path: Path) -> list[dict[str, Any]]:
    users = json.loads(path.read_text())["users"]
    for u in users:
        at = {t["id"]: t["at"] for t in u["turns"]}
        for q in u["questions"]:
            # A question can only be answered by what was said before it.
            assert all(at[a] <= q["at"] for a in q["answer_turns"]), q
    return users


def timeline(
    user: dict[str, Any], filler: int = 0, seed: int = 0
) -> list[tuple[datetime, str, dict[str, Any]]]:
    """Turns (plus ``filler`` chatter turns) and questions of one user in time order;
    a turn before a question at the same instant (it was said first)."""
    turns = user["turns"] + filler_turns(user, filler, seed)
    events = [(datetime.fromisoformat(t["at"]), "turn", t) for t in turns]
    events += [(datetime.fromisoformat(q["at"]), "question", q) for q in user["questions"]]
    return sorted(events, key=lambda e: (e[0], e[1] == "question"))


# Everyday chatter that answers none of the questions: with --filler N, each user
# gets N of these spread over their nine months, so that a user holds a few
# hundred memories as a regular would, and the vector search's candidate pool
# (3 x limit) no longer covers all of them.  No personal facts, so none can
# contradict the dataset's answers.
FILLER_TEMPLATES = (
    "Had {food} for dinner tonight.",
    "It's {weather} again today.",
    "Watched a couple of episodes of {show} before bed.",
    "Finally cleaned the {room}.",
    "Can't decide what to cook, maybe {food}.",
    "Long day. I just want to sleep.",
    "Listening to {artist} on repeat today.",
    "Forgot my {item} at home again.",
    "The {appliance} is making a weird noise.",
    "Read a few chapters of a {genre} novel.",
    "Traffic was awful this morning.",
    "Tried making {drink} at home, not bad.",
    "Spent the evening scrolling on my phone, not proud of it.",
    "Bought new {item}, the old ones were falling apart.",
    "The {room} needs repainting at some point.",
    "Did the weekly shop, forgot {food} of course.",
    "Quiet {day}, nothing much happened.",
    "Laundry day. So much laundry.",
    "Fell asleep on the sofa watching {show}.",
    "My phone screen cracked, ugh.",
    "Ordered {food} because I couldn't be bothered to cook.",
    "Woke up at 6 for no reason.",
    "Stood in a queue for twenty minutes at the post office.",
    "Found a great playlist of {artist} covers.",
    "It's so {weather} that I stayed in all day.",
)
FILLER_SLOTS = {
    "food": ("pasta", "soup", "a stir-fry", "pizza", "toast", "leftovers", "a curry", "noodles"),
    "weather": ("raining", "windy", "grey", "freezing", "hot", "foggy", "humid"),
    "show": ("a cooking show", "a crime drama", "a documentary", "an old sitcom"),
    "room": ("kitchen", "bathroom", "hallway", "spare room", "fridge"),
    "artist": ("Fleetwood Mac", "Radiohead", "Taylor Swift", "Bach", "Daft Punk"),
    "item": ("umbrella", "headphones", "keys", "water bottle", "socks", "charger"),
    "appliance": ("washing machine", "fridge", "dishwasher", "boiler", "microwave"),
    "genre": ("crime", "sci-fi", "romance", "history"),
    "drink": ("cold brew", "chai", "lemonade", "iced tea"),
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Sunday"),
}


def filler_turns(user: dict[str, Any], n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    times = [datetime.fromisoformat(t["at"]).timestamp() for t in user["turns"]]
    out = []
    for i in range(n):
        slots = {k: rng.choice(v) for k, v in FILLER_SLOTS.items()}
        at = datetime.fromtimestamp(rng.uniform(min(times), max(times)), tz=UTC)
        text = rng.choice(FILLER_TEMPLATES).format(**slots)
        out.append({"id": f"{user['user_id']}-filler{i:03d}", "at": at.isoformat(), "text": text})
    return out


# -- retrieval legs ---------------------------------------------------------------


def turn_ids(memories: Sequence[Any]) -> list[str]:
    return [m.metadata["turn_id"] for m in memories]


LEXICAL_SQL = """
SELECT metadata->>'turn_id', ts_rank(to_tsvector('english', content), q) AS rank
FROM memories, (SELECT {query} AS q) AS query
WHERE user_id = %(u)s AND status = 'active' AND to_tsvector('english', content) @@ q
ORDER BY rank DESC, created_at DESC
LIMIT %(k)s
"""
# plainto_tsquery stems and drops stop words; OR-ing its lexemes lets any shared
# word count, and ts_rank puts the memories that share more of them first (it
# weighs term frequency only: no IDF, unlike BM25).
OR_QUERY = "replace(plainto_tsquery('english', %(q)s)::text, '&', '|')::tsquery"
AND_QUERY = "plainto_tsquery('english', %(q)s)"


async def lexical(conn: Any, user_id: str, question: str, mode: str) -> list[str]:
    # A user has a few dozen memories here, so no GIN index is needed: the
    # user_id index narrows the scan first.  (At 100k memories per user, a
    # GIN index on to_tsvector('english', content) would be.)
    sql = LEXICAL_SQL.format(query=OR_QUERY if mode == "or" else AND_QUERY)
    cur = await conn.execute(sql, {"u": user_id, "q": question, "k": LEG_DEPTH})
    return [row[0] for row in await cur.fetchall()]


def rrf(*rankings: Sequence[str], k: int = RRF_K) -> list[str]:
    """Reciprocal rank fusion: score = sum over rankings of 1/(k + rank)."""
    score: dict[str, float] = defaultdict(float)
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            score[item] += 1.0 / (k + rank)
    # Stable sort: ties keep the order of the first (vector) ranking.
    order = {item: i for i, item in enumerate(dict.fromkeys(x for r in rankings for x in r))}
    return sorted(score, key=lambda item: (-score[item], order[item]))


# -- the replay -------------------------------------------------------------------


@dataclass
class Harness:
    svc: Services
    embedder: LocalOnnxEmbedder
    clock: Clock
    managers: dict[str, MemoryManager]
    scores: dict[str, Scores]
    filler: int = 0
    questions: list[Question] = field(default_factory=list)
    skipped: int = 0

    async def store(self, user_id: str, turns: list[dict[str, Any]]) -> None:
        """The turns said since the last question, as the manager stores them live
        (embedding and emotional score made by Cortex itself)."""
        if not turns:
            return
        items = [
            NewMemory(
                content=t["text"],
                created_at=datetime.fromisoformat(t["at"]),
                metadata={"turn_id": t["id"]},
            )
            for t in turns
        ]
        default = self.managers[DEFAULT]
        # Embedded once by the manager's own embedder, stored twice: the get_context
        # copy of the user has the same memories but its own access counts.
        vectors = await self.embedder.embed_batch([t["text"] for t in turns])
        await default.store_many(user_id, items, embeddings=vectors, to_hot=False)
        await default.store_many(f"gc-{user_id}", items, embeddings=vectors, to_hot=False)

    async def ask(self, conn: Any, user_id: str, question: Question) -> None:
        self.questions.append(question)
        self.clock.now = question.at
        vec = await self.embedder.embed(question.q)
        deep: dict[str, list[str]] = {}
        for name, mm in self.managers.items():
            result = await mm.search(user_id, question.q, limit=LEG_DEPTH, query_embedding=vec)
            deep[name] = turn_ids(result.memories)
            # limit=10 re-ranks 30 candidates; the deep list re-ranks 90.  Use the
            # real limit=10 call for the scores so the figures are what Clara sees.
            top = await mm.search(user_id, question.q, limit=LIMIT, query_embedding=vec)
            self.scores[name].add(turn_ids(top.memories), question)
        lex = {mode: await lexical(conn, user_id, question.q, mode) for mode in ("or", "and")}
        self.scores[LEXICAL_ONLY].add(lex["or"], question)
        for name, (vector_leg, mode) in HYBRIDS.items():
            self.scores[name].add(rrf(deep[vector_leg], lex[mode]), question)
        await self.ask_get_context(user_id, question, vec)

    async def ask_get_context(self, user_id: str, question: Question, vec: list[float]) -> None:
        mm = self.managers[CLARA_DEFAULT]
        ctx = await mm.get_context(
            f"gc-{user_id}",
            question.q,
            include_working=False,
            max_retrieved=LIMIT,
            query_embedding=vec,
        )
        await mm.drain_background()  # the access-count update lands before the next question
        if ctx.notes:
            self.skipped += 1
        self.scores[GET_CONTEXT].add(turn_ids(ctx.retrieved), question)

    async def replay(self, user: dict[str, Any]) -> None:
        import psycopg

        uid = user["user_id"]
        pending: list[dict[str, Any]] = []
        async with await psycopg.AsyncConnection.connect(self.svc.conninfo, autocommit=True) as c:
            seed = int(uid[1:3]) if uid[1:3].isdigit() else 0
            for when, kind, item in timeline(user, self.filler, seed):
                if kind == "turn":
                    pending.append(item)
                    continue
                self.clock.now = when
                await self.store(uid, pending)
                pending = []
                q = Question(uid, item["q"], when, item["answer_turns"], item["kind"])
                await self.ask(c, uid, q)


async def run(
    dataset: Path, filler: int = 0
) -> tuple[dict[str, Scores], list[Question], dict[str, Any]]:
    users = load_dataset(dataset)
    embedder = LocalOnnxEmbedder()
    clock = Clock()
    t0 = time.perf_counter()
    async with services() as svc:
        managers = {
            name: make_manager(svc, embedder, weights=w, clock=clock, name=f"outbox-{i}")
            for i, (name, w) in enumerate(WEIGHTINGS.items())
        }
        for j, (name, cfg) in enumerate(VARIANTS.items()):
            mm = make_manager(svc, embedder, clock=clock, name=f"outbox-v{j}")
            mm.retrieval = cfg
            managers[name] = mm
        for mm in managers.values():
            await mm.initialize(watch=False)
        names = [*WEIGHTINGS, *VARIANTS, *HYBRIDS, LEXICAL_ONLY, GET_CONTEXT]
        h = Harness(svc, embedder, clock, managers, {n: Scores() for n in names}, filler)
        try:
            for user in users:
                await h.replay(user)
        finally:
            for mm in managers.values():
                await mm.close()
            await embedder.aclose()
    info = {
        "users": len(users),
        "turns": sum(len(u["turns"]) for u in users),
        "filler_per_user": filler,
        "questions": len(h.questions),
        "get_context_skipped": h.skipped,
        "seconds": time.perf_counter() - t0,
    }
    return h.scores, h.questions, info


# -- output -----------------------------------------------------------------------


def versus(s: Scores, base: Scores) -> tuple[int, int]:
    """Questions where ``s`` ranks the first answer higher / lower than ``base``: with
    165 questions, a difference of a few is noise, a lopsided count is not."""
    better = sum(1 for a, b in zip(s.rr, base.rr, strict=True) if a > b)
    worse = sum(1 for a, b in zip(s.rr, base.rr, strict=True) if a < b)
    return better, worse


def print_table(scores: dict[str, Scores], info: dict[str, Any]) -> None:
    print(
        f"{info['questions']} questions over {info['turns']} memories of {info['users']} users, "
        f"plus {info['filler_per_user']} filler memories per user "
        f"(search limit {LIMIT}; RRF k={RRF_K}, {LEG_DEPTH} candidates per leg)"
    )
    w = max(map(len, scores))
    default = scores[DEFAULT]
    print(f"{'configuration':<{w}}  recall@5  recall@10    MRR  hit@1  vs spec (better/worse)")
    for name, s in scores.items():
        m = s.summary()
        better, worse = versus(s, default)
        print(
            f"{name:<{w}}  {m['recall@5']:8.3f}  {m['recall@10']:9.3f}  {m['mrr']:5.3f}  "
            f"{m['hit@1']:5.3f}  {better:>3} / {worse:<3}"
        )
    kinds = sorted(next(iter(scores.values())).by_kind)
    counts = {k: len(next(iter(scores.values())).by_kind[k]) for k in kinds}
    for metric, key in (("recall@5", "recall@5_by_kind"), ("MRR", "mrr_by_kind")):
        print(f"\n{metric} by question kind")
        print(f"{'configuration':<{w}}  " + "  ".join(f"{f'{k}({counts[k]})':>14}" for k in kinds))
        for name, s in scores.items():
            by = s.summary()[key]
            print(f"{name:<{w}}  " + "  ".join(f"{by[k]:14.3f}" for k in kinds))
    if info["get_context_skipped"]:
        print(f"get_context skipped retrieval for {info['get_context_skipped']} questions")
    print(f"({info['seconds']:.0f}s)")


def print_misses(
    scores: dict[str, Scores], questions: list[Question], pick: Callable[[str], bool]
) -> None:
    """Questions whose answer the default misses in its top 5, with the other rankings."""
    default = scores[DEFAULT]
    print("\nquestions the default misses in its top 5:")
    for i, q in enumerate(questions):
        if default.r5[i] == 1.0:
            continue
        print(f"- [{q.kind}] {q.user_id} {q.at:%m-%d}: {q.q!r} -> {q.answers}")
        for name, s in scores.items():
            if pick(name):
                print(f"    {name}: r@5={s.r5[i]:.2f} top5={s.ranked[i][:5]}")


def print_regressions(scores: dict[str, Scores], questions: list[Question]) -> None:
    """Questions Clara's default ranks worse than the vector leg alone did (the
    ranking before issue 14), with both top 5s: what the hybrid steps cost here."""
    now, before = scores[CLARA_DEFAULT], scores[BEFORE]
    print(f"\nquestions {CLARA_DEFAULT!r} ranks worse than {BEFORE!r}:")
    for i, q in enumerate(questions):
        if now.rr[i] >= before.rr[i]:
            continue
        print(f"- [{q.kind}] {q.user_id} {q.at:%Y-%m-%d}: {q.q!r} -> {q.answers}")
        print(f"    MRR {before.rr[i]:.2f} -> {now.rr[i]:.2f}")
        for name in (BEFORE, CLARA_DEFAULT, *VARIANTS):
            if name != BEFORE:
                print(f"    {name}: rr={scores[name].rr[i]:.2f} top5={scores[name].ranked[i][:5]}")
            else:
                print(f"    {name}: top5={scores[name].ranked[i][:5]}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", type=Path, default=DATASET)
    p.add_argument("--json", type=Path, help="write the figures to this file")
    p.add_argument("--misses", action="store_true", help="list the default's misses")
    p.add_argument(
        "--regressions",
        action="store_true",
        help="small set: list the questions the default ranks worse than before issue 14",
    )
    p.add_argument("--filler", type=int, default=0, help="everyday chatter memories added per user")
    p.add_argument("--users", type=int, default=0, help="long set: only the first N users")
    p.add_argument(
        "--configs", default="", help="long set: comma-separated configuration names to run"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv or [])
    if "asked_at" in json.loads(args.dataset.read_text()):
        from bench.retrieval_long import main_long  # the issue-14 protocol

        main_long(args)
        return
    scores, questions, info = asyncio.run(run(args.dataset, args.filler))
    print_table(scores, info)
    if args.misses:
        print_misses(scores, questions, lambda n: "default" in n or "similarity-only" in n)
    if args.regressions:
        print_regressions(scores, questions)
    if args.json:
        payload = {
            "info": info,
            "config": {
                "limit": LIMIT,
                "rrf_k": RRF_K,
                "leg_depth": LEG_DEPTH,
                "filler_per_user": args.filler,
            },
            "results": {
                name: {**s.summary(), "vs_default_better_worse": versus(s, scores[DEFAULT])}
                for name, s in scores.items()
            },
        }
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main(sys.argv[1:])
