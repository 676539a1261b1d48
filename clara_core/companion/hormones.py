"""The hormone model: eight levels in [0, 1] per channel, as a pure state machine.

Nothing here reads a clock, a database or the network: every function takes
the time it should compute for, so tests drive it with a fake clock and the
result is the same however often it is asked.

Dynamics
--------
* Between events every level relaxes toward its *baseline* with the closed
  form ``b + (x - b)·exp(-k·dt)`` over the real elapsed time.  The baseline
  follows the local time of day (CLARA_TIMEZONE) and is constant within each
  local hour, so a long gap is integrated hour by hour, exactly: chopping the
  same elapsed time into different steps gives the same result (to float
  rounding), which the property tests check.
* Each message is a *stimulus* (sentiment, intensity, mention, praise,
  conflict, question, novelty) plus what the timing says (being ignored, a
  long silence, a burst).  Deltas are applied with saturation
  (``x + d·(1 - x)`` up, ``x + d·x`` down), so no sequence of events can leave
  [0, 1].
* Cross-effects are bounded and applied at event time only (so the decay
  stays closed-form): cortisol above a threshold takes a fraction of the
  excess out of serotonin and patience.

The rationale of each constant is the comment beside it (the SEL notes ask
for this: hormone math changes personality).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

HORMONES: tuple[str, ...] = (
    "dopamine",
    "serotonin",
    "oxytocin",
    "cortisol",
    "melatonin",
    "novelty",
    "curiosity",
    "patience",
)
DOPAMINE, SEROTONIN, OXYTOCIN, CORTISOL, MELATONIN, NOVELTY, CURIOSITY, PATIENCE = range(8)

Levels = tuple[float, float, float, float, float, float, float, float]


@dataclass(frozen=True, slots=True)
class Rhythm:
    """A hormone's baseline over the day: ``mid + amp·cos(2π(h - peak)/24)``."""

    mid: float
    amp: float
    peak_hour: float
    half_life_min: float


#: Per hormone: daily baseline and how fast it returns to it.
RHYTHMS: tuple[Rhythm, ...] = (
    # dopamine: engagement/reward.  Mid-level so both praise and being ignored
    # show; a gentle afternoon peak (people are most active then).  Fast
    # half-life (45 min): excitement from one exchange should not last all day.
    Rhythm(0.50, 0.08, 15.0, 45.0),
    # serotonin: general contentment.  Slightly positive resting mood (0.55);
    # slow (4 h) because well-being should carry over a bad message or two.
    Rhythm(0.55, 0.08, 13.0, 240.0),
    # oxytocin: closeness.  Lowish rest (0.40): closeness is earned by talk;
    # an evening peak (20 h) when conversations are the most personal.  3 h.
    Rhythm(0.40, 0.05, 20.0, 180.0),
    # cortisol: stress/urgency.  The morning rise (cortisol awakening
    # response, peak 8 h) and a low at night; 90 min is roughly the
    # hormone's clearance half-life, so a spat is over within a few hours.
    Rhythm(0.35, 0.15, 8.0, 90.0),
    # melatonin: rest drive.  High at night (peak 2 h), near zero midday,
    # which is what makes her sleepy at 3 am.  1 h: it follows the clock closely.
    Rhythm(0.30, 0.28, 2.0, 60.0),
    # novelty: exposure to something new.  Low at rest (0.25): novelty is a
    # spike, not a mood; 30 min so the same thing stops being new soon.
    Rhythm(0.25, 0.0, 0.0, 30.0),
    # curiosity: the drive to ask.  Late-morning peak (11 h) when thinking is
    # sharpest; 2 h so an interesting thread keeps her asking for a while.
    Rhythm(0.50, 0.08, 11.0, 120.0),
    # patience: tolerance for bursts and repetition.  Comfortable rest (0.65)
    # with a morning high; 2 h so a burst of pings wears off over an evening.
    Rhythm(0.65, 0.08, 10.0, 120.0),
)

#: Gaps longer than this are only integrated over their last 14 days: every
#: half-life is ≤ 4 h, so what came earlier weighs < 2^-84 — nothing.
MAX_SIMULATED = timedelta(days=14)
_HOUR = timedelta(hours=1)

# -- timing-derived events ---------------------------------------------------
#: A user answering Clara this late after her reply left her hanging: being
#: ignored.  An hour: shorter is just someone busy, longer is a silence.
IGNORED_AFTER = timedelta(hours=1)
#: No message either way for this long is a "long silence" (a night, a work day).
LONG_SILENCE = timedelta(hours=8)
#: Messages closer than this are a burst: they wear on patience.
BURST_GAP = timedelta(seconds=10)

# -- cross-effects -----------------------------------------------------------
#: Cortisol above this is stress, not alertness (baseline peaks at 0.5).
CORTISOL_STRESS = 0.6
#: Share of the excess taken out of serotonin / patience per event.  At the
#: most (cortisol 1.0) that is 0.4·0.25 = 10 % of serotonin and 0.4·0.3 = 12 %
#: of patience per message: felt, never a collapse.
STRESS_ON_SEROTONIN = 0.25
STRESS_ON_PATIENCE = 0.30


def _rates() -> tuple[float, ...]:
    return tuple(math.log(2) / (r.half_life_min * 60.0) for r in RHYTHMS)


def _baseline_table(circadian: bool) -> tuple[Levels, ...]:
    rows = []
    for hour in range(24):
        row = []
        for r in RHYTHMS:
            # The hour's midpoint: the step function then tracks the curve evenly.
            wave = math.cos(2 * math.pi * (hour + 0.5 - r.peak_hour) / 24) if circadian else 0.0
            row.append(min(1.0, max(0.0, r.mid + r.amp * wave)))
        rows.append(tuple(row))
    return tuple(rows)  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class HormoneState:
    """One channel's levels as they were at ``at`` (an aware datetime)."""

    levels: Levels
    at: datetime
    last_user_at: datetime | None = None
    last_clara_at: datetime | None = None

    def as_dict(self) -> dict[str, float]:
        return dict(zip(HORMONES, self.levels, strict=True))


@dataclass(frozen=True, slots=True)
class Stimulus:
    """What one message does: sentiment in [-1, 1], the rest in [0, 1] or flags."""

    sentiment: float = 0.0
    intensity: float = 0.0
    mention: bool = False
    praise: bool = False
    conflict: bool = False
    question: bool = False
    novelty: float = 0.0


@dataclass(frozen=True)
class HormoneModel:
    """The dynamics for one time zone.  ``circadian=False`` flattens the baselines."""

    timezone: str = "UTC"
    circadian: bool = True
    _tz: ZoneInfo = field(init=False, repr=False)
    _baselines: tuple[Levels, ...] = field(init=False, repr=False)
    _rates: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tz", ZoneInfo(self.timezone))
        object.__setattr__(self, "_baselines", _baseline_table(self.circadian))
        object.__setattr__(self, "_rates", _rates())

    # -- baselines ----------------------------------------------------------

    def baseline(self, when: datetime) -> Levels:
        return self._baselines[when.astimezone(self._tz).hour]

    def initial(self, when: datetime) -> HormoneState:
        """A channel Clara has never heard from: resting at the hour's baseline."""
        return HormoneState(self.baseline(when), when)

    # -- time ----------------------------------------------------------------

    def advance(self, state: HormoneState, now: datetime) -> HormoneState:
        """``state`` relaxed toward the baselines until ``now`` (no events).

        A clock that went backwards changes nothing (no negative decay).
        """
        if now <= state.at:
            return state
        t = state.at
        if now - t > MAX_SIMULATED:
            t = now - MAX_SIMULATED
        levels = list(state.levels)
        rates = self._rates
        tz = self._tz
        while t < now:
            local = t.astimezone(tz)
            # The local hour's start, found in UTC arithmetic so DST folds and
            # half-hour offsets need no special case.
            hour_start = t - timedelta(
                minutes=local.minute, seconds=local.second, microseconds=local.microsecond
            )
            end = min(hour_start + _HOUR, now)
            dt = (end - t).total_seconds()
            base = self._baselines[local.hour]
            for i in range(8):
                b = base[i]
                levels[i] = b + (levels[i] - b) * math.exp(-rates[i] * dt)
            t = end
        # The constructor, not dataclasses.replace: this is the per-message hot path.
        return HormoneState(tuple(levels), now, state.last_user_at, state.last_clara_at)  # type: ignore[arg-type]

    # -- events --------------------------------------------------------------

    def react(self, state: HormoneState, stimulus: Stimulus, now: datetime) -> HormoneState:
        """A user's message addressed to Clara arrives at ``now``."""
        s = self.advance(state, now)
        d = [0.0] * 8
        sent = max(-1.0, min(1.0, stimulus.sentiment))
        inten = max(0.0, min(1.0, stimulus.intensity))
        pos, neg = max(sent, 0.0), max(-sent, 0.0)
        # Being talked to at all is a little rewarding and bonding.
        d[DOPAMINE] += 0.04
        d[OXYTOCIN] += 0.03
        # Sentiment moves mood; intensity scales it (a shouted insult counts
        # more than a mild grumble).  Half the effect even at zero intensity.
        weight = 0.5 + 0.5 * inten
        d[SEROTONIN] += 0.10 * sent * weight
        d[DOPAMINE] += 0.08 * pos * weight
        d[CORTISOL] += 0.15 * neg * weight
        if stimulus.mention:
            # Being called by name: attention and a small bond.
            d[DOPAMINE] += 0.05
            d[OXYTOCIN] += 0.04
        if stimulus.praise:
            # Praise: the strongest reward signal; warms mood and closeness.
            d[DOPAMINE] += 0.15
            d[SEROTONIN] += 0.08
            d[OXYTOCIN] += 0.08
        if stimulus.conflict:
            # Hostility: stress up, patience and mood down; not crushing (0.2).
            d[CORTISOL] += 0.20
            d[PATIENCE] -= 0.10
            d[SEROTONIN] -= 0.05
            d[OXYTOCIN] -= 0.05
        if stimulus.question:
            # A question invites thinking: curiosity up.
            d[CURIOSITY] += 0.08
        # Something new (a link, a topic, a picture): novelty spikes, and feeds curiosity.
        nov = max(0.0, min(1.0, stimulus.novelty))
        d[NOVELTY] += 0.25 * nov
        d[CURIOSITY] += 0.05 * nov
        # Talking at night wakes her a little.
        d[MELATONIN] -= 0.05

        last_any = max(
            (t for t in (s.last_user_at, s.last_clara_at) if t is not None), default=None
        )
        if last_any is not None and now - last_any >= LONG_SILENCE:
            # Back after a long silence: things feel fresh, and it is nice to hear from them.
            d[NOVELTY] += 0.15
            d[CURIOSITY] += 0.08
            d[OXYTOCIN] += 0.05
        elif (
            s.last_clara_at is not None
            and (s.last_user_at is None or s.last_clara_at >= s.last_user_at)
            and now - s.last_clara_at >= IGNORED_AFTER
        ):
            # She spoke and was left hanging for a while: a small sting.
            d[OXYTOCIN] -= 0.06
            d[DOPAMINE] -= 0.05
            d[PATIENCE] -= 0.04
        if s.last_user_at is not None and now - s.last_user_at < BURST_GAP:
            # Rapid-fire messages wear on patience, a little each.
            d[PATIENCE] -= 0.03

        levels = [_saturate(x, dx) for x, dx in zip(s.levels, d, strict=True)]
        _stress(levels)
        return HormoneState(tuple(levels), now, now, s.last_clara_at)  # type: ignore[arg-type]

    def spoke(self, state: HormoneState, now: datetime) -> HormoneState:
        """Clara answered at ``now``: a small satisfaction; starts the 'ignored' timer."""
        s = self.advance(state, now)
        levels = list(s.levels)
        levels[DOPAMINE] = _saturate(levels[DOPAMINE], 0.02)
        return HormoneState(tuple(levels), now, s.last_user_at, now)  # type: ignore[arg-type]


def _saturate(x: float, d: float) -> float:
    """Move ``x`` by ``d`` without leaving [0, 1]: a step up covers ``d`` of the
    headroom, a step down ``-d`` of the level (so levels approach, never cross, the bounds)."""
    d = max(-1.0, min(1.0, d))
    x = x + d * (1.0 - x) if d >= 0 else x + d * x
    return min(1.0, max(0.0, x))


def _stress(levels: list[float]) -> None:
    excess = levels[CORTISOL] - CORTISOL_STRESS
    if excess > 0:
        levels[SEROTONIN] -= STRESS_ON_SEROTONIN * excess * levels[SEROTONIN]
        levels[PATIENCE] -= STRESS_ON_PATIENCE * excess * levels[PATIENCE]


def levels_from(mapping: Mapping[str, float], fallback: Sequence[float]) -> Levels:
    """Levels from a stored ``{name: value}`` (missing or bad names keep ``fallback``)."""
    out = []
    for name, default in zip(HORMONES, fallback, strict=True):
        value = mapping.get(name, default)
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = default
        out.append(min(1.0, max(0.0, v)) if math.isfinite(v) else default)
    return tuple(out)  # type: ignore[return-value]
