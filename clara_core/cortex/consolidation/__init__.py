"""Cortex consolidation: background jobs that keep memory healthy (spec section 8).

Pattern extraction, contradiction detection, compaction of old episodes and
working-memory cleanup, run per user by :class:`ConsolidationRunner` on an
APScheduler schedule.  The model is reached only through ``TextModel``.
"""

from __future__ import annotations

from .compaction import CompactionJob, CompactionResult, week_start
from .contradictions import ContradictionDetector, DetectionResult, cluster_by_similarity
from .ledger import ConsolidationLedger
from .patterns import PatternExtractor, PatternResult, identity_key, parse_patterns
from .records import (
    JOB_CLEANUP,
    JOB_COMPACTION,
    JOB_CONSOLIDATION,
    RESOLUTIONS,
    ConsolidationMetrics,
    ContradictionRecord,
    Pattern,
    RunReport,
    RunSummary,
)
from .runner import JOB_IDS, ConsolidationRunner, working_memory_users

__all__ = [
    "JOB_CLEANUP",
    "JOB_COMPACTION",
    "JOB_CONSOLIDATION",
    "JOB_IDS",
    "RESOLUTIONS",
    "CompactionJob",
    "CompactionResult",
    "ConsolidationLedger",
    "ConsolidationMetrics",
    "ConsolidationRunner",
    "ContradictionDetector",
    "ContradictionRecord",
    "DetectionResult",
    "Pattern",
    "PatternExtractor",
    "PatternResult",
    "RunReport",
    "RunSummary",
    "cluster_by_similarity",
    "identity_key",
    "parse_patterns",
    "week_start",
    "working_memory_users",
]
