"""Plain results of the consolidation jobs (no I/O here)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: What a ``consolidation_logs`` row describes.
JOB_CONSOLIDATION = "consolidation"
JOB_COMPACTION = "compaction"
JOB_CLEANUP = "cleanup"

RESOLUTIONS = ("a_wins", "b_wins", "merge", "both_valid")


@dataclass
class Pattern:
    """A stable fact the model read out of recent episodes."""

    category: str
    fact: str
    confidence: float
    #: Ids of the memories the model cited (indices mapped back, out-of-range dropped).
    evidence: list[str] = field(default_factory=list)


@dataclass
class ContradictionRecord:
    id: str
    user_id: str
    memory_a: str
    memory_b: str
    reason: str
    resolution: str
    note: str | None
    detected_at: datetime
    resolved_at: datetime | None


@dataclass
class RunReport:
    """One job run for one user (or one cleanup sweep): one ``consolidation_logs`` row."""

    user_id: str | None
    job: str
    started_at: datetime
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    completed_at: datetime | None = None
    duration_ms: int | None = None
    memories_processed: int = 0
    patterns_found: int = 0
    identities_updated: int = 0
    contradictions_found: int = 0
    memories_compacted: int = 0
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class RunSummary:
    """What ``run_all`` / ``compact_all`` did across users."""

    run_id: str
    users: int = 0
    succeeded: int = 0
    failed: int = 0
    patterns_found: int = 0
    identities_updated: int = 0
    contradictions_found: int = 0
    memories_compacted: int = 0
    #: Users handed to the worker processes instead (CORTEX_WORKER_QUEUE).
    queued: int = 0
    reports: list[RunReport] = field(default_factory=list)

    def add(self, report: RunReport) -> None:
        self.users += 1
        if report.ok:
            self.succeeded += 1
        else:
            self.failed += 1
        self.patterns_found += report.patterns_found
        self.identities_updated += report.identities_updated
        self.contradictions_found += report.contradictions_found
        self.memories_compacted += report.memories_compacted
        self.reports.append(report)


@dataclass
class ConsolidationMetrics:
    """Health of the recent runs (spec 8.7)."""

    users_processed: int = 0
    runs: int = 0
    patterns_extracted: int = 0
    identities_updated: int = 0
    contradictions_found: int = 0
    memories_compacted: int = 0
    errors: int = 0
    duration_seconds: float = 0.0
    pending_contradictions: int = 0
