"""SQLAlchemy models. Import this package to register every table on ``Base.metadata``."""

from __future__ import annotations

from .base import Base
from .core import MESSAGE_ROLES, ChannelSummary, ConversationSession, Message, Project
from .memories import EMBEDDING_DIMS, MemoryRecord
from .preferences import UserPreferences

__all__ = [
    "EMBEDDING_DIMS",
    "MESSAGE_ROLES",
    "Base",
    "ChannelSummary",
    "ConversationSession",
    "MemoryRecord",
    "Message",
    "Project",
    "UserPreferences",
]
