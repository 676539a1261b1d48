"""Reusable field types for Clara's settings: comma lists, byte sizes, ids."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_settings import NoDecode

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}


def _split_commas(value: Any) -> Any:
    # Env vars arrive as "a, b,c"; .env values or code may already be lists.
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _parse_size(value: Any) -> Any:
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if not m:
            raise ValueError("expected a byte count such as 52428800, 50MB or 512MiB")
        number, unit = m.groups()
        factor = _SIZE_UNITS.get((unit or "").lower())
        if factor is None:
            raise ValueError(f"unknown size unit {unit!r}; use B, KB, MB, GB, KiB, MiB or GiB")
        return int(float(number) * factor)
    return value


def _lower_phrases(value: Any) -> Any:
    value = _split_commas(value)
    if isinstance(value, list):
        return [str(v).strip().lower() for v in value if str(v).strip()]
    return value


# A comma-separated list of Discord snowflakes ("123, 456").
SnowflakeList = Annotated[list[int], NoDecode, BeforeValidator(_split_commas)]
# A comma-separated list of words ("openrouter,anthropic").
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]
# Comma-separated phrases compared case-insensitively.
PhraseList = Annotated[list[str], NoDecode, BeforeValidator(_lower_phrases)]
# A size in bytes that also accepts "50MB" / "512MiB".
ByteSize = Annotated[int, BeforeValidator(_parse_size)]
