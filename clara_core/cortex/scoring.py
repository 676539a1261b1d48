"""Pure scoring rules (no I/O): working-memory TTL, retrieval ranking, importance."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

BASE_WORKING_TTL_S = 1800  # 30 minutes
MAX_MULTIPLIER = 12  # emotion 1.0 -> 6 hours


def clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))


def working_ttl(emotional_score: float, base_ttl: int = BASE_WORKING_TTL_S) -> int:
    """TTL = base × (1 + 11 × emotion): 30 min at 0.0 up to 6 h at 1.0 (clamped)."""
    return int(base_ttl * (1 + (MAX_MULTIPLIER - 1) * clamp01(emotional_score)))


@dataclass(frozen=True)
class RetrievalWeights:
    """Re-ranking weights (CORTEX_RETRIEVAL_WEIGHTS); they sum to 1.  The defaults
    are measured (bench/retrieval_quality.py), not the spec's 0.40/0.25/0.20/0.15."""

    similarity: float = 0.85
    recency: float = 0.10
    emotion: float = 0.05
    reinforcement: float = 0.0

    @classmethod
    def from_list(cls, values: list[float]) -> RetrievalWeights:
        return cls(*values)


def recency(created_at: datetime, now: datetime) -> float:
    """1 / (1 + ln(1 + hours old)): 1.0 now, 0.5 after ~1.7 h, 0.2 after ~2 days."""
    hours = max(0.0, (now - created_at).total_seconds() / 3600)
    return 1.0 / (1.0 + math.log1p(hours))


def reinforcement(access_count: int) -> float:
    return min(1.0, math.log1p(max(0, access_count)) / 10)


def retrieval_score(
    *,
    similarity: float,
    created_at: datetime,
    emotional_score: float,
    access_count: int,
    now: datetime,
    weights: RetrievalWeights,
) -> float:
    return (
        weights.similarity * similarity
        + weights.recency * recency(created_at, now)
        + weights.emotion * clamp01(emotional_score)
        + weights.reinforcement * reinforcement(access_count)
    )


_TYPE_WEIGHT = {
    "identity": 1.0,
    "semantic": 0.8,
    "project": 0.7,
    "episodic": 0.6,
    "working": 0.4,
    "session": 0.3,
}


def importance(
    *,
    memory_type: str,
    emotional_score: float,
    access_count: int,
    created_at: datetime,
    now: datetime,
) -> float:
    """The spec's derived importance: emotion 40 %, recency 20 %, access 20 %, type 20 %."""
    return (
        0.40 * clamp01(emotional_score)
        + 0.20 * recency(created_at, now)
        + 0.20 * min(1.0, math.log1p(max(0, access_count)) / 5)
        + 0.20 * _TYPE_WEIGHT.get(memory_type, 0.5)
    )
