"""Stop requests: which addressed messages cancel the work in their channel.

"@Clara stop" and "@Clara nevermind" (the spec's examples, DISCORD_STOP_PHRASES)
cancel the running answer and clear the channel's queue.  The hard part is what
is *not* a stop: "Clara, stop using emojis please" is an instruction, and
"never mind the weather, tell me a joke" a request, though both begin with a
stop phrase.  A phrase followed by punctuation and more text ("nevermind,
what's the weather?") cancels and asks anew.
"""

from __future__ import annotations

import enum
import re

#: Whole messages that ask Clara to stop when addressed to her ("@Clara stop"),
#: besides DISCORD_STOP_PHRASES.  Only the *whole* remaining text counts, so
#: "@Clara stop using emojis" is still a question, not a cancel.
STOP_WORDS = frozenset(
    {"stop", "stop it", "nevermind", "never mind", "cancel", "abort", "halt", "forget it"}
)

_PUNCTUATION = re.compile(r"[^\w\s]+")


def _words(text: str) -> list[str]:
    return _PUNCTUATION.sub(" ", text.lower()).split()


class StopRequest(enum.Enum):
    """What an addressed message asks of the work in its channel."""

    NONE = "none"  # an ordinary message
    STOP = "stop"  # "@Clara stop": cancel, clear the queue, answer nothing
    STOP_THEN_ASK = "stop_then_ask"  # "nevermind, what's the weather?": cancel, then answer it


#: Words that may follow a stop without making it a sentence ("stop that now please").
_STOP_FILLER = frozenset({"please", "pls", "now", "thanks", "thx", "already", "that", "it"})
_FILLER_RE = "|".join(sorted(_STOP_FILLER))
#: Punctuation that ends the stop, then a space: what follows is a new request.
_BOUNDARY = r"\s*[,.;:!?\u2014\u2013-]+(?:\s+|$)"


def stop_request(text: str, names: set[str], phrases: list[str]) -> StopRequest:
    """Whether an addressed message asks Clara to stop, by stop word (STOP_WORDS) or
    configured phrase (DISCORD_STOP_PHRASES), her name allowed around it.

    - The whole message is the phrase (plus filler such as "please"): STOP.
    - The phrase, then punctuation and a space, then more ("nevermind, what's the
      weather?", "stop. Tell me a joke"): STOP_THEN_ASK, the rest a new request.
    - The phrase running on into a sentence is a sentence: "Clara, stop using
      emojis please" and "never mind the weather, tell me a joke" are requests
      to answer, not cancels (their first words only look like a stop phrase).
    """
    name_words = {w for n in names for w in _words(n)}
    candidates = {tuple(_words(p)) for p in phrases} | {tuple(w.split()) for w in STOP_WORDS}
    candidates.discard(())

    words = _words(text)
    while words and words[0] in name_words:
        words.pop(0)
    while words and words[-1] in name_words:
        words.pop()
    while words and words[-1] in _STOP_FILLER and tuple(words) not in candidates:
        words.pop()
    if tuple(words) in candidates:
        return StopRequest.STOP

    # Her name and punctuation before the phrase ("@Clara, nevermind, ...").
    rest = text.lower()
    lead = r"[^\w]+"
    if name_words:
        lead += "|(?:" + "|".join(re.escape(w) for w in sorted(name_words, key=len, reverse=True))
        lead += r")\b"
    lead_re = re.compile(rf"^(?:{lead})")
    while (m := lead_re.match(rest)) and m.end():
        rest = rest[m.end() :]
    for phrase in candidates:
        body = r"\s+".join(re.escape(w) for w in phrase)
        if re.match(rf"^{body}(?:\s+(?:{_FILLER_RE}))*{_BOUNDARY}.*\w", rest, re.S):
            return StopRequest.STOP_THEN_ASK
    return StopRequest.NONE


def is_stop_request(text: str, names: set[str], phrases: list[str]) -> bool:
    """Whether the message cancels the channel's work (STOP or STOP_THEN_ASK)."""
    return stop_request(text, names, phrases) is not StopRequest.NONE
