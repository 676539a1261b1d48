"""Reading JSON out of a model's answer.

Cheap models wrap JSON in ```json fences, put a sentence before or after it,
or return an object holding the array.  Anything that is not recognisably a
JSON array of objects reads as "nothing": a consolidation step must never act
on half-understood output.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


def _as_list(value: Any) -> list[dict[str, Any]] | None:
    if isinstance(value, dict):
        # {"patterns": [...]} / {"contradictions": [...]}: one list-valued field.
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) != 1:
            return None
        value = lists[0]
    if not isinstance(value, list):
        return None
    return [item for item in value if isinstance(item, dict)]


def json_array(text: str) -> list[dict[str, Any]] | None:
    """The objects of the first JSON array in ``text``; ``None`` when there is none.

    ``[]`` (a valid "nothing found") is returned as an empty list, distinct from
    ``None`` (unreadable)."""
    if not isinstance(text, str):
        return None
    candidates = [text.strip(), *(m.strip() for m in _FENCE.findall(text))]
    for candidate in candidates:
        try:
            found = _as_list(json.loads(candidate))
        except ValueError:
            continue
        if found is not None:
            return found
    # Prose around the JSON: decode from each opening bracket until one parses.
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = _DECODER.raw_decode(text, match.start())
        except ValueError:
            continue
        found = _as_list(value)
        if found is not None:
            return found
    return None


def as_index(value: Any, size: int) -> int | None:
    """``value`` as an index into a list of ``size``; ``None`` when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value < size:
        return value
    return None
