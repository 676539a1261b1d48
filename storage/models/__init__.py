"""SQLAlchemy models. Import this package to register every table on ``Base.metadata``."""

from __future__ import annotations

from .base import Base
from .companion import CompanionHistory, CompanionState
from .core import MESSAGE_ROLES, ChannelSummary, ConversationSession, Message, Project
from .cortex import (
    PROJECT_ROLES,
    RESOLUTIONS,
    ChannelProject,
    ConsolidationLog,
    Contradiction,
    CortexMeta,
    ProjectMember,
)
from .guild_settings import GuildSettings
from .job_claims import ScheduledJobRun
from .mcp import McpServer
from .memories import EMBEDDING_DIMS, MemoryRecord
from .preferences import UserPreferences
from .proactive import (
    ProactiveAssessment,
    ProactiveMessage,
    ProactiveNote,
    UserInteractionPattern,
)

__all__ = [
    "EMBEDDING_DIMS",
    "MESSAGE_ROLES",
    "PROJECT_ROLES",
    "RESOLUTIONS",
    "Base",
    "ChannelProject",
    "ChannelSummary",
    "CompanionHistory",
    "CompanionState",
    "ConsolidationLog",
    "Contradiction",
    "ConversationSession",
    "CortexMeta",
    "GuildSettings",
    "McpServer",
    "MemoryRecord",
    "Message",
    "ProactiveAssessment",
    "ProactiveMessage",
    "ProactiveNote",
    "Project",
    "ProjectMember",
    "ScheduledJobRun",
    "UserInteractionPattern",
    "UserPreferences",
]
