"""The rejection pipeline: messages that need no memory lookup (greetings,
thanks, acknowledgements, bare punctuation) are recognised without I/O.

The check runs on every message, before an embedding is made, so it has to be
far cheaper than the work it saves: one precompiled regular expression over a
normalised, length-capped string (measured in bench/cortex: ~1 µs).
"""

from __future__ import annotations

import re

# Short social messages, optionally addressed to Clara and followed by a
# smiley or punctuation: "hi", "thanks clara!", "ok 👍", "good night".
_SOCIAL = (
    r"(?:hi|hello|hey|heya|hiya|yo|sup|howdy|hallo|good\s+(?:morning|afternoon|evening|night)"
    r"|gm|gn|thanks|thank\s+you|thank\s+u|thx|ty|tysm|cheers|much\s+appreciated"
    r"|ok|okay|okey|k|kk|sure|alright|all\s+right|cool|nice|great|got\s+it|sounds\s+good"
    r"|yes|yeah|yep|yup|no|nope|nah|lol|lmao|(?:ha){2,}h?|(?:he){2,}h?|wow|bye|goodbye|see\s+you|cya|later"
    r"|np|no\s+problem|you'?re\s+welcome|welcome|mhm|hmm+|uh\s+huh)"
)
_ADDRESS = r"(?:\s*,?\s*(?:clara|there|again|so\s+much|a\s+lot|man|friend))*"
_TRAIL = r"[\s!.?,~:;)(<>3dDpP*^_-]*(?:[\U0001F300-\U0001FAFF\u2600-\u27BF]\s*)*"
_REJECT = re.compile(rf"^(?:{_SOCIAL}{_ADDRESS}{_TRAIL})+$", re.IGNORECASE)
_ONLY_SYMBOLS = re.compile(r"^[\W_]*$")
MAX_CHECKED = 60  # longer messages always deserve a lookup


def quick_reject(message: str) -> bool:
    """True when ``message`` needs no memory retrieval (and holds nothing to remember)."""
    text = message.strip()
    if len(text) < 2:
        return True
    if len(text) > MAX_CHECKED:
        return False
    return bool(_ONLY_SYMBOLS.match(text) or _REJECT.match(text))


# A bare answer ("no", "yes!", "nope, clara"): nothing to remember on its own, but
# the answer to a question Clara just asked ("Are you vegetarian?" "no") is.
_ANSWER = re.compile(
    rf"^(?:yes|yeah|yep|yup|yes\s+please|no|nope|nah|no\s+thanks|not\s+really|sure|of\s+course"
    rf"|definitely|absolutely|never|always|sometimes){_ADDRESS}{_TRAIL}$",
    re.IGNORECASE,
)


def is_short_answer(message: str) -> bool:
    """True for a bare yes/no kind of answer (see quick_reject's exception for it)."""
    text = message.strip()
    return len(text) <= MAX_CHECKED and bool(_ANSWER.match(text))
