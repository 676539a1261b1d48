"""Cortex's bookkeeping tables: project membership, channel links, contradictions,
consolidation runs and the embedder record.

Projects themselves live in ``core.py`` (sessions belong to them too); Cortex
adds who may read a project's shared memories.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow

PROJECT_ROLES = ("owner", "admin", "member")
RESOLUTIONS = ("pending", "a_wins", "b_wins", "merge", "both_valid")


class ProjectMember(Base):
    __tablename__ = "project_members"
    __table_args__ = (
        CheckConstraint("role IN ('owner', 'admin', 'member')", name="role_valid"),
        Index("ix_project_members_user", "user_id"),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), default="member", server_default="member")
    joined_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


class ChannelProject(Base):
    """A Discord channel linked to a project: its conversations use the project's memories."""

    __tablename__ = "channel_projects"

    channel_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    linked_by: Mapped[str] = mapped_column(String(64))
    linked_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


class Contradiction(Base):
    __tablename__ = "contradictions"
    __table_args__ = (
        CheckConstraint(
            "resolution IN ('pending', 'a_wins', 'b_wins', 'merge', 'both_valid')",
            name="resolution_valid",
        ),
        UniqueConstraint("memory_a", "memory_b", name="uq_contradictions_pair"),
        Index("ix_contradictions_user_resolution", "user_id", "resolution"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(64))
    memory_a: Mapped[uuid.UUID] = mapped_column(ForeignKey("memories.id", ondelete="CASCADE"))
    memory_b: Mapped[uuid.UUID] = mapped_column(ForeignKey("memories.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    resolution: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    note: Mapped[str | None] = mapped_column(Text)
    detected_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ConsolidationLog(Base):
    """One row per consolidation run of one user (or one cleanup sweep)."""

    __tablename__ = "consolidation_logs"
    __table_args__ = (Index("ix_consolidation_logs_started", "started_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    user_id: Mapped[str | None] = mapped_column(String(64), index=True)
    job: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    memories_processed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    patterns_found: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    identities_updated: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    contradictions_found: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    memories_compacted: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")


class CortexMeta(Base):
    """Small key/value facts about the warm tier, e.g. which embedder wrote its vectors."""

    __tablename__ = "cortex_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )
