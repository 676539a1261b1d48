"""The hormone model: a pure state machine driven by an explicit clock."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from clara_core.companion.chart import curve
from clara_core.companion.describe import GUARD, SHORTER, TEMPERATURE_MAX, TEMPERATURE_MIN, describe
from clara_core.companion.events import stimulus_from_text
from clara_core.companion.hormones import (
    CORTISOL,
    CURIOSITY,
    DOPAMINE,
    HORMONES,
    MELATONIN,
    OXYTOCIN,
    PATIENCE,
    SEROTONIN,
    HormoneModel,
    HormoneState,
    Stimulus,
    levels_from,
)
from clara_core.pipeline.mood import MoodService
from tests.support.clock import Clock

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
BERLIN = HormoneModel("Europe/Berlin")
FLAT = HormoneModel("UTC", circadian=False)

level = st.floats(0.0, 1.0, allow_nan=False)
levels_st = st.tuples(level, level, level, level, level, level, level, level)
stimuli = st.builds(
    Stimulus,
    sentiment=st.floats(-5, 5, allow_nan=False),
    intensity=st.floats(-1, 3, allow_nan=False),
    mention=st.booleans(),
    praise=st.booleans(),
    conflict=st.booleans(),
    question=st.booleans(),
    novelty=st.floats(-1, 3, allow_nan=False),
)
# Gaps from a burst (< 10 s) to more than the simulated horizon (14 days).
gaps = st.floats(0, 20 * 24 * 3600, allow_nan=False)
zones = st.sampled_from(
    ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu"]
)


def close(a, b, tol=1e-9) -> bool:
    return all(math.isclose(x, y, abs_tol=tol) for x, y in zip(a, b, strict=True))


# -- properties -----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    start=levels_st, events=st.lists(st.tuples(gaps, stimuli, st.booleans()), max_size=30), tz=zones
)
def test_levels_always_stay_in_0_1(start, events, tz):
    model = HormoneModel(tz)
    state = HormoneState(start, T0)
    t = T0
    for gap, stimulus, clara_spoke in events:
        t += timedelta(seconds=gap)
        state = model.spoke(state, t) if clara_spoke else model.react(state, stimulus, t)
        assert all(0.0 <= x <= 1.0 for x in state.levels), state


@settings(max_examples=100, deadline=None)
@given(start=levels_st)
def test_without_events_every_level_converges_to_its_flat_baseline(start):
    # A week is 42 half-lives of the slowest hormone (serotonin, 4 h).
    state = FLAT.advance(HormoneState(start, T0), T0 + timedelta(days=7))
    assert close(state.levels, FLAT.baseline(T0), tol=1e-6)


@settings(max_examples=100, deadline=None)
@given(a=levels_st, b=levels_st, tz=zones, hours=st.floats(0, 23.99))
def test_with_a_daily_rhythm_every_start_converges_to_the_same_baseline_trajectory(a, b, tz, hours):
    model = HormoneModel(tz)
    end = T0 + timedelta(days=7, hours=hours)
    x = model.advance(HormoneState(a, T0), end).levels
    y = model.advance(HormoneState(b, T0), end).levels
    assert close(x, y, tol=1e-6)
    # ...and that trajectory stays within the day's range of baselines.
    day = [model.baseline(end - timedelta(hours=h)) for h in range(24)]
    for i in range(8):
        assert min(d[i] for d in day) - 1e-9 <= x[i] <= max(d[i] for d in day) + 1e-9


@settings(max_examples=200, deadline=None)
@given(
    start=levels_st,
    total=st.floats(0, 30 * 24 * 3600, allow_nan=False),
    cuts=st.lists(st.floats(0, 1), max_size=12),
    tz=zones,
)
def test_result_does_not_depend_on_how_time_is_chopped(start, total, cuts, tz):
    model = HormoneModel(tz)
    end = T0 + timedelta(seconds=total)
    once = model.advance(HormoneState(start, T0), end)
    state = HormoneState(start, T0)
    for c in sorted(cuts):
        state = model.advance(state, T0 + timedelta(seconds=total * c))
    state = model.advance(state, end)
    # 1e-9: float rounding; beyond 14 days the horizon adds < 2^-84.
    assert close(once.levels, state.levels, tol=1e-9)
    assert state.at == once.at == end


texts = st.sampled_from(
    [
        "hi Clara",
        "thank you!",
        "shut up, useless",
        "what is this? https://x.org",
        "ugh, bad day",
        "ok",
    ]
)


@settings(max_examples=60, deadline=None)
@given(
    a_events=st.lists(st.tuples(gaps, texts), max_size=12),
    b_events=st.lists(st.tuples(gaps, texts), max_size=12),
)
def test_two_channels_never_affect_each_other(a_events, b_events):
    """Through the pipeline's MoodService: channel a's mood is the same whether or
    not channel b (and a DM) is busy at the same time."""

    async def run(with_other: bool) -> HormoneState:
        clock = Clock(T0)
        service = MoodService(BERLIN, None, clock)
        a = [(g, "a", t) for g, t in a_events]
        b = [(g, "b", t) for g, t in b_events] if with_other else []
        timeline: list[tuple[datetime, str, str]] = []
        for events in (a, b):
            t = T0
            for gap, scope, text in events:
                t += timedelta(seconds=gap)
                timeline.append((t, scope, text))
        timeline.sort(key=lambda e: (e[0], e[1]))
        for when, scope, text in timeline:
            clock.now = when
            await service.on_message(f"channel:{scope}", text, user_id="u1", owner=None)
            await service.on_reply(f"channel:{scope}")
            await service.on_message("user:u1", text, user_id="u1", owner="u1")
        clock.now = T0 + timedelta(days=30)
        return await service.current("channel:a")

    assert asyncio.run(run(False)) == asyncio.run(run(True))


# -- dynamics -------------------------------------------------------------------


def test_baselines_follow_the_time_of_day_in_the_configured_zone():
    berlin_8am = datetime(2026, 11, 22, 7, 30, tzinfo=UTC)  # 08:30 in Berlin (CET)
    berlin_3am = datetime(2026, 11, 22, 2, 30, tzinfo=UTC)
    morning, night = BERLIN.baseline(berlin_8am), BERLIN.baseline(berlin_3am)
    evening = BERLIN.baseline(datetime(2026, 11, 22, 20, 30, tzinfo=UTC))  # 21:30
    assert morning[CORTISOL] > evening[CORTISOL] + 0.2  # cortisol high in the morning
    assert morning[CORTISOL] > night[CORTISOL]
    noon = BERLIN.baseline(datetime(2026, 11, 22, 12, 30, tzinfo=UTC))
    assert night[MELATONIN] > noon[MELATONIN] + 0.4  # melatonin at night
    assert night[MELATONIN] > morning[MELATONIN] > noon[MELATONIN]
    # The same instant is night in New York: the zone decides, not UTC.
    assert HormoneModel("America/New_York").baseline(berlin_8am)[MELATONIN] > morning[MELATONIN]


def test_decay_is_exponential_with_the_stated_half_life():
    start = list(FLAT.baseline(T0))
    base = start[DOPAMINE]
    start[DOPAMINE] = base + 0.4
    after = FLAT.advance(HormoneState(tuple(start), T0), T0 + timedelta(minutes=45)).levels
    assert math.isclose(after[DOPAMINE] - base, 0.2, rel_tol=1e-9)  # dopamine: 45 min


def test_a_clock_going_backwards_changes_nothing():
    state = BERLIN.react(BERLIN.initial(T0), Stimulus(sentiment=1, praise=True), T0)
    assert BERLIN.advance(state, T0 - timedelta(hours=1)) == state


def test_praise_rewards_and_conflict_stresses():
    rest = FLAT.initial(T0)
    praised = FLAT.react(rest, stimulus_from_text("Thank you, that was amazing!"), T0).levels
    attacked = FLAT.react(
        rest, stimulus_from_text("Shut up, you're useless and stupid!"), T0
    ).levels
    assert praised[DOPAMINE] > rest.levels[DOPAMINE] + 0.1
    assert praised[OXYTOCIN] > rest.levels[OXYTOCIN] and praised[SEROTONIN] > rest.levels[SEROTONIN]
    assert attacked[CORTISOL] > rest.levels[CORTISOL] + 0.15
    assert (
        attacked[PATIENCE] < rest.levels[PATIENCE] and attacked[SEROTONIN] < rest.levels[SEROTONIN]
    )


def test_high_cortisol_lowers_serotonin_and_patience_boundedly():
    calm = list(FLAT.baseline(T0))
    stressed = list(calm)
    stressed[CORTISOL] = 0.95
    neutral = Stimulus()
    after_calm = FLAT.react(HormoneState(tuple(calm), T0), neutral, T0).levels
    after_stressed = FLAT.react(HormoneState(tuple(stressed), T0), neutral, T0).levels
    assert after_stressed[SEROTONIN] < after_calm[SEROTONIN]
    assert after_stressed[PATIENCE] < after_calm[PATIENCE]
    # Bounded: at most 10 % of serotonin and 12 % of patience per event.
    assert after_stressed[SEROTONIN] >= 0.9 * after_calm[SEROTONIN] - 1e-12
    assert after_stressed[PATIENCE] >= 0.88 * after_calm[PATIENCE] - 1e-12


def test_being_ignored_stings_and_a_long_silence_refreshes():
    rest = FLAT.initial(T0)
    replied = FLAT.spoke(FLAT.react(rest, Stimulus(), T0), T0 + timedelta(seconds=5))
    quick = FLAT.react(replied, Stimulus(), T0 + timedelta(minutes=2)).levels
    ignored = FLAT.react(replied, Stimulus(), T0 + timedelta(hours=2)).levels
    silence = FLAT.react(replied, Stimulus(), T0 + timedelta(hours=12)).levels
    assert ignored[OXYTOCIN] < quick[OXYTOCIN] - 0.01
    assert silence[CURIOSITY] > ignored[CURIOSITY] and silence[OXYTOCIN] > ignored[OXYTOCIN]


def test_a_burst_of_messages_wears_on_patience():
    state = FLAT.initial(T0)
    for i in range(10):
        state = FLAT.react(state, Stimulus(), T0 + timedelta(seconds=2 * i))
    assert state.levels[PATIENCE] < FLAT.baseline(T0)[PATIENCE] - 0.15


def test_heuristic_reads_negation_questions_and_links():
    assert stimulus_from_text("this is not good").sentiment < 0
    assert stimulus_from_text("what a great day").sentiment > 0
    s = stimulus_from_text("did you see https://example.org ?")
    assert s.question and s.novelty >= 0.5
    assert stimulus_from_text("I AM SO ANGRY RIGHT NOW!!!").intensity > 0.8


def test_levels_from_a_damaged_row_fall_back_per_hormone():
    fallback = FLAT.baseline(T0)
    got = levels_from(
        {"dopamine": 0.9, "serotonin": "x", "oxytocin": float("nan"), "cortisol": 7}, fallback
    )
    assert got[DOPAMINE] == 0.9 and got[SEROTONIN] == fallback[SEROTONIN]
    assert got[OXYTOCIN] == fallback[OXYTOCIN] and got[CORTISOL] == 1.0


# -- the prompt section -----------------------------------------------------------


def test_mood_section_names_strong_feelings_and_keeps_the_guard():
    base = FLAT.baseline(T0)
    tense = list(base)
    tense[CORTISOL], tense[PATIENCE] = 0.9, 0.2
    hint = describe(tuple(tense), base)
    assert "tense" in hint.text and "short on patience" in hint.text
    assert SHORTER in hint.text and GUARD in hint.text and hint.shorter
    even = describe(base, base)
    assert "usual self" in even.text and GUARD in even.text and not even.shorter
    assert len(hint.text) < 500  # a short section, not a report


@given(levels=levels_st)
def test_temperature_wish_stays_within_bounds(levels):
    t = describe(levels, FLAT.baseline(T0)).temperature
    assert TEMPERATURE_MIN <= t <= TEMPERATURE_MAX


def test_chart_curve_replays_decay_between_changes():
    hot = list(FLAT.baseline(T0))
    hot[DOPAMINE] = 1.0
    points = [(T0, dict(zip(HORMONES, hot, strict=True)))]
    data = curve(FLAT, points, T0 - timedelta(hours=1), T0 + timedelta(hours=3))
    dop = data.series["dopamine"]
    at_t0 = data.times.index(T0)
    assert dop[0] == FLAT.baseline(T0)[DOPAMINE]  # before the change: resting
    assert dop[at_t0] == 1.0
    assert all(
        a > b for a, b in zip(dop[at_t0:-1], dop[at_t0 + 1 :], strict=True)
    )  # decays, never jumps
    assert data.times[-1] == T0 + timedelta(hours=3)
    assert len(data.series) == 8 and data.series["curiosity"][0] == FLAT.baseline(T0)[CURIOSITY]
