"""Small helpers shared by benchmark scripts."""

from __future__ import annotations

import statistics


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float], unit: str = "s", scale: float = 1.0) -> str:
    v = [x * scale for x in values]
    return (
        f"n={len(v)} p50={percentile(v, 0.5):.3f}{unit} p95={percentile(v, 0.95):.3f}{unit} "
        f"min={min(v):.3f}{unit} max={max(v):.3f}{unit} mean={statistics.fmean(v):.3f}{unit}"
    )
