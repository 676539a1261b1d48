"""Split long text into Discord-sized messages without breaking code blocks.

Boundaries are preferred in this order: paragraph, line, sentence/space, and
only then a hard cut.  When a cut falls inside a fenced code block, the
chunk is closed with ``` and the next one reopens the fence with the same
language, so every message renders on its own.
"""

from __future__ import annotations

import re

DISCORD_LIMIT = 2000
_FENCE_RE = re.compile(r"^\s*```(\S*)", re.MULTILINE)


def _open_fence(text: str) -> str | None:
    """The language tag of a fence left open at the end of ``text``, or None."""
    lang: str | None = None
    for m in _FENCE_RE.finditer(text):
        lang = None if lang is not None else m.group(1)
    return lang


def _cut_point(text: str, limit: int) -> int:
    window = text[:limit]
    for sep in ("\n\n", "\n"):
        i = window.rfind(sep)
        if i > limit // 3:
            return i + len(sep)
    for sep in (". ", "! ", "? ", " "):
        i = window.rfind(sep)
        if i > limit // 3:
            return i + len(sep)
    return limit


def split_message(text: str, limit: int = DISCORD_LIMIT) -> list[str]:
    """Chunks of at most ``limit`` characters whose fences balance individually."""
    if limit < 40:
        raise ValueError("limit too small to carry code fences")
    chunks: list[str] = []
    rest = text
    reopen = ""  # fence header to prepend to the next chunk
    while rest:
        budget = limit - len(reopen)
        if len(rest) <= budget:
            piece = reopen + rest
            if _open_fence(piece) is not None:
                if len(piece) + 4 <= limit:
                    chunks.append(piece + "\n```")
                    break
            else:
                chunks.append(piece)
                break
        # leave room for a closing fence
        cut = _cut_point(rest, budget - 4)
        piece = reopen + rest[:cut]
        lang = _open_fence(piece)
        if lang is not None:
            piece = piece.rstrip("\n") + "\n```"
            reopen = f"```{lang}\n"
        else:
            reopen = ""
        chunks.append(piece)
        rest = rest[cut:]
        if reopen == "":
            rest = rest.lstrip("\n")
    return [c for c in chunks if c.strip()]
