"""Time expressions in a question, as a window of ``created_at`` (pure, clock given).

"What did I buy last May?" should prefer what was said in May.  No dateparser
dependency: the phrases people use in chat are few, and each is a rule here —
month names (with or without a year, "last May"), years, seasons, "N days /
weeks / months / years ago", "yesterday", "last / this week / month / year",
and "before / after <any of those>" as an open window.  Anything else: no
window, so the query ranks as without one.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

Window = tuple[datetime | None, datetime | None]

MONTHS = {
    name: i
    for i, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        1,
    )
    for name in names
}
SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}
NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "couple of": 2,
    "few": 3,
}  # fmt: skip

_MONTH_RE = "|".join(sorted(MONTHS, key=len, reverse=True))
_NUM_RE = r"\d+|" + "|".join(sorted(NUMBERS, key=len, reverse=True))
_YEAR = r"(?:19|20)\d\d"

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "month_year",
        re.compile(rf"\b(?P<month>{_MONTH_RE})\.?(?:\s+of)?,?\s+(?P<year>{_YEAR})\b"),
    ),
    (
        "season_year",
        re.compile(
            rf"\b(?P<season>spring|summer|autumn|fall|winter)\s+(?:of\s+)?(?P<year>{_YEAR})\b"
        ),
    ),
    ("last_month_name", re.compile(rf"\blast\s+(?P<month>{_MONTH_RE})\b")),
    ("last_season", re.compile(r"\blast\s+(?P<season>spring|summer|autumn|fall|winter)\b")),
    ("ago", re.compile(rf"\b(?P<n>{_NUM_RE})\s+(?P<unit>day|week|month|year)s?\s+ago\b")),
    ("relative", re.compile(r"\b(?P<which>last|this|past)\s+(?P<unit>week|month|year)\b")),
    ("yesterday", re.compile(r"\byesterday\b")),
    ("year", re.compile(rf"\b(?:in|during|of|since|before|after)\s+(?P<year>{_YEAR})\b")),
    # A bare month name needs a preposition: "may" is also a verb.
    ("month", re.compile(rf"\b(?:in|during|since|before|after|early|late)\s+(?P<month>{_MONTH_RE})\b")),
]  # fmt: skip


def _month_start(year: int, month: int) -> datetime:
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)


def _month_window(year: int, month: int, months: int = 1) -> tuple[datetime, datetime]:
    return _month_start(year, month), _month_start(year, month + months)


def _latest_past(month: int, now: datetime, *, strictly_before: bool) -> int:
    """The year of the latest ``month`` at or before now (before this month if strict)."""
    if month < now.month or (month == now.month and not strictly_before):
        return now.year
    return now.year - 1


def _match_window(kind: str, m: re.Match[str], now: datetime) -> tuple[datetime, datetime] | None:
    g = m.groupdict()
    naive_now = now.replace(tzinfo=None)
    if kind == "month_year":
        return _month_window(int(g["year"]), MONTHS[g["month"]])
    if kind == "season_year":
        return _month_window(int(g["year"]), SEASONS[g["season"]], 3)
    if kind in ("last_month_name", "month"):
        month = MONTHS[g["month"]]
        return _month_window(_latest_past(month, naive_now, strictly_before=True), month)
    if kind == "last_season":
        start = SEASONS[g["season"]]
        year = naive_now.year if start + 2 < naive_now.month else naive_now.year - 1
        return _month_window(year, start, 3)
    if kind == "ago":
        n = int(g["n"]) if g["n"].isdigit() else NUMBERS[g["n"]]
        unit = g["unit"]
        if unit == "month":
            # _month_start carries a month <= 0 into the years before.
            return _month_window(naive_now.year, naive_now.month - n)
        if unit == "year":
            return datetime(naive_now.year - n, 1, 1), datetime(naive_now.year - n + 1, 1, 1)
        days = n * (7 if unit == "week" else 1)
        slack = timedelta(days=max(1, days // 3))  # "two weeks ago" is not to the day
        centre = naive_now - timedelta(days=days)
        return centre - slack, centre + slack
    if kind == "relative":
        unit, which = g["unit"], g["which"]
        if unit == "week":
            if which == "this":
                return naive_now - timedelta(days=naive_now.weekday()), naive_now + timedelta(1)
            return naive_now - timedelta(days=14), naive_now + timedelta(days=1)
        if unit == "month":
            if which == "this":
                return _month_window(naive_now.year, naive_now.month)
            if which == "past":
                return naive_now - timedelta(days=31), naive_now + timedelta(days=1)
            return _month_window(naive_now.year, naive_now.month - 1)
        if which == "this":
            return datetime(naive_now.year, 1, 1), datetime(naive_now.year + 1, 1, 1)
        if which == "past":
            return naive_now - timedelta(days=366), naive_now + timedelta(days=1)
        return datetime(naive_now.year - 1, 1, 1), datetime(naive_now.year, 1, 1)
    if kind == "yesterday":
        day = datetime(naive_now.year, naive_now.month, naive_now.day) - timedelta(days=1)
        return day, day + timedelta(days=1)
    if kind == "year":
        return datetime(int(g["year"]), 1, 1), datetime(int(g["year"]) + 1, 1, 1)
    return None


def time_window(query: str, now: datetime) -> Window | None:
    """The ``created_at`` window a question names, in ``now``'s time zone; None if none.

    "before X" / "after X" open the window on one side; the first expression
    found wins (questions rarely name two times)."""
    text = query.lower()
    for kind, pattern in _PATTERNS:
        m = pattern.search(text)
        if m is None:
            continue
        window = _match_window(kind, m, now)
        if window is None:
            continue
        start, end = (w.replace(tzinfo=now.tzinfo) for w in window)
        lead = text[max(0, m.start() - 8) : m.start()] + m.group(0)[:6]
        if re.search(r"\bbefore\b", lead):
            return None, start
        if re.search(r"\bafter\b", lead):
            return end, None
        if re.search(r"\bsince\b", lead):
            return start, None
        return start, end
    return None
