"""Which Clara process runs a scheduled job's slot (storage/job_claims.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class ScheduledJobRun(Base):
    """One row per scheduled job (consolidation, cleanup, backup, ...), shared by every
    Clara process on the database: a process that moves ``last_started_at`` with the
    conditional upsert owns that slot; the others skip it."""

    __tablename__ = "scheduled_job_runs"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The database's now() when the last slot was claimed (never a process clock).
    last_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Who claimed the last slot (host:pid), for the operator.
    holder: Mapped[str] = mapped_column(String(128), nullable=False)
