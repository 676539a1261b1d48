"""A message's stimulus from its text: a fast local heuristic (no model call).

It runs on every turn before the answer, so it must cost microseconds: word
lists and a few surface cues (exclamation marks, capitals, links).  It reads
English best; elsewhere it mostly sees punctuation, which errs toward neutral.
"""

from __future__ import annotations

import re

from .hormones import Stimulus

_WORD = re.compile(r"[a-z']+")
_LINK = re.compile(r"https?://", re.IGNORECASE)

POSITIVE = frozenset(
    [
        "good",
        "great",
        "awesome",
        "amazing",
        "nice",
        "love",
        "lovely",
        "happy",
        "glad",
        "cool",
        "wonderful",
        "fantastic",
        "excellent",
        "perfect",
        "brilliant",
        "fun",
        "yay",
        "haha",
        "lol",
        "beautiful",
        "sweet",
        "helpful",
        "enjoy",
        "enjoyed",
        "excited",
        "exciting",
        "congrats",
        "congratulations",
    ]
)
NEGATIVE = frozenset(
    [
        "bad",
        "awful",
        "terrible",
        "hate",
        "sad",
        "angry",
        "annoyed",
        "annoying",
        "upset",
        "worse",
        "worst",
        "horrible",
        "broken",
        "fail",
        "failed",
        "failing",
        "sucks",
        "boring",
        "tired",
        "stressed",
        "stress",
        "worried",
        "anxious",
        "wrong",
        "ugh",
        "damn",
        "hurt",
        "lonely",
        "depressed",
        "frustrated",
        "frustrating",
    ]
)
#: Phrases that praise Clara herself (not just a positive message).
PRAISE = (
    "thank you",
    "thanks",
    "thx",
    "good job",
    "well done",
    "good bot",
    "you're great",
    "you are great",
    "you're amazing",
    "you are amazing",
    "you're the best",
    "love you",
    "you rock",
    "nailed it",
    "that helped",
)
#: Phrases of hostility toward Clara.
CONFLICT = (
    "shut up",
    "stupid",
    "idiot",
    "useless",
    "hate you",
    "you suck",
    "dumb bot",
    "bad bot",
    "go away",
    "stfu",
    "you're wrong",
    "you are wrong",
)
NEGATORS = frozenset({"not", "no", "never", "don't", "isn't", "wasn't", "can't", "nothing"})


def stimulus_from_text(text: str, *, mention: bool = False, attachments: int = 0) -> Stimulus:
    """The stimulus of one message.  Pure and cheap (one pass over the words)."""
    lower = text.lower()
    words = _WORD.findall(lower)
    score = 0
    flip = False
    for w in words:
        if w in NEGATORS:
            flip = True  # "not good" reads as negative: the next hit is inverted
            continue
        hit = 1 if w in POSITIVE else -1 if w in NEGATIVE else 0
        if hit:
            score += -hit if flip else hit
            flip = False
    praise = any(p in lower for p in PRAISE)
    conflict = any(p in lower for p in CONFLICT)
    score += 2 if praise else 0
    score -= 2 if conflict else 0
    # Saturates at three net hits: a longer rant is no more negative than a short one.
    sentiment = max(-1.0, min(1.0, score / 3))
    letters = [c for c in text if c.isalpha()]
    caps = sum(c.isupper() for c in letters) / len(letters) if len(letters) >= 8 else 0.0
    intensity = min(1.0, 0.2 * text.count("!") + (0.5 if caps > 0.7 else 0.0) + 0.1 * abs(score))
    links = len(_LINK.findall(text))
    novelty = min(1.0, 0.5 * links + 0.5 * attachments + (0.2 if len(words) > 60 else 0.0))
    return Stimulus(
        sentiment=sentiment,
        intensity=intensity,
        mention=mention,
        praise=praise,
        conflict=conflict,
        question="?" in text,
        novelty=novelty,
    )
