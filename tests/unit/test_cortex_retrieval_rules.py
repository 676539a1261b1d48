"""Pure retrieval rules (issue 14): time expressions, fusion, generic turns, diversity."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clara_core.cortex.retrieval import (
    RetrievalConfig,
    adjust,
    blend,
    context_text,
    diversify,
    embedding_text,
    fuse,
    is_generic,
    tied_ranks,
)
from clara_core.cortex.retrieval_time import time_window
from clara_core.cortex.types import Memory

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def d(y: int, m: int, day: int = 1, h: int = 0) -> datetime:
    return datetime(y, m, day, h, tzinfo=UTC)


@pytest.mark.parametrize(
    ("query", "window"),
    [
        ("What did I buy in December 2025?", (d(2025, 12), d(2026, 1))),
        ("where did I go last May?", (d(2025, 5), d(2025, 6))),
        ("what happened last March?", (d(2025, 3), d(2025, 4))),  # this month: a year back
        ("what did I do in January", (d(2026, 1), d(2026, 2))),
        ("five months ago", (d(2025, 10), d(2025, 11))),
        ("three weeks ago", (d(2026, 2, 2, 12), d(2026, 2, 16, 12))),
        ("last month", (d(2026, 2), d(2026, 3))),
        ("last year", (d(2025, 1), d(2026, 1))),
        ("in the summer of 2025", (d(2025, 6), d(2025, 9))),
        ("last winter", (d(2025, 12), d(2026, 3))),  # the one just ended
        ("yesterday", (d(2026, 3, 1), d(2026, 3, 2))),
        ("before May 2025", (None, d(2025, 5))),
        ("after June", (d(2025, 7), None)),
        ("since 2025", (d(2025, 1), None)),
    ],
)
def test_time_expressions_become_windows(query, window):
    assert time_window(query, NOW) == window


@pytest.mark.parametrize(
    "query", ["What may I cook tonight?", "How was the trip?", "March of the penguins", ""]
)
def test_no_time_expression_no_window(query):
    assert time_window(query, NOW) is None


def _m(i: int, text: str, when: datetime = NOW) -> Memory:
    return Memory(
        content=text, user_id="u", id=f"00000000-0000-0000-0000-{i:012d}", created_at=when
    )


def test_generic_turns_are_those_without_content_words():
    assert is_generic("That's awesome!", 2)
    assert is_generic("What was it like?", 2)
    assert not is_generic("Ran 5k along the river", 2)


def test_fusion_rewards_agreement_and_normalises_to_one():
    a, b, c = _m(1, "alpha"), _m(2, "beta"), _m(3, "gamma")
    fused = fuse([([a, b], 1.0), ([b, c], 1.0)], k=60)
    assert [m.id for m, _ in fused] == [b.id, a.id, c.id]
    assert fused[0][1] < 1.0 and fuse([([a], 1.0), ([a], 1.0)], k=60)[0][1] == 1.0


def test_adjust_penalises_generic_and_boosts_the_window():
    generic, content = _m(1, "That's awesome!"), _m(2, "Bought a rug at the market")
    old = _m(3, "Bought a lamp at the market", d(2025, 5, 10))
    cfg = RetrievalConfig(generic_penalty=0.5, time_boost=1.5)
    out = adjust([(generic, 1.0), (content, 0.9), (old, 0.7)], cfg, (d(2025, 5), d(2025, 6)))
    assert [m.id for m, _ in out] == [old.id, content.id, generic.id]


def test_diversify_skips_near_duplicates_and_keeps_scores_descending():
    runs = [_m(i, f"Ran {i}k along the river this morning") for i in range(1, 5)]
    other = _m(9, "Signed up for the Porto half marathon")
    scored = [(r, 1.0 - 0.01 * i) for i, r in enumerate(runs)] + [(other, 0.9)]
    picked = diversify(scored, 2, 0.3)
    assert [m.id for m, _ in picked] == [runs[0].id, other.id]
    assert diversify(scored, 2, 0.0)[1][0].id == runs[1].id
    values = [v for _, v in diversify(scored, 5, 0.3)]
    assert values == sorted(values, reverse=True)


def test_contextual_parts_only_when_asked():
    meta = {"speaker": "Maya", "context": "Maya: back from Porto!"}
    assert embedding_text("It was unreal.", meta, contextual=False) == "It was unreal."
    assert embedding_text("It was unreal.", meta, contextual=True) == "Maya: It was unreal."
    assert context_text(meta, contextual=True) == "Maya: back from Porto!"
    assert context_text(meta, contextual=False) is None
    assert context_text({"context": "  "}, contextual=True) is None


def test_blend_is_unit_length_and_leans_to_the_memory():
    own, ctx = [1.0, 0.0], [0.0, 1.0]
    mixed = blend(own, ctx, 0.5)
    assert sum(x * x for x in mixed) == pytest.approx(1.0)
    assert mixed[0] > mixed[1] > 0


def test_lexical_ties_share_a_rank_so_their_order_is_no_evidence():
    """One common word matching several memories gives them equal lexical scores; ranked
    one after another (newest first) the first got a fusion boost the others did not,
    which cost the small dataset's MRR (issue 14).  Tied, the vector order decides."""
    a, b, c = _m(1, "Yuki says she supports me"), _m(2, "Yuki is a nurse"), _m(3, "Yuki visits")
    d, e = _m(4, "Yuki is learning German"), _m(5, "Yuki called")
    for m in (a, d, e, b):
        m.score = 0.4
    c.score = 0.1
    lexical = [a, d, e, b, c]  # a first, b fourth, only by how new they are
    assert tied_ranks(lexical) == [2.5, 2.5, 2.5, 2.5, 5]  # the mean of places 1-4
    vector = [b, a, c]
    tied = [m.id for m, _ in fuse([(vector, 1.0), (lexical, 1.0, tied_ranks(lexical))], k=60)]
    untied = [m.id for m, _ in fuse([(vector, 1.0), (lexical, 1.0)], k=60)]
    assert tied[0] == b.id  # among equal lexical scores the vector leg decides
    assert untied[0] == a.id  # before: the arbitrary lexical order won
