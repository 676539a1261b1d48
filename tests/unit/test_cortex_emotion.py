"""Emotion scoring: the local heuristic's calibration, and the LLM scorer through the
real OpenAI SDK against the fake LLM server (parsing, batching, fallback)."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import AsyncIterator

import pytest

from clara_core.config import load_settings
from clara_core.cortex.emotion import (
    LLM_BATCH,
    HeuristicEmotionScorer,
    LLMEmotionScorer,
    build_emotion_scorer,
    parse_scores,
)
from clara_core.errors import ConfigError
from tests.fakes.fake_llm import ErrorReply, FakeLLM, Reply
from tests.support.cortex import text_model_for
from tests.support.llm import KEY

# ------------------------------------------------------------------ heuristic

#: The spec's bands: (low, high) inclusive-exclusive, with example memories.
BANDS = {
    "mundane": (0.0, 0.2),
    "mild": (0.2, 0.4),
    "significant": (0.4, 0.6),
    "high": (0.6, 0.8),
    "profound": (0.8, 1.0001),
}
EXAMPLES = [
    ("Grabbed coffee and checked my email.", "mundane"),
    ("Took the bus to work as usual.", "mundane"),
    ("Had a good meeting with the team.", "mild"),
    ("Tried a new restaurant downtown for lunch.", "mild"),
    ("Finally completed the migration project at work.", "significant"),
    ("Had an argument with my roommate about the dishes.", "significant"),
    ("My dad was rushed to the hospital after a car accident.", "high"),
    ("We got married last weekend!", "high"),
    ("I got laid off today and I'm devastated.", "high"),
    ("My grandmother died this morning.", "profound"),
    ("Our daughter was born today.", "profound"),
    ("I was diagnosed with cancer.", "profound"),
]


@pytest.mark.parametrize(("text", "band"), EXAMPLES)
def test_heuristic_puts_spec_examples_in_their_band(text: str, band: str) -> None:
    low, high = BANDS[band]
    score = HeuristicEmotionScorer().score_sync(text)
    assert low <= score < high, f"{text!r} scored {score}, expected {band} {low}-{high}"


def test_heuristic_orders_the_bands() -> None:
    scorer = HeuristicEmotionScorer()
    by_band: dict[str, list[float]] = {}
    for text, band in EXAMPLES:
        by_band.setdefault(band, []).append(scorer.score_sync(text))
    order = ["mundane", "mild", "significant", "high", "profound"]
    for lower, upper in itertools.pairwise(order):
        assert max(by_band[lower]) < min(by_band[upper])


def test_heuristic_intensity_cues_raise_but_stay_in_band() -> None:
    scorer = HeuristicEmotionScorer()
    plain = scorer.score_sync("We got married")
    loud = scorer.score_sync("We got MARRIED!!! It was so, so incredibly beautiful!!!")
    assert loud > plain
    assert 0.6 <= loud < 0.8


def test_heuristic_negation_keeps_most_intensity() -> None:
    scorer = HeuristicEmotionScorer()
    positive = scorer.score_sync("I love him")
    negated = scorer.score_sync("I don't love him anymore")
    assert negated <= positive
    assert negated >= 0.6


def test_heuristic_is_clamped_deterministic_and_fast() -> None:
    scorer = HeuristicEmotionScorer()
    overload = " ".join(["DEATH! FUNERAL!! CANCER!!! devastated terrified heartbroken"] * 50)
    texts = ["", "   ", "!!!!!!!!", "a" * 20_000, overload, *[t for t, _ in EXAMPLES]]
    first = [scorer.score_sync(t) for t in texts]
    assert first == [scorer.score_sync(t) for t in texts]
    assert all(0.0 <= s <= 1.0 for s in first)
    assert first[0] == pytest.approx(0.1)
    started = time.perf_counter()
    for _ in range(200):
        scorer.score_sync("My dad was rushed to the hospital after a car accident, so scared!!")
    assert (time.perf_counter() - started) / 200 < 0.001


async def test_heuristic_async_api_matches_sync() -> None:
    scorer = HeuristicEmotionScorer()
    texts = [t for t, _ in EXAMPLES]
    assert await scorer.score_batch(texts) == [scorer.score_sync(t) for t in texts]
    assert await scorer.score(texts[-1]) == scorer.score_sync(texts[-1])
    assert await scorer.score_batch([]) == []


# ------------------------------------------------------------------ answer parsing


@pytest.mark.parametrize(
    ("answer", "count", "expected"),
    [
        ("0.7", 1, [0.7]),
        ("1.0", 1, [1.0]),
        ("  0.25\n", 1, [0.25]),
        ("1. 0.4", 1, [0.4]),
        ("1.7", 1, [1.0]),
        ("I can't rate that.", 1, [None]),
        ("1. 0.2\n2) 0.6\n3. 0.9", 3, [0.2, 0.6, 0.9]),
        ("0.2\n0.6\n0.9", 3, [0.2, 0.6, 0.9]),
        ("1. 0.2\n2. no idea\n3. 0.9", 3, [0.2, None, 0.9]),
        ("0.2\nno idea\n0.9", 3, [0.2, None, 0.9]),
        ("3. 0.9\n1. 0.2", 3, [0.2, None, 0.9]),  # reordered and one skipped
        ("Memory 1: 0.1\n**Memory 2:** 0.8", 2, [0.1, 0.8]),
        ("Scores:\n0.3\n0.8", 2, [0.3, 0.8]),
        ("```\n1. 0.3\n2. 0.5\n```", 2, [0.3, 0.5]),
        ("0.3", 2, [None, None]),  # which item? unknowable
        ("1. 0.3\n2.", 2, [0.3, None]),
    ],
)
def test_parse_scores(answer: str, count: int, expected: list[float | None]) -> None:
    assert parse_scores(answer, count) == expected


# ------------------------------------------------------------------ LLM scorer


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with FakeLLM(api_keys={KEY}) as server:
        yield server


@pytest.fixture
async def scorer(fake: FakeLLM) -> AsyncIterator[LLMEmotionScorer]:
    model, service = text_model_for(fake)
    yield LLMEmotionScorer(model)
    await service.aclose()


def _prompt(fake: FakeLLM, n: int) -> str:
    content = fake.requests[n].messages[-1]["content"]
    return content if isinstance(content, str) else " ".join(p["text"] for p in content)


async def test_llm_scores_one_memory_with_the_spec_prompt(
    fake: FakeLLM, scorer: LLMEmotionScorer
) -> None:
    fake.enqueue(Reply("0.85"))
    assert await scorer.score("My grandmother passed away last night.") == pytest.approx(0.85)
    assert len(fake.requests) == 1
    prompt = _prompt(fake, 0)
    assert "Memory: My grandmother passed away last night." in prompt
    assert "Rate the emotional intensity of this memory on a scale of 0.0 to 1.0" in prompt
    assert "Return ONLY a float between 0.0 and 1.0." in prompt
    assert fake.requests[0].body["max_tokens"] <= 16


async def test_llm_scores_a_batch_in_one_request(fake: FakeLLM, scorer: LLMEmotionScorer) -> None:
    fake.enqueue(Reply("1. 0.1\n2) 0.55\n3. 0.9"))
    memories = ["Checked email.", "Argued with my\nsister.", "Our son was born."]
    assert await scorer.score_batch(memories) == [
        pytest.approx(0.1),
        pytest.approx(0.55),
        pytest.approx(0.9),
    ]
    assert len(fake.requests) == 1
    prompt = _prompt(fake, 0)
    # Numbered, one memory per line (the newline inside item 2 is flattened).
    assert "1. Checked email.\n2. Argued with my sister.\n3. Our son was born." in prompt


async def test_llm_garbage_and_out_of_range_lines(fake: FakeLLM, scorer: LLMEmotionScorer) -> None:
    fake.enqueue(Reply("1. 0.3\n2. quite emotional I think\n3. 1.7"))
    assert await scorer.score_batch(["a walk", "a fight", "a birth"]) == [
        pytest.approx(0.3),
        0.5,
        1.0,
    ]
    fake.enqueue(Reply("banana"))
    assert await scorer.score("Bought bananas.") == 0.5


async def test_llm_splits_big_batches(fake: FakeLLM, scorer: LLMEmotionScorer) -> None:
    total = LLM_BATCH + 5

    def numbered(request):  # one answer line per numbered item in the prompt
        content = request.messages[-1]["content"]
        count = sum(1 for line in content.splitlines() if line.split(". ", 1)[0].isdigit())
        return Reply("\n".join(f"{i}. 0.{i % 10}" for i in range(1, count + 1)))

    fake.default = numbered
    scores = await scorer.score_batch([f"memory {i}" for i in range(total)])
    assert len(fake.requests) == 2
    assert len(scores) == total
    assert scores[:3] == [pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.3)]
    assert scores[LLM_BATCH] == pytest.approx(0.1)  # second call restarts numbering
    assert f"{LLM_BATCH}. memory {LLM_BATCH - 1}" in _prompt(fake, 0)
    assert "5. memory 24" in _prompt(fake, 1)


async def test_llm_failure_falls_back_to_heuristic(
    fake: FakeLLM, scorer: LLMEmotionScorer, caplog: pytest.LogCaptureFixture
) -> None:
    fake.default = ErrorReply(500)  # every retry fails too
    memories = ["My grandmother died this morning.", "Grabbed coffee."]
    with caplog.at_level(logging.WARNING, logger="clara_core.cortex.emotion"):
        scores = await scorer.score_batch(memories)
    heuristic = HeuristicEmotionScorer()
    assert scores == [heuristic.score_sync(m) for m in memories]
    assert len(fake.requests) >= 2  # the service retried before giving up
    assert all(r.status == 500 for r in fake.requests)
    assert "using the heuristic" in caplog.text


# ------------------------------------------------------------------ factory


class _NoModel:
    async def complete_text(self, prompt: str, *, max_tokens: int, system: str | None = None):
        raise AssertionError("not called")


def test_build_emotion_scorer_follows_the_setting() -> None:
    model = _NoModel()

    def settings(choice: str):
        return load_settings(env_file=None, cortex_emotion_scorer=choice)

    assert isinstance(build_emotion_scorer(settings("auto"), model), LLMEmotionScorer)
    assert isinstance(build_emotion_scorer(settings("auto"), None), HeuristicEmotionScorer)
    assert isinstance(build_emotion_scorer(settings("heuristic"), model), HeuristicEmotionScorer)
    assert isinstance(build_emotion_scorer(settings("llm"), model), LLMEmotionScorer)
    with pytest.raises(ConfigError, match="CORTEX_EMOTION_SCORER"):
        build_emotion_scorer(settings("llm"), None)
