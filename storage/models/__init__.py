"""SQLAlchemy models. Import this package to register every table on ``Base.metadata``."""

from __future__ import annotations

from .base import Base
from .core import MESSAGE_ROLES, ChannelSummary, ConversationSession, Message, Project
from .preferences import UserPreferences

__all__ = [
    "MESSAGE_ROLES",
    "Base",
    "ChannelSummary",
    "ConversationSession",
    "Message",
    "Project",
    "UserPreferences",
]
