"""The JSON-Schema rules the real APIs apply to structured-output schemas.

* Anthropic (tool ``input_schema``, which forced tool use relies on): a valid
  JSON Schema (draft 2020-12) with ``type: "object"`` at the root.
* OpenAI ``response_format: {"type": "json_schema", ..., "strict": true}``: the
  strict subset on top: the root is an object, every object sets
  ``additionalProperties: false`` and lists every property in ``required``.

:func:`schema_problem` checks the structural rules of the meta-schema for the
keywords the fake understands (enough to catch a malformed schema: a wrong type
name, ``properties`` that is not an object, ``required`` that is not a list of
strings, ...); :func:`strict_problem` the strict-mode rules.  Both return a
problem description or ``None``.
"""

from __future__ import annotations

from typing import Any

JSON_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_VALUES = ("items", "not", "additionalProperties", "contains", "if", "then", "else")


def schema_problem(schema: Any, path: str = "") -> str | None:
    """Why ``schema`` is not a valid JSON Schema, or ``None``."""
    where = path or "(root)"
    if isinstance(schema, bool):
        return None
    if not isinstance(schema, dict):
        return f"{where}: a schema must be an object or a boolean"
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        bad = [k for k in kinds if not isinstance(k, str) or k not in JSON_TYPES]
        if bad or not kinds:
            return f"{where}.type: {kind!r} is not a JSON type"
    required = schema.get("required")
    if required is not None and (
        not isinstance(required, list)
        or not all(isinstance(r, str) for r in required)
        or len(set(required)) != len(required)
    ):
        return f"{where}.required: must be an array of unique strings"
    enum = schema.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum):
        return f"{where}.enum: must be a non-empty array"
    for key in _SCHEMA_MAPS:
        value = schema.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            return f"{where}.{key}: must be an object"
        for name, sub in value.items():
            problem = schema_problem(sub, f"{path}.{key}.{name}")
            if problem:
                return problem
    for key in _SCHEMA_LISTS:
        value = schema.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not value:
            return f"{where}.{key}: must be a non-empty array"
        for i, sub in enumerate(value):
            problem = schema_problem(sub, f"{path}.{key}[{i}]")
            if problem:
                return problem
    for key in _SCHEMA_VALUES:
        if key in schema:
            problem = schema_problem(schema[key], f"{path}.{key}")
            if problem:
                return problem
    return None


def strict_problem(schema: dict[str, Any], context: tuple[str, ...] = ()) -> str | None:
    """Why ``schema`` breaks OpenAI's strict mode, worded like the real API, or ``None``."""
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "object" in kinds or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            return (
                f"In context={context}, 'additionalProperties' is required to be supplied "
                "and to be false."
            )
        properties = schema.get("properties") or {}
        required = schema.get("required") or []
        missing = [name for name in properties if name not in required]
        if missing:
            return (
                f"In context={context}, 'required' is required to be supplied and to be an "
                f"array including every key in properties. Missing '{missing[0]}'."
            )
        for name, sub in properties.items():
            if isinstance(sub, dict):
                problem = strict_problem(sub, (*context, "properties", name))
                if problem:
                    return problem
    items = schema.get("items")
    if isinstance(items, dict):
        problem = strict_problem(items, (*context, "items"))
        if problem:
            return problem
    for key in ("anyOf", "$defs", "definitions"):
        value = schema.get(key)
        subs = value.items() if isinstance(value, dict) else enumerate(value or [])
        for name, sub in subs:
            if isinstance(sub, dict):
                problem = strict_problem(sub, (*context, key, str(name)))
                if problem:
                    return problem
    return None
