"""Per-user preferences (the default model tier set with /clara tier, whether Clara
reads her replies to them aloud in voice channels, set with /clara speech)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, String, func
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class UserPreferences(Base):
    __tablename__ = "user_preferences"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    default_tier: Mapped[str | None] = mapped_column(String(8))
    #: Speak my replies in voice channels? NULL: not chosen (the server's choice applies).
    speak_replies: Mapped[bool | None] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )
