"""Emotional intensity of a memory, 0.0 (mundane) to 1.0 (profound).

The score weighs retrieval (emotional memories surface more) and slows decay.  Two
scorers:

* :class:`LLMEmotionScorer` asks the cheap model with the spec's rubric; a list is
  scored in one call per 20 memories, because extraction produces memories in
  bursts and one call per memory would multiply latency and cost.
* :class:`HeuristicEmotionScorer` is local and instant: word lists calibrated to
  the same rubric.  It serves when no LLM is configured, and as the fallback when
  the LLM call fails — scoring must never make storing a memory fail.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Protocol

from clara_core.errors import ConfigError

from .llm_json import as_index, as_number, json_items
from .ports import TextModel

if TYPE_CHECKING:
    from clara_core.config import Settings

log = logging.getLogger(__name__)

#: What a score defaults to when the model's answer for an item is unusable.
NEUTRAL = 0.5
#: Memories per model call: long lists make models skip or merge lines.
LLM_BATCH = 20

PROMPT = """Rate the emotional intensity of this memory on a scale of 0.0 to 1.0:
- 0.0-0.2: Mundane, routine (grabbed coffee, checked email)
- 0.2-0.4: Mildly notable (had a good meeting, tried a new restaurant)
- 0.4-0.6: Significant (completed a project, had an argument)
- 0.6-0.8: Highly emotional (family emergency, major life event, conflict)
- 0.8-1.0: Profound impact (death, birth, trauma, breakthrough)
Memory: {content}
Return ONLY a float between 0.0 and 1.0."""

BATCH_PROMPT = """Rate the emotional intensity of each memory below on a scale of 0.0 to 1.0:
- 0.0-0.2: Mundane, routine (grabbed coffee, checked email)
- 0.2-0.4: Mildly notable (had a good meeting, tried a new restaurant)
- 0.4-0.6: Significant (completed a project, had an argument)
- 0.6-0.8: Highly emotional (family emergency, major life event, conflict)
- 0.8-1.0: Profound impact (death, birth, trauma, breakthrough)
Memories:
{items}
Return ONLY one line per memory, in order, as its number and a float between 0.0 and 1.0 \
(for example "1. 0.3"), and nothing else."""

#: Room for a float (single) or "NN. 0.xx" per line (batch); cheap and bounded.
SINGLE_MAX_TOKENS = 10
PER_ITEM_TOKENS = 8
#: Characters of one memory put in the prompt.
MAX_MEMORY_CHARS = 2000


class EmotionScorer(Protocol):
    async def score(self, content: str) -> float: ...

    async def score_batch(self, contents: list[str]) -> list[float]: ...


def clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


# ------------------------------------------------------------------ parsing

_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
#: Leading words/markup a model may put before an item number ("**2.**", "Memory 2:").
_LEAD = re.compile(r"^[\W_]*(?:(?:memory|item|no\.?|#)\s*)?", re.IGNORECASE)
#: An item number: digits, a separator, then a space or the end ("1. 0.7", "1) 0.7",
#: "2: 0.4", "3."), but not the "0." of "0.7" nor the "1." of "1.0".
_INDEXED = re.compile(r"^(\d+)\s*[.):\]-]+\**(?:\s+|$)")


def _parse_line(line: str) -> tuple[int | None, float | None]:
    """``(item number, score)`` of one answer line; either may be missing."""
    lead = _LEAD.match(line)  # always matches (everything in it is optional)
    rest = line[lead.end() :] if lead else line
    indexed = _INDEXED.match(rest)
    if indexed:
        numbers = _NUMBER.findall(rest[indexed.end() :])
        return int(indexed.group(1)), clamp(float(numbers[0])) if numbers else None
    numbers = _NUMBER.findall(line)
    return None, clamp(float(numbers[0])) if numbers else None


_INDEX_KEYS = ("item", "index", "n", "number", "id")


def _json_scores(text: str, count: int) -> list[float | None] | None:
    """Scores from an answer in JSON, which models in a JSON habit give despite the
    prompt: ``[0.1, 0.8]``, ``{"scores": [...]}``, ``[{"item": 1, "score": 0.1}]``,
    ``{"score": 0.7}``.  ``None`` when the answer is not JSON of that kind."""
    if "[" not in text and "{" not in text:
        return None  # "0.7" and "1. 0.3" lines: the line parser's
    items = json_items(text, field="scores", item_fields=frozenset({"score"}))
    if not items:
        return None
    scores: list[float | None] = [None] * count
    if all(not isinstance(i, dict) for i in items):
        if len(items) != count:
            return None  # which item is which? unknowable
        return [None if (v := as_number(i)) is None else clamp(v) for i in items]
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        value = as_number(item.get("score"))
        index = next((item[k] for k in _INDEX_KEYS if k in item), None)
        slot = position if index is None else as_index(as_number(index), count + 1)
        if index is not None and slot is not None:
            slot -= 1  # items are numbered from 1
        if slot is not None and 0 <= slot < count and value is not None:
            scores[slot] = clamp(value)
    return scores


def parse_scores(text: str, count: int) -> list[float | None]:
    """One score per item from a model's answer (``None`` where it gave none).

    Numbered lines are matched to items by number, so a skipped or reordered line
    cannot shift every later score; unnumbered lines are matched by position, but
    only when the line count leaves no doubt about which line is which.  An answer
    in JSON is read as JSON.
    """
    from_json = _json_scores(text, count)
    if from_json is not None:
        return from_json
    lines = [ln.strip() for ln in text.strip().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("```")]
    parsed = [_parse_line(ln) for ln in lines]
    scores: list[float | None] = [None] * count
    if any(index is not None for index, _ in parsed):
        for index, value in parsed:
            if index is not None and 1 <= index <= count and scores[index - 1] is None:
                scores[index - 1] = value
        return scores
    if len(lines) == count:  # one line per item, some maybe garbage
        return [value for _, value in parsed]
    values = [value for _, value in parsed if value is not None]
    if len(values) == count:  # extra chatter lines around exactly `count` scores
        return list(values)
    if count == 1 and values:
        return [values[0]]
    return scores


# ------------------------------------------------------------------ LLM scorer


class LLMEmotionScorer:
    """Scores with the cheap model; falls back to the heuristic when the call fails."""

    def __init__(self, model: TextModel, *, fallback: EmotionScorer | None = None) -> None:
        self.model = model
        self.fallback = fallback or HeuristicEmotionScorer()

    async def score(self, content: str) -> float:
        (value,) = await self.score_batch([content])
        return value

    async def score_batch(self, contents: list[str]) -> list[float]:
        # One chunk after another: scoring is background work and shares the
        # provider's rate limit with the conversation itself.
        out: list[float] = []
        for start in range(0, len(contents), LLM_BATCH):
            out.extend(await self._score_chunk(contents[start : start + LLM_BATCH]))
        return out

    async def _score_chunk(self, contents: list[str]) -> list[float]:
        if len(contents) == 1:
            prompt = PROMPT.format(content=_one_line(contents[0]))
            max_tokens = SINGLE_MAX_TOKENS
        else:
            items = "\n".join(f"{i}. {_one_line(c)}" for i, c in enumerate(contents, 1))
            prompt = BATCH_PROMPT.format(items=items)
            max_tokens = 16 + PER_ITEM_TOKENS * len(contents)
        try:
            answer = await self.model.complete_text(prompt, max_tokens=max_tokens)
        except Exception as exc:  # any model failure: never lose the memory over a score
            log.warning(
                "emotion scoring by the model failed (%s: %s); using the heuristic for %d memories",
                type(exc).__name__,
                exc,
                len(contents),
            )
            return await self.fallback.score_batch(contents)
        scores = parse_scores(answer, len(contents))
        if any(s is None for s in scores):
            log.debug("emotion scores missing from the model's answer %r", answer[:200])
        return [NEUTRAL if s is None else s for s in scores]


def _one_line(text: str) -> str:
    # A newline inside a memory would look like the next numbered item; the cap keeps
    # the cost of one pathological memory bounded (its start carries the emotion).
    return " ".join(text.split())[:MAX_MEMORY_CHARS]


# ------------------------------------------------------------------ heuristic

#: Score levels, one per band of the rubric (mid-band, leaving room for boosts).
MUNDANE = 0.1
MILD = 0.28
SIGNIFICANT = 0.48
HIGH = 0.68
PROFOUND = 0.88
#: Boosts never push a text out of its band (each band is 0.2 wide).
MAX_BOOST = 0.1


def _words(text: str) -> list[str]:
    return text.split()


# Words that are often literal in chat about work or tech ("passed the exam", "the
# app crashed", "opened a terminal", "killed the process") are left out or matched
# only as phrases, so everyday talk is not scored as a tragedy.
_PROFOUND_WORDS = _words("""
death die died dies dying deceased funeral funerals suicide suicidal murder murdered
born birth newborn pregnant pregnancy miscarriage stillborn cancer tumor tumour
diagnosed diagnosis chemo chemotherapy trauma traumatic traumatized traumatised abuse
abused assault assaulted raped rape overdose coma widow widowed orphan orphaned grief
grieving breakthrough
""")

_HIGH_WORDS = _words("""
wedding married marry marrying engaged engagement proposed proposal divorce divorced
divorcing separated hospital hospitalized surgery emergency ambulance accident injured
injury fired promoted promotion breakup graduated graduation graduating evicted eviction
arrested bankrupt bankruptcy adopted adoption relapse relapsed sober sobriety conflict
dead stroke
love loved hate hated terrified terrifying devastated devastating furious thrilled
heartbroken heartbreaking ecstatic elated overjoyed panic panicked horrified betrayed
betrayal humiliated miserable depressed depression desperate despair shattered enraged
livid euphoric mourning sobbing cried crying tears scared afraid lonely ashamed
""")

_SIGNIFICANT_WORDS = _words("""
argument argued fight fought quarrel completed finished launched shipped accomplished
achievement achieved won win winning failed failure exam interview deadline stressed
stress stressful worried worry anxious anxiety nervous excited exciting proud angry mad
upset sad unhappy happy joy grateful thankful disappointed frustrated frustrating
jealous hurt sick ill relieved relief apologized apology confessed secret milestone
anniversary birthday celebrate celebrated celebration reunion vacation holiday
""")

_MILD_WORDS = _words("""
good nice great fun enjoyed enjoy enjoying liked interesting tried glad pleased tired
annoyed annoying bored boring busy productive restaurant surprised surprise cool lovely
awesome favorite favourite better worse hope hoping lost lose losing
""")

#: Multi-word events (matched on the lower-cased words, word-bounded).
_PHRASES = {
    PROFOUND: [
        "passed away",
        "gave birth",
        "had a baby",
        "lost the baby",
        "took his own life",
        "took her own life",
        "terminally ill",
        "terminal illness",
        "life changing",
    ],
    HIGH: [
        "laid off",
        "lost my job",
        "lost his job",
        "lost her job",
        "new job",
        "got the job",
        "broke up",
        "broken up",
        "dumped me",
        "car crash",
        "moved out",
        "moving out",
        "life event",
    ],
    SIGNIFICANT: ["big news", "job offer", "moved house", "new house", "new apartment"],
}

_LEVEL: dict[str, float] = {}
for _level, _group in (
    (MILD, _MILD_WORDS),
    (SIGNIFICANT, _SIGNIFICANT_WORDS),
    (HIGH, _HIGH_WORDS),
    (PROFOUND, _PROFOUND_WORDS),
):
    for _w in _group:
        _LEVEL[_w] = max(_LEVEL.get(_w, 0.0), _level)

_PHRASE_RES = [
    (level, re.compile(r"\b(?:" + "|".join(re.escape(p) for p in phrases) + r")\b"))
    for level, phrases in _PHRASES.items()
]
_INTENSIFIERS = frozenset(
    _words(
        "very so really extremely incredibly absolutely totally utterly completely deeply "
        "truly super insanely ridiculously seriously"
    )
)
_NEGATORS = frozenset(_words("not no never don't didn't doesn't isn't wasn't won't can't cannot"))
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'\u2019]*")
#: A negated word keeps most of its weight: "I'm not okay", "I don't love him anymore"
#: are no calmer than their positive forms.
NEGATION_FACTOR = 0.9


def _lookup(word: str) -> float:
    """The word's level, trying a few cheap inflection strips (loved → love)."""
    level = _LEVEL.get(word)
    if level is not None:
        return level
    for candidate in (
        word[:-1] if word.endswith("s") else "",
        word[:-2] if word.endswith("ed") else "",
        word[:-1] if word.endswith("ed") else "",
        word[:-3] if word.endswith("ing") else "",
        word[:-3] + "e" if word.endswith("ing") else "",
        word[:-2] if word.endswith("'s") else "",
    ):
        if candidate and candidate in _LEVEL:
            return _LEVEL[candidate]
    return 0.0


class HeuristicEmotionScorer:
    """Local, deterministic, no I/O: word lists calibrated to the rubric's bands.

    The strongest cue sets the band (mundane 0.1, mild 0.28, significant 0.48, high
    0.68, profound 0.88); further strong cues, intensifiers, exclamation marks and
    ALL-CAPS words add at most ``MAX_BOOST``, so a text stays within its band.
    """

    def score_sync(self, content: str) -> float:
        raw_tokens = _TOKEN.findall(content)
        words = [t.lower().replace("\u2019", "'") for t in raw_tokens]
        hits: list[float] = []
        for i, word in enumerate(words):
            level = _lookup(word)
            if level:
                if any(w in _NEGATORS for w in words[max(0, i - 3) : i]):
                    level *= NEGATION_FACTOR
                hits.append(level)
        lowered = " ".join(words)
        for level, pattern in _PHRASE_RES:
            hits.extend(level for _ in pattern.finditer(lowered))
        hits.sort(reverse=True)
        base = hits[0] if hits else MUNDANE
        boost = 0.04 * min(2, sum(1 for h in hits[1:] if h >= SIGNIFICANT))
        if hits:
            boost += 0.03 * min(2, sum(1 for w in words if w in _INTENSIFIERS))
        boost += 0.03 * min(2, content.count("!"))
        caps = sum(1 for t in raw_tokens if len(t) >= 3 and t.isupper())
        boost += 0.03 * min(2, caps)
        return round(clamp(base + min(boost, MAX_BOOST)), 4)

    async def score(self, content: str) -> float:
        return self.score_sync(content)

    async def score_batch(self, contents: list[str]) -> list[float]:
        return [self.score_sync(c) for c in contents]


# ------------------------------------------------------------------ factory


def build_emotion_scorer(settings: Settings, model: TextModel | None) -> EmotionScorer:
    """The scorer CORTEX_EMOTION_SCORER asks for.

    ``model`` is the cheap-model adapter when an LLM provider is configured.
    """
    choice = settings.cortex_emotion_scorer
    if choice == "heuristic":
        return HeuristicEmotionScorer()
    if model is None:
        if choice == "llm":
            raise ConfigError(
                [
                    "CORTEX_EMOTION_SCORER=llm needs an LLM provider; configure one "
                    "or set CORTEX_EMOTION_SCORER=heuristic (or auto)"
                ]
            )
        return HeuristicEmotionScorer()
    return LLMEmotionScorer(model)
