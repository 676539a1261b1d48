"""The Organic Response System's rules (pure, explicit clock): over simulated weeks
the gap, quiet hours and opt-outs are never violated, whatever the decider says."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clara_core.companion.boundaries import DAYS, Boundary, allowed_from, blocked_by
from clara_core.companion.ors import (
    MAX_CHECK,
    MIN_CHECK,
    Action,
    Decision,
    Note,
    OrsRules,
    QuietHours,
    UserOrs,
    due_notes,
    in_quiet_hours,
    next_check,
    note_relevance,
    settle,
    speak_gap,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday
WEEK = timedelta(days=7)
Decider = Callable[[UserOrs, datetime, list[Note]], Decision]


def always_speak(user: UserOrs, now: datetime, notes: list[Note]) -> Decision:
    """The most eager decider possible: the rules alone must hold it back."""
    return Decision(Action.SPEAK, "eager", message=f"hi {user.user_id}")


def simulate(
    users: list[UserOrs],
    rules: OrsRules,
    decide: Decider,
    *,
    answers: Callable[[str], bool] = lambda u: False,
    notes: dict[str, list[Note]] | None = None,
    days: float = 7,
) -> dict[str, list[datetime]]:
    """Run the check loop as the scheduler will; returns each user's send times."""
    state = {u.user_id: u for u in users}
    notes = notes or {}
    sent: dict[str, list[datetime]] = {u.user_id: [] for u in users}
    queue = [(T0, u.user_id) for u in users]
    heapq.heapify(queue)
    end = T0 + timedelta(days=days)
    while queue:
        now, uid = heapq.heappop(queue)
        if now >= end:
            continue
        user = state[uid]
        # Users who answer write back ten minutes after each proactive message.
        last = user.last_proactive_at
        answered = user.last_user_message_at is not None and user.last_user_message_at >= (
            last or now
        )
        if (
            last is not None
            and answers(uid)
            and now >= last + timedelta(minutes=10)
            and not answered
        ):
            user = replace(user, last_user_message_at=last + timedelta(minutes=10), unanswered=0)
        decision = settle(decide(user, now, notes.get(uid, [])), user, now, rules)
        if decision.action is Action.SPEAK:
            sent[uid].append(now)
            user = replace(user, last_proactive_at=now, unanswered=user.unanswered + 1)
        state[uid] = user
        at = next_check(decision, user, now, rules, notes.get(uid, []))
        assert MIN_CHECK <= at - now <= MAX_CHECK + timedelta(seconds=1)
        heapq.heappush(queue, (at, uid))
    return sent


def user(uid: str, **kw) -> UserOrs:
    kw.setdefault("last_user_message_at", T0 - timedelta(hours=1))
    return UserOrs(uid, **kw)


RULES = OrsRules(
    timezone="Europe/Berlin",
    min_speak_gap=timedelta(hours=2),
    quiet_hours=QuietHours.parse("22:00-08:00"),
)


def test_a_week_never_breaks_the_gap_quiet_hours_or_opt_outs():
    users = [
        user("alice", opted_in=True),
        user("bob", opted_in=True),
        user("carol", opted_in=False, talked_in_dm=True),  # opted out
        user("dave"),  # never chose, never wrote in a DM: off by default
        user("erin", talked_in_dm=True),  # never chose, talks in DMs: on
    ]
    sent = simulate(users, RULES, always_speak, answers=lambda u: u in ("alice", "erin"))
    for uid, times in sent.items():
        for a, b in itertools.pairwise(times):
            assert b - a >= RULES.min_speak_gap, (uid, a, b)
        assert not any(in_quiet_hours(t, RULES) for t in times), uid
    assert sent["carol"] == [] and sent["dave"] == []
    assert sent["erin"] and sent["alice"]
    # Bob never answers: he hears from her ever more rarely.
    assert 0 < len(sent["bob"]) < len(sent["alice"]) / 3
    gaps = [b - a for a, b in itertools.pairwise(sent["bob"])]
    for k, gap in enumerate(gaps):  # doubling per unanswered message, up to 16x
        assert gap >= RULES.min_speak_gap * 2 ** min(k + 1, 4)


def test_default_on_includes_those_who_never_chose_but_not_those_who_opted_out():
    rules = replace(RULES, default_on=True)
    sent = simulate([user("dave"), user("carol", opted_in=False)], rules, always_speak, days=1)
    assert sent["dave"] and sent["carol"] == []


def test_inactive_users_are_left_alone():
    quiet = user("zed", opted_in=True, last_user_message_at=T0 - timedelta(days=8))
    assert simulate([quiet], RULES, always_speak) == {"zed": []}


def test_interview_tomorrow_at_10_leads_to_a_speak_after_it_not_before():
    said_on = T0.replace(hour=18)  # Monday evening: "interview tomorrow at 10"
    interview_end = datetime(2026, 11, 24, 10, 0, tzinfo=UTC) + timedelta(hours=1)
    note = Note(
        "event",
        "interview tomorrow at 10 (Berlin)",
        relevance=0.9,
        created_at=said_on,
        not_before=interview_end,
        expires_at=interview_end + timedelta(days=2),
    )

    def speak_when_a_note_is_due(u: UserOrs, now: datetime, notes: list[Note]) -> Decision:
        due = due_notes(notes, now, RULES)
        if due:
            return Decision(Action.SPEAK, "follow up", message=f"How did it go? ({due[0][0].text})")
        return Decision(Action.WAIT, "nothing due")

    sent = simulate(
        [user("alice", opted_in=True)],
        RULES,
        speak_when_a_note_is_due,
        notes={"alice": [note]},
        days=2,
    )
    first = sent["alice"][0]
    assert interview_end <= first <= interview_end + MIN_CHECK  # checked right when due


def test_a_note_decays_linearly_and_is_gone_when_expired():
    note = Note("observation", "seems stressed", 0.8, T0, expires_at=T0 + timedelta(days=3))
    assert note_relevance(note, T0, RULES) == 0.8
    assert note_relevance(note, T0 + timedelta(days=3.5 / 2), RULES) == pytest.approx(0.6)
    assert note_relevance(note, T0 + timedelta(days=3), RULES) == 0.0  # expired
    lasting = replace(note, expires_at=None)
    assert note_relevance(lasting, T0 + timedelta(days=7), RULES) == 0.0  # ORS_NOTE_DECAY_DAYS
    assert due_notes([lasting], T0 + timedelta(days=8), RULES) == []


def test_a_blocked_speak_is_kept_as_a_note_or_dropped():
    too_soon = user("a", opted_in=True, last_proactive_at=T0 - timedelta(minutes=30))
    thought = settle(always_speak(too_soon, T0, []), too_soon, T0, RULES)
    assert thought.action is Action.THINK and thought.note is not None
    assert "too soon" in thought.reason and thought.note.text == "hi a"
    out = user("b", opted_in=False)
    assert settle(always_speak(out, T0, []), out, T0, RULES).action is Action.WAIT


def test_quiet_hours_parse_and_say_what_is_wrong():
    q = QuietHours.parse("23:30-07:15")
    assert q is not None and q.contains(datetime(2026, 1, 1, 0, 0).time())
    assert not q.contains(datetime(2026, 1, 1, 12, 0).time())
    assert QuietHours.parse("") is None and QuietHours.parse("off") is None
    for bad in ("22-08", "25:00-08:00", "08:00-08:00"):
        with pytest.raises(ValueError, match="quiet hours"):
            QuietHours.parse(bad)


def test_backoff_is_bounded():
    assert speak_gap(user("a", unanswered=50), RULES) == RULES.min_speak_gap * 16


@settings(max_examples=40, deadline=None)
@given(
    gap_h=st.floats(0.25, 8),
    quiet=st.one_of(
        st.none(),
        st.tuples(st.integers(0, 23), st.integers(0, 23)).filter(lambda t: t[0] != t[1]),
    ),
    tz=st.sampled_from(["UTC", "Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata"]),
    seed=st.integers(0, 10_000),
)
def test_no_decider_can_break_the_rules(gap_h, quiet, tz, seed):
    rules = OrsRules(
        timezone=tz,
        min_speak_gap=timedelta(hours=gap_h),
        quiet_hours=QuietHours.parse(f"{quiet[0]:02d}:00-{quiet[1]:02d}:00") if quiet else None,
    )
    rng = random.Random(seed)

    def erratic(u: UserOrs, now: datetime, notes: list[Note]) -> Decision:
        action = rng.choice(list(Action))
        return Decision(action, "random", message="hello" if rng.random() < 0.9 else "")

    users = [
        user("in", opted_in=True),
        user("out", opted_in=False),
        user("dm", talked_in_dm=True),
        user("none"),
    ]
    sent = simulate(users, rules, erratic, answers=lambda u: rng.random() < 0.5)
    for times in sent.values():
        for a, b in itertools.pairwise(times):
            assert b - a >= rules.min_speak_gap
        assert not any(in_quiet_hours(t, rules) for t in times)
    assert sent["out"] == [] and sent["none"] == []


def test_ors_quiet_hours_setting_is_checked_at_startup():
    from clara_core.config import load_settings
    from clara_core.errors import ConfigError

    assert load_settings(env_file=None).ors_quiet_hours == "22:00-08:00"
    assert load_settings(env_file=None, ors_quiet_hours="off").ors_quiet_hours == "off"
    with pytest.raises(ConfigError, match="ORS_QUIET_HOURS"):
        load_settings(env_file=None, ors_quiet_hours="25:00-1")


# -- stated boundaries (/clara boundary) ----------------------------------------


@pytest.mark.parametrize(
    ("words", "enforced"),
    [
        ("not before 10:00", "not before 10:00"),
        ("Please don't message me before 9am", "not before 09:00"),
        ("nothing after 21:30", "not after 21:30"),
        ("no messages after 8 pm", "not after 20:00"),
        ("only between 10 and 18", "not before 10:00, not after 18:00"),
        ("no weekends", "not on weekends"),
        ("weekdays only, and not before 10:00", "not before 10:00, not on weekends"),
        ("only on weekends", "only on weekends"),
        ("never on Mondays", "not on Monday"),
        ("only about work", ""),
        ("don't bring up my ex", ""),
        ("only between 22:00 and 02:00", ""),  # not one window: words only, nothing guessed
        ("not before 25:00", ""),  # not a time of day
    ],
)
def test_the_hours_and_days_in_a_boundary_are_read_from_its_words(words, enforced):
    b = Boundary.parse(words)
    assert b.describe() == enforced
    assert b.enforced == bool(enforced)
    assert b.text == words
    assert Boundary.from_json(b.to_json()) == b  # stored and read back unchanged


def test_a_boundary_stored_as_bare_words_stays_words_only():
    assert Boundary.from_json("only about work") == Boundary("only about work")
    assert not Boundary.from_json({"text": "x", "not_before": "garbage", "days_off": [9]}).enforced


def test_a_speak_outside_the_users_hours_becomes_a_note_for_later():
    b = Boundary.parse("not before 10:00")
    u = user("alice", opted_in=True, boundaries=(b,))
    early = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)  # Tuesday 09:30 in Berlin
    settled = settle(always_speak(u, early, []), u, early, RULES)
    assert settled.action is Action.THINK and "not before 10:00" in settled.reason
    assert settled.note is not None and settled.note.text == "hi alice"
    # The next look is when a message may go out, not before.
    at = next_check(settled, u, early, RULES)
    assert at == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 10:00 Berlin
    assert blocked_by((b,), at, RULES.tz) is None


def test_allowed_from_finds_the_next_moment_no_boundary_forbids():
    tz = RULES.tz
    bs = (Boundary.parse("no weekends"), Boundary.parse("not before 10:00, not after 18:00"))
    friday_evening = datetime(2026, 11, 27, 19, 0, tzinfo=tz)
    assert allowed_from(bs, friday_evening, tz) == datetime(2026, 11, 30, 10, 0, tzinfo=tz)
    inside = datetime(2026, 11, 30, 12, 0, tzinfo=tz)
    assert allowed_from(bs, inside, tz) == inside
    every_day = tuple(Boundary.parse(f"never on {d}") for d in DAYS)
    assert allowed_from(every_day, inside, tz) == inside + timedelta(days=7)  # no moment: capped


@settings(max_examples=40, deadline=None)
@given(
    not_before=st.integers(0, 12),
    span=st.integers(1, 11),
    days_off=st.frozensets(st.integers(0, 6), max_size=5),
    tz=st.sampled_from(["UTC", "Europe/Berlin", "America/Los_Angeles"]),
    seed=st.integers(0, 10_000),
)
def test_no_decider_can_break_a_stated_boundary(not_before, span, days_off, tz, seed):
    rules = OrsRules(timezone=tz, min_speak_gap=timedelta(hours=1))
    window = Boundary("my hours", not_before=time(not_before), not_after=time(not_before + span))
    off = Boundary("my days", days_off=days_off)
    rng = random.Random(seed)

    def erratic(u: UserOrs, now: datetime, notes: list[Note]) -> Decision:
        return Decision(rng.choice(list(Action)), "random", message="hello")

    users = [
        user("a", opted_in=True, boundaries=(window, off)),
        user("b", opted_in=True, boundaries=(Boundary("only about work"),)),
    ]
    sent = simulate(users, rules, erratic, answers=lambda u: True, days=14)
    for t in sent["a"]:
        local = t.astimezone(rules.tz)
        assert local.weekday() not in days_off
        assert time(not_before) <= local.time() < time(not_before + span)
    assert sent["b"]  # a boundary in words only is the model's to honour, not the rules'


def test_an_eager_decider_speaks_only_inside_the_users_hours_and_days():
    b = Boundary.parse("weekdays only, not before 10:00 and not after 12:00")
    sent = simulate(
        [user("a", opted_in=True, boundaries=(b,))], RULES, always_speak, answers=lambda u: True
    )
    assert len(sent["a"]) >= 5  # every weekday of the week, within the window
    for t in sent["a"]:
        local = t.astimezone(RULES.tz)
        assert local.weekday() < 5 and time(10) <= local.time() < time(12), local
