"""Reading JSON out of a model's answer.

Where the provider has structured output the answer is the JSON the schema
asks for; elsewhere (and from models that stray anyway) it comes in the
common deviations, all read here: ```json fences, a sentence before or after
it, the list bare instead of inside its object, a single object instead of a
list of one, plain strings where objects were asked for.  Anything that is not
recognisably the list reads as "nothing" (``None``): a consolidation step
must never act on half-understood output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


def _values(text: str) -> Iterator[Any]:
    """Every JSON value ``text`` may hold, most likely first: the whole answer, each
    fenced block, then one decoded from each opening bracket (prose around it)."""
    for candidate in (text.strip(), *(m.strip() for m in _FENCE.findall(text))):
        try:
            yield json.loads(candidate)
        except ValueError:
            continue
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = _DECODER.raw_decode(text, match.start())
        except ValueError:
            continue
        yield value


def _items(value: Any, field: str | None, item_fields: frozenset[str]) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if not isinstance(value, dict):
        return None
    if field is not None and field in value:
        inner = value[field]
        if inner is None:
            return []
        if isinstance(inner, list):
            return inner
        if isinstance(inner, dict | str):
            return [inner]  # one item where a list of one was asked for
        return None
    if item_fields & value.keys():
        return [value]  # the item itself, without its list around it
    # {"patterns": [...]} under another name: one list-valued field.
    lists = [v for v in value.values() if isinstance(v, list)]
    if len(lists) == 1:
        return lists[0]
    return None


def json_items(
    text: str, *, field: str | None = None, item_fields: frozenset[str] = frozenset()
) -> list[Any] | None:
    """The items of the list in ``text``; ``None`` when there is none.

    ``field`` names the object field the schema puts the list in (``{"facts":
    [...]}``); ``item_fields`` are keys that mark an object as one item given
    without its list.  ``[]`` (a valid "nothing found") is returned as an empty
    list, distinct from ``None`` (unreadable).  Items are returned as found, of
    any JSON type: the caller decides which it can use.
    """
    if not isinstance(text, str):
        return None
    for value in _values(text):
        found = _items(value, field, item_fields)
        if found is not None:
            return found
    return None


def json_array(
    text: str, *, field: str | None = None, item_fields: frozenset[str] = frozenset()
) -> list[dict[str, Any]] | None:
    """Like :func:`json_items`, keeping only the objects."""
    items = json_items(text, field=field, item_fields=item_fields)
    if items is None:
        return None
    return [item for item in items if isinstance(item, dict)]


def strict_object(properties: dict[str, Any], *, description: str = "") -> dict[str, Any]:
    """A JSON-Schema object in the strict subset both wires' structured output
    takes: every property required (nullable ones say so in their type), no others."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


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


def as_number(value: Any) -> float | None:
    """A number the model gave, also as a string ("0.7"); ``None`` otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return None if number != number else number  # NaN
