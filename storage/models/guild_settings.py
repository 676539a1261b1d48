"""Per-server settings (whether Clara reads replies aloud in its voice channels,
set by an admin with /clara speech scope:server)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, String, func
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class GuildSettings(Base):
    __tablename__ = "guild_settings"

    #: The platform's server id as a string (like ``user_preferences.user_id``).
    guild_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Speak replies in voice channels here? NULL: not chosen (she speaks once asked to join).
    speak_replies: Mapped[bool | None] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )
