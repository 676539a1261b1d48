"""The last 24 h of a channel's mood: the curve, and a PNG of it.

The history holds the levels right after each change; between changes the
levels followed the model's decay, so the curve re-runs the model from each
point instead of drawing straight lines between them (which would lie).

``render_png`` is CPU work (matplotlib, ~100 ms): call it off the event loop.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .hormones import HORMONES, HormoneModel, HormoneState, Levels, levels_from

#: One sample every 10 minutes: 145 points a day, smooth enough at chart size.
SAMPLE_STEP = timedelta(minutes=10)


@dataclass(frozen=True)
class Curve:
    times: list[datetime]
    series: dict[str, list[float]]  # hormone name -> one value per time


def curve(
    model: HormoneModel,
    points: Sequence[tuple[datetime, Mapping[str, float]]],
    start: datetime,
    end: datetime,
    step: timedelta = SAMPLE_STEP,
) -> Curve:
    """Levels sampled every ``step`` from ``start`` to ``end``, from change points
    (oldest first).  Before the first point the channel rests at its baselines."""
    times: list[datetime] = []
    values: list[Levels] = []
    state: HormoneState | None = None
    i = 0
    t = start
    while True:
        while i < len(points) and points[i][0] <= t:
            at, levels = points[i]
            state = HormoneState(levels_from(levels, model.baseline(at)), at)
            i += 1
        values.append(model.advance(state, t).levels if state is not None else model.baseline(t))
        times.append(t)
        if t >= end:
            break
        t = min(t + step, end)
    series = {name: [v[k] for v in values] for k, name in enumerate(HORMONES)}
    return Curve(times, series)


def render_png(data: Curve, timezone: str, title: str) -> bytes:
    """A line chart of the eight levels as PNG bytes (Agg: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")  # before pyplot: a server has no display
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    tz = ZoneInfo(timezone)
    # Figure() rather than pyplot: no global figure registry, safe in a thread.
    fig = Figure(figsize=(8, 4), dpi=100)
    ax = fig.subplots()
    for name in HORMONES:
        ax.plot(data.times, data.series[name], label=name, linewidth=1.6)
    ax.set_ylim(0, 1)
    ax.set_ylabel("level")
    ax.set_title(title)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=7, ncol=4)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
