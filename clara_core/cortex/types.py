"""Memory vocabulary shared by both tiers and by Cortex's callers."""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from clara_core.errors import ClaraError


class CortexError(ClaraError):
    """Root of Cortex's errors."""


class AccessDenied(CortexError):
    """The caller may not read or change this data (another user's memory, a project
    they are not a member of).  Raised at the data layer, not only in the UI."""


class EmbedderMismatch(CortexError):
    """The stored vectors were made by another embedder (model or dimension).

    The operator fixes it with ``python discord_bot.py cortex reembed``."""


class MemoryType(enum.StrEnum):
    IDENTITY = "identity"
    SEMANTIC = "semantic"
    EPISODIC = "episodic"
    WORKING = "working"
    SESSION = "session"
    PROJECT = "project"


class MemoryStatus(enum.StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"
    SUPERSEDED = "superseded"


_USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def check_user_id(user_id: str) -> str:
    """User ids become part of storage keys: no separators, no globs, bounded."""
    if not isinstance(user_id, str) or not _USER_ID.match(user_id):
        raise CortexError(f"invalid user id {user_id!r}")
    return user_id


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Memory:
    """One memory.  ``similarity``/``score`` are filled by searches only."""

    content: str
    user_id: str
    memory_type: MemoryType = MemoryType.EPISODIC
    emotional_score: float = 0.5
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: datetime = field(default_factory=_utcnow)
    metadata: dict[str, Any] = field(default_factory=dict)
    project_id: str | None = None
    status: MemoryStatus = MemoryStatus.ACTIVE
    importance: float = 0.5
    confidence: float = 1.0
    access_count: int = 0
    last_accessed: datetime | None = None
    supersedes: str | None = None
    source: str | None = None
    tags: list[str] = field(default_factory=list)
    similarity: float | None = None
    score: float | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "content": self.content,
            "user_id": self.user_id,
            "type": self.memory_type.value,
            "emotion": self.emotional_score,
            "created_at": self.created_at.isoformat(),
            "metadata": self.metadata,
            "project_id": self.project_id,
            "importance": self.importance,
            "confidence": self.confidence,
            "supersedes": self.supersedes,
            "source": self.source,
            "tags": self.tags,
        }

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Memory:
        return cls(
            id=data["id"],
            content=data["content"],
            user_id=data["user_id"],
            memory_type=MemoryType(data["type"]),
            emotional_score=float(data["emotion"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            metadata=data.get("metadata") or {},
            project_id=data.get("project_id"),
            importance=float(data.get("importance", 0.5)),
            confidence=float(data.get("confidence", 1.0)),
            supersedes=data.get("supersedes"),
            source=data.get("source"),
            tags=list(data.get("tags") or []),
        )


@dataclass
class MemoryContext:
    """Everything Clara knows that matters for one turn (``get_context``)."""

    user_id: str
    identity: dict[str, Any] = field(default_factory=dict)
    session: dict[str, Any] = field(default_factory=dict)
    working: list[Memory] = field(default_factory=list)
    retrieved: list[Memory] = field(default_factory=list)
    project: ProjectContext | None = None
    #: Why retrieval was skipped (rejection pipeline) or degraded (a tier down).
    notes: list[str] = field(default_factory=list)

    def to_prompt_string(self, *, max_working: int = 10, max_retrieved: int = 15) -> str:
        sections: list[str] = []
        identity = {k: v for k, v in self.identity.items() if k != "updated_at"}
        if identity:
            sections.append("## What you know about this user")
            sections += [f"- {k}: {v}" for k, v in identity.items()]
        session = {k: v for k, v in self.session.items() if k not in ("started_at", "last_active")}
        if session:
            sections.append("\n## Current session")
            sections += [f"- {k}: {v}" for k, v in session.items()]
        if self.working:
            sections.append("\n## Recent context")
            sections += [f"- {m.content}" for m in self.working[:max_working]]
        if self.retrieved:
            sections.append("\n## Relevant memories")
            sections += [
                f"- [{m.created_at:%Y-%m-%d}] {m.content}" for m in self.retrieved[:max_retrieved]
            ]
        if self.project and (self.project.recent or self.project.retrieved):
            sections.append(f"\n## Shared project: {self.project.name}")
            seen: set[str] = set()
            for m in [*self.project.retrieved, *self.project.recent]:
                if m.id not in seen:
                    seen.add(m.id)
                    sections.append(f"- {m.content}")
                if len(seen) >= max_retrieved:
                    break
        return "\n".join(sections).strip()

    @property
    def empty(self) -> bool:
        return not (self.identity or self.working or self.retrieved or self.project)


@dataclass
class ProjectContext:
    project_id: str
    name: str
    recent: list[Memory] = field(default_factory=list)
    retrieved: list[Memory] = field(default_factory=list)


@dataclass
class StoreResult:
    success: bool
    memory_id: str | None = None
    error: str | None = None
    emotional_score: float | None = None
    ttl: int | None = None
    #: True when PostgreSQL was down and the write waits in the durable outbox.
    queued: bool = False
    #: The memory this one replaced (a correction).
    superseded: str | None = None


@dataclass
class SearchResult:
    memories: list[Memory]
    total_count: int
    search_time_ms: int
