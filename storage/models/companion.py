"""Companion state: each channel's hormone levels now, and a row per change for charts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class CompanionState(Base):
    """One channel's (or DM's) levels as of ``at``; the model decays them from there."""

    __tablename__ = "companion_state"
    __table_args__ = (Index("ix_companion_state_owner", "owner_user_id"),)

    scope: Mapped[str] = mapped_column(String(80), primary_key=True)
    levels: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_user_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_clara_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Set for a one-to-one conversation (a DM): the state is then that user's data.
    owner_user_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class CompanionHistory(Base):
    """The levels right after one change (a message, a reply), for /clara mood's chart."""

    __tablename__ = "companion_history"
    __table_args__ = (
        Index("ix_companion_history_scope_at", "scope", "at"),
        Index("ix_companion_history_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(80), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    levels: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    cause: Mapped[str] = mapped_column(String(16), nullable=False)
    #: Whose message caused the change (None for Clara's own reply): deleted with the user.
    user_id: Mapped[str | None] = mapped_column(String(64))
