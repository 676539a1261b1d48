"""Levels -> a few plain sentences for the system prompt, plus bounded style hints.

The mood only colours tone and energy.  The section says so in as many words,
because a model reading "you feel impatient" must not become rude, refuse,
or cut short an answer the user needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .hormones import (
    CORTISOL,
    CURIOSITY,
    DOPAMINE,
    MELATONIN,
    NOVELTY,
    OXYTOCIN,
    PATIENCE,
    SEROTONIN,
    Levels,
)

#: How far from its baseline a level must be to be worth a word.  0.12 is
#: about what one strong event moves a level: smaller is noise.
NOTABLE = 0.12
#: At most this many feelings are named: a list of eight reads like a chart, not a mood.
MAX_FEELINGS = 3

#: (index, words when above baseline, words when below).
_WORDS: tuple[tuple[int, str, str], ...] = (
    (DOPAMINE, "energised and engaged", "a bit flat"),
    (SEROTONIN, "content and warm", "a little low"),
    (OXYTOCIN, "close to the people here", "a little distant"),
    (CORTISOL, "tense and on edge", "relaxed"),
    (MELATONIN, "sleepy", "wide awake"),
    (NOVELTY, "intrigued by something new", ""),
    (CURIOSITY, "curious, keen to ask questions", "not very inquisitive"),
    (PATIENCE, "very patient", "short on patience"),
)

GUARD = (
    "Let this colour your tone and energy a little; it never overrides honesty, "
    "safety, or what the user asked for, and you don't mention it unless asked."
)
SHORTER = "Lean toward shorter replies than usual, unless the user needs detail."
LIVELIER = "You have energy for a lively reply and a follow-up question, if it fits."

#: Temperature wish bounds: the mood nudges sampling, never to an extreme.
TEMPERATURE_MIN = 0.5
TEMPERATURE_MID = 0.7
TEMPERATURE_MAX = 0.9


@dataclass(frozen=True)
class MoodHint:
    text: str  # the prompt section's body
    temperature: float  # a wish in [TEMPERATURE_MIN, TEMPERATURE_MAX]
    shorter: bool


def describe(levels: Levels, baseline: Levels) -> MoodHint:
    deviations = []
    for index, up, down in _WORDS:
        dev = levels[index] - baseline[index]
        words = up if dev > 0 else down
        if abs(dev) >= NOTABLE and words:
            deviations.append((abs(dev), words))
    deviations.sort(reverse=True)
    feelings = [w for _, w in deviations[:MAX_FEELINGS]]
    if not feelings:
        mood = "You feel even, your usual self."
    elif len(feelings) == 1:
        mood = f"You feel {feelings[0]}."
    else:
        mood = f"You feel {', '.join(feelings[:-1])} and {feelings[-1]}."
    shorter = levels[PATIENCE] < 0.35 or levels[MELATONIN] > 0.6
    livelier = not shorter and levels[DOPAMINE] > 0.65 and levels[CURIOSITY] > 0.55
    lines = [mood]
    if shorter:
        lines.append(SHORTER)
    elif livelier:
        lines.append(LIVELIER)
    lines.append(GUARD)
    # Arousal (dopamine, novelty) against calm (melatonin, cortisol's tension)
    # moves the temperature wish around its middle, within ±0.2.
    arousal = (levels[DOPAMINE] + levels[NOVELTY]) - (levels[MELATONIN] + levels[CORTISOL])
    temperature = TEMPERATURE_MID + 0.1 * arousal
    temperature = min(TEMPERATURE_MAX, max(TEMPERATURE_MIN, temperature))
    return MoodHint(" ".join(lines), round(temperature, 2), shorter)
