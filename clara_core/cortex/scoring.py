"""Pure scoring rules (no I/O): working-memory TTL from emotional intensity."""

from __future__ import annotations

BASE_WORKING_TTL_S = 1800  # 30 minutes
MAX_MULTIPLIER = 12  # emotion 1.0 -> 6 hours


def clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))


def working_ttl(emotional_score: float, base_ttl: int = BASE_WORKING_TTL_S) -> int:
    """TTL = base × (1 + 11 × emotion): 30 min at 0.0 up to 6 h at 1.0 (clamped)."""
    return int(base_ttl * (1 + (MAX_MULTIPLIER - 1) * clamp01(emotional_score)))
