"""The Organic Response System's rules, as pure functions with an explicit clock.

What is here: who may be written to at all (opt-in), when Clara must stay
quiet (quiet hours, the minimum gap, backing off a user who stops answering),
how a note's relevance decays, which notes are due, how a model's WAIT /
THINK / SPEAK decision is settled against those rules, and when to look at
the user next (5 minutes to 8 hours).

Gathering the context, asking the model, the tables and the scheduler live in
``pipeline/proactive.py`` and ``storage/proactive.py``.  Whatever decides — a
model, a test's script — its SPEAK goes through :func:`settle`, so the
guarantees (never sooner than the gap, never in quiet hours, never outside the
hours and days the user allowed with ``/clara boundary``, never to someone who
opted out) hold whatever the decider says.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from .boundaries import Boundary, allowed_from, blocked_by


class Action(StrEnum):
    WAIT = "wait"  # nothing to do; keep gathering context
    THINK = "think"  # something is brewing: file a note for later
    SPEAK = "speak"  # a clear reason to reach out now


#: The adaptive check interval's bounds (spec: "5 min to 8 hours").
MIN_CHECK = timedelta(minutes=5)
MAX_CHECK = timedelta(hours=8)
#: Each proactive message left unanswered doubles the gap, up to 2^4 = 16×:
#: someone who stopped answering hears from her rarely, not never.
MAX_BACKOFF_DOUBLINGS = 4

_QUIET = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class QuietHours:
    """A daily local-time window without proactive messages; may cross midnight."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str | None) -> QuietHours | None:
        """``"22:00-08:00"``; ``"off"`` (or empty) means none.  ValueError says what is wrong."""
        if text is None or text.strip().lower() in ("", "off", "none"):
            return None
        m = _QUIET.match(text)
        if m is None:
            raise ValueError(f"quiet hours must look like 22:00-08:00, not {text!r}")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise ValueError(f"quiet hours must be times of day (00:00-23:59), not {text!r}")
        if (h1, m1) == (h2, m2):
            raise ValueError(f"quiet hours {text!r} start and end at the same time")
        return cls(time(h1, m1), time(h2, m2))

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # across midnight

    def ends_after(self, now: datetime, tz: ZoneInfo) -> datetime:
        """The first moment after ``now`` outside the window (``now`` is inside it)."""
        local = now.astimezone(tz)
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        return end.astimezone(now.tzinfo)


@dataclass(frozen=True)
class OrsRules:
    timezone: str = "UTC"
    min_speak_gap: timedelta = timedelta(hours=2)
    quiet_hours: QuietHours | None = None
    active_days: int = 7
    note_decay_days: int = 7
    base_interval: timedelta = timedelta(minutes=15)
    default_on: bool = False
    _tz: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tz", ZoneInfo(self.timezone))

    @property
    def tz(self) -> ZoneInfo:
        return self._tz


@dataclass(frozen=True)
class UserOrs:
    """What the rules need to know about one user."""

    user_id: str
    opted_in: bool | None = None  # /clara proactive on|off; None: never chose
    talked_in_dm: bool = False
    last_user_message_at: datetime | None = None
    last_proactive_at: datetime | None = None
    #: Proactive messages sent since the user last wrote anything.
    unanswered: int = 0
    #: What the user stated (``/clara boundary``); the hours and days are enforced here.
    boundaries: tuple[Boundary, ...] = ()


@dataclass(frozen=True)
class Note:
    kind: str  # e.g. "event", "follow_up", "observation"
    text: str
    relevance: float  # at creation, in [0, 1]
    created_at: datetime
    expires_at: datetime | None = None
    #: Not a reason to speak before this (the interview is at 10: ask after it).
    not_before: datetime | None = None
    source_message_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    message: str | None = None  # SPEAK: what to send
    note: Note | None = None  # THINK: what to file


def allowed(user: UserOrs, rules: OrsRules) -> bool:
    """Opted in, or never chose and either ORS_DEFAULT_ON or they talk to her in DMs."""
    if user.opted_in is not None:
        return user.opted_in
    return rules.default_on or user.talked_in_dm


def active(user: UserOrs, now: datetime, rules: OrsRules) -> bool:
    last = user.last_user_message_at
    return last is not None and now - last <= timedelta(days=rules.active_days)


def speak_gap(user: UserOrs, rules: OrsRules) -> timedelta:
    """The minimum gap, doubled per unanswered proactive message (bounded)."""
    return rules.min_speak_gap * (2 ** min(max(user.unanswered, 0), MAX_BACKOFF_DOUBLINGS))


def in_quiet_hours(now: datetime, rules: OrsRules) -> bool:
    q = rules.quiet_hours
    return q is not None and q.contains(now.astimezone(rules.tz).time())


def wait_blocker(user: UserOrs, now: datetime, rules: OrsRules) -> str | None:
    """Why there is nothing to decide about ``user`` now (no model call): not opted
    in, inactive, quiet hours, or outside the user's own times; ``None`` otherwise."""
    if not allowed(user, rules):
        return "not opted in"
    if not active(user, now, rules):
        return "inactive"
    if in_quiet_hours(now, rules):
        return "quiet hours"
    if (b := blocked_by(user.boundaries, now, rules.tz)) is not None:
        return f"outside the times the user allows ({b.describe()})"
    return None


def speak_blocker(user: UserOrs, now: datetime, rules: OrsRules) -> str | None:
    """Why Clara may not write to ``user`` now; ``None`` when she may."""
    if (why := wait_blocker(user, now, rules)) is not None:
        return why
    if user.last_proactive_at is not None and now - user.last_proactive_at < speak_gap(user, rules):
        return "too soon after the last proactive message"
    return None


def note_relevance(note: Note, now: datetime, rules: OrsRules) -> float:
    """Linear decay to zero over ORS_NOTE_DECAY_DAYS; zero once expired."""
    if note.expires_at is not None and now >= note.expires_at:
        return 0.0
    age = max(0.0, (now - note.created_at).total_seconds())
    span = rules.note_decay_days * 86400.0
    return max(0.0, min(1.0, note.relevance) * (1.0 - age / span))


def due_notes(notes: Sequence[Note], now: datetime, rules: OrsRules) -> list[tuple[Note, float]]:
    """Notes that may be a reason to speak now, most relevant first."""
    due = [
        (n, r)
        for n in notes
        if (n.not_before is None or now >= n.not_before)
        and (r := note_relevance(n, now, rules)) > 0
    ]
    return sorted(due, key=lambda nr: nr[1], reverse=True)


def settle(decision: Decision, user: UserOrs, now: datetime, rules: OrsRules) -> Decision:
    """The decider's choice, within the rules: a SPEAK that may not happen now
    becomes a THINK (its reason kept as a note for later) or a WAIT."""
    if decision.action is not Action.SPEAK:
        return decision
    blocker = speak_blocker(user, now, rules)
    if blocker is None and decision.message and decision.message.strip():
        return decision
    why = blocker or "no message to send"
    if blocker in ("not opted in", "inactive"):
        return Decision(Action.WAIT, f"wanted to speak, but {why}")
    return Decision(
        Action.THINK,
        f"wanted to speak, but {why}",
        note=Note(
            "follow_up",
            decision.message or decision.reason,
            relevance=0.6,
            created_at=now,
            source_message_ids=(),
        ),
    )


def next_check(
    decision: Decision,
    user: UserOrs,
    now: datetime,
    rules: OrsRules,
    notes: Sequence[Note] = (),
) -> datetime:
    """When to look at this user again: sooner while something is brewing or a
    note comes due, later when there is nothing to do or nobody to talk to."""
    if not allowed(user, rules) or not active(user, now, rules):
        delay = MAX_CHECK
    elif decision.action is Action.SPEAK:
        delay = speak_gap(user, rules)  # nothing can be sent before then anyway
    elif decision.action is Action.THINK:
        delay = rules.base_interval
    else:
        delay = rules.base_interval * 4  # nothing going on: look again in an hour or so
    at = now + max(MIN_CHECK, min(MAX_CHECK, delay))
    if in_quiet_hours(at, rules) and rules.quiet_hours is not None:
        at = min(now + MAX_CHECK, rules.quiet_hours.ends_after(at, rules.tz))
    if user.boundaries:  # no point looking while the user's own hours forbid a message
        at = min(now + MAX_CHECK, allowed_from(user.boundaries, at, rules.tz))
    upcoming = [n.not_before for n in notes if n.not_before is not None and n.not_before > now]
    if upcoming:
        at = min(at, max(now + MIN_CHECK, min(upcoming)))
    return at
