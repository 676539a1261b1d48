"""Boundaries a user states about being contacted ("not before 10:00", "no
weekends", "only about work"), as pure data.

A boundary is the user's words plus what of them the rules can enforce: an
earliest and a latest local time of day and days off.  The enforceable parts
are read from the words by a small, deliberately strict parser (a few English
phrasings; anything it does not recognise stays words only), so what is
enforced is exactly what the user sees listed as enforced.  The words of every
boundary go to the ORS model as well ("only about work" can only be honoured
there); the hard parts are enforced by ``ors.speak_blocker`` whatever the model
says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

#: Longest boundary text kept: a sentence, not an essay (it goes into every ORS prompt).
MAX_TEXT = 200
#: Boundaries kept per user: each is a line of the ORS prompt.
MAX_BOUNDARIES = 10

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKEND = frozenset({5, 6})
WEEKDAYS = frozenset(range(5))

_TIME = r"(\d{1,2})(?:[:.h](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?"
_DAY = r"(monday|tuesday|wednesday|thursday|friday|saturday|sunday)s?"
_NOT = r"(?:not|never|no\s+messages?|nothing|don'?t\s+(?:message|write|ping|text)(?:\s+me)?)"
_BEFORE = re.compile(rf"\b{_NOT}\s+(?:before|earlier\s+than)\s+{_TIME}")
_AFTER = re.compile(rf"\b{_NOT}\s+(?:after|later\s+than)\s+{_TIME}")
_BETWEEN = re.compile(rf"\bonly\s+(?:between|from)\s+{_TIME}\s+(?:and|to|-)\s+{_TIME}")
_NO_WEEKENDS = re.compile(
    rf"\b(?:{_NOT}|no)\s+(?:on\s+)?(?:the\s+)?weekends?\b|\bweekdays?\s+only\b"
)
_ONLY_WEEKDAYS = re.compile(r"\bonly\s+(?:on\s+)?weekdays?\b")
_ONLY_WEEKENDS = re.compile(r"\bonly\s+(?:on\s+)?(?:the\s+)?weekends?\b|\bweekends?\s+only\b")
_NO_DAY = re.compile(rf"\b(?:{_NOT}|no)\s+(?:on\s+)?{_DAY}\b")


def _clock(hour: str, minute: str | None, meridiem: str | None) -> time | None:
    h, m = int(hour), int(minute or 0)
    if meridiem:
        if not 1 <= h <= 12:
            return None
        h = h % 12 + (12 if meridiem.startswith("p") else 0)
    if h > 23 or m > 59:
        return None
    return time(h, m)


@dataclass(frozen=True)
class Boundary:
    """One stated boundary: the words, and the parts of them that are enforced."""

    text: str
    not_before: time | None = None  # no proactive message earlier in the (local) day
    not_after: time | None = None  # ... nor later
    days_off: frozenset[int] = frozenset()  # 0 = Monday (datetime.weekday())

    @property
    def enforced(self) -> bool:
        return bool(self.not_before or self.not_after or self.days_off)

    @classmethod
    def parse(cls, words: str) -> Boundary:
        """The user's words, with the hours and days the parser recognises in them."""
        text = " ".join(words.split())[:MAX_TEXT]
        low = text.lower()
        not_before = not_after = None
        days: set[int] = set()
        if m := _BETWEEN.search(low):
            not_before = _clock(*m.groups()[:3])
            not_after = _clock(*m.groups()[3:])
        if m := _BEFORE.search(low):
            not_before = _clock(*m.groups()) or not_before
        if m := _AFTER.search(low):
            not_after = _clock(*m.groups()) or not_after
        if _NO_WEEKENDS.search(low) or _ONLY_WEEKDAYS.search(low):
            days |= WEEKEND
        elif _ONLY_WEEKENDS.search(low):
            days |= WEEKDAYS
        for m in _NO_DAY.finditer(low):
            days.add(DAYS.index(m.group(1)))
        if not_before is not None and not_after is not None and not_before >= not_after:
            # "only between 22:00 and 02:00" is not something the rules can honour
            # as one window; keep the words, enforce neither end rather than guess.
            not_before = not_after = None
        return cls(text, not_before, not_after, frozenset(days))

    def describe(self) -> str:
        """The enforced part in plain words ("not before 10:00, not on Saturday")."""
        parts = []
        if self.not_before is not None:
            parts.append(f"not before {self.not_before:%H:%M}")
        if self.not_after is not None:
            parts.append(f"not after {self.not_after:%H:%M}")
        if self.days_off == WEEKEND:
            parts.append("not on weekends")
        elif self.days_off == WEEKDAYS:
            parts.append("only on weekends")
        elif self.days_off:
            parts.append("not on " + ", ".join(DAYS[d].title() for d in sorted(self.days_off)))
        return ", ".join(parts)

    # -- storage (a JSON object per boundary) ----------------------------------
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text}
        if self.not_before is not None:
            out["not_before"] = f"{self.not_before:%H:%M}"
        if self.not_after is not None:
            out["not_after"] = f"{self.not_after:%H:%M}"
        if self.days_off:
            out["days_off"] = sorted(self.days_off)
        return out

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | str) -> Boundary:
        """Tolerant: a bare string (a boundary stored as words only) is words only."""
        if isinstance(value, str):
            return cls(value[:MAX_TEXT])

        def when(key: str) -> time | None:
            raw = value.get(key)
            try:
                return time.fromisoformat(raw) if isinstance(raw, str) else None
            except ValueError:
                return None

        days = frozenset(
            int(d) for d in value.get("days_off") or () if isinstance(d, int) and 0 <= d <= 6
        )
        return cls(
            str(value.get("text") or "")[:MAX_TEXT], when("not_before"), when("not_after"), days
        )


def blocked_by(boundaries: Iterable[Boundary], now: datetime, tz: ZoneInfo) -> Boundary | None:
    """The first boundary that forbids a proactive message at ``now`` (local time)."""
    local = now.astimezone(tz)
    t = local.time()
    for b in boundaries:
        if local.weekday() in b.days_off:
            return b
        if b.not_before is not None and t < b.not_before:
            return b
        if b.not_after is not None and t >= b.not_after:
            return b
    return None


def allowed_from(boundaries: Iterable[Boundary], at: datetime, tz: ZoneInfo) -> datetime:
    """The first moment at or after ``at`` that no boundary forbids (``at`` itself
    when none does).  Boundaries that together forbid every moment of the week
    answer a week later: the caller's check interval caps it anyway."""
    bs = [b for b in boundaries if b.enforced]
    if not bs:
        return at
    local = at.astimezone(tz)
    for _ in range(8 * 4):  # a few jumps per day at most; bounded whatever the data says
        b = blocked_by(bs, local, tz)
        if b is None:
            return local.astimezone(at.tzinfo)
        late = b.not_after is not None and local.time() >= b.not_after
        if local.weekday() in b.days_off or late:  # nothing more today: the next local day
            local = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=tz)
        else:  # before not_before today
            assert b.not_before is not None
            local = datetime.combine(local.date(), b.not_before, tzinfo=tz)
    return at + timedelta(days=7)
