"""The Organic Response System's tables: per-user patterns and schedule, notes,
every assessment, and every proactive message (recorded before it is sent)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class UserInteractionPattern(Base):
    """One user's ORS state: choice, what was learned, and when to look next.

    ``next_check_at`` doubles as the claim: a runner moves it forward with one
    conditional UPDATE before it assesses the user, so two processes on one
    database never assess (and never speak to) the same user at once.
    """

    __tablename__ = "user_interaction_patterns"
    __table_args__ = (Index("ix_user_interaction_patterns_next_check", "next_check_at"),)

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    opted_in: Mapped[bool | None] = mapped_column(Boolean)
    talked_in_dm: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    last_channel_id: Mapped[str | None] = mapped_column(String(64))
    last_user_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_proactive_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unanswered: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    proactive_sent: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    proactive_answered: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    #: Messages per local hour of day ("0".."23"): when the user is usually around.
    active_hours: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, nullable=False)
    #: Things the user asked for (``/clara boundary``): ``{"text", "not_before",
    #: "not_after", "days_off"}`` objects (companion/boundaries.py); a bare string is
    #: words only.
    boundaries: Mapped[list[Any]] = mapped_column(JSONB, default=list, nullable=False)
    last_summary: Mapped[str | None] = mapped_column(Text)
    open_threads: Mapped[list[Any]] = mapped_column(JSONB, default=list, nullable=False)
    summary_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_check_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class ProactiveNote(Base):
    """A THINK: something to come back to (relevance decays; may expire)."""

    __tablename__ = "proactive_notes"
    __table_args__ = (Index("ix_proactive_notes_user", "user_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    relevance: Mapped[float] = mapped_column(Float, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source_message_ids: Mapped[list[Any]] = mapped_column(JSONB, default=list, nullable=False)
    #: Set when a SPEAK used the note: it is not a reason twice.
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProactiveAssessment(Base):
    """Every decision, with its reason: why Clara spoke or kept quiet."""

    __tablename__ = "proactive_assessments"
    __table_args__ = (Index("ix_proactive_assessments_user_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    action: Mapped[str] = mapped_column(String(8), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    next_check_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class ProactiveMessage(Base):
    """A SPEAK, written before the send (status ``pending``) in the same transaction
    that moves the user's ``last_proactive_at``: a crash between the two leaves a
    pending row, never a second message."""

    __tablename__ = "proactive_messages"
    __table_args__ = (
        Index("ix_proactive_messages_user_at", "user_id", "at"),
        # The sweep for sends a crash left unconfirmed runs every pass: this index
        # holds only the few pending rows, however long the table grows.
        Index(
            "ix_proactive_messages_pending",
            "at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    channel_id: Mapped[str | None] = mapped_column(String(64))
    #: pending → sent | failed; a pending row a crashed process left is marked
    #: lost after a while (storage/proactive.py ``mark_lost``), never re-sent.
    status: Mapped[str] = mapped_column(String(8), nullable=False)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
