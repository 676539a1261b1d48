"""Memory vocabulary shared by both tiers and by Cortex's callers."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from clara_core.errors import ClaraError
from clara_core.ids import is_valid_user_id


class CortexError(ClaraError):
    """Root of Cortex's errors."""


class AccessDenied(CortexError):
    """The caller may not read or change this data (another user's memory, a project
    they are not a member of).  Raised at the data layer, not only in the UI."""


class InvalidInput(CortexError, ValueError):
    """A caller passed an argument Cortex cannot use (a negative limit, a naive-looking
    date string, an embedding of the wrong size).  Raised before anything is written,
    so fixing the argument and calling again never stores anything twice.

    ``parameter`` names the argument; it is also a ``ValueError`` for generic callers."""

    def __init__(self, parameter: str, problem: str) -> None:
        self.parameter = parameter
        super().__init__(f"{parameter}: {problem}")


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


def check_user_id(user_id: str) -> str:
    """User ids become part of storage keys: no separators, no globs, bounded."""
    if not is_valid_user_id(user_id):
        raise CortexError(f"invalid user id {user_id!r}")
    return user_id


def as_utc(when: datetime) -> datetime:
    """Cortex compares times with an aware clock: a naive datetime is taken to be UTC
    (what ``datetime.utcnow()`` and most exports mean), an aware one is converted."""
    if when.tzinfo is None or when.tzinfo.utcoffset(when) is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


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
            created_at=as_utc(datetime.fromisoformat(data["created_at"])),
            metadata=data.get("metadata") or {},
            project_id=data.get("project_id"),
            importance=float(data.get("importance", 0.5)),
            confidence=float(data.get("confidence", 1.0)),
            supersedes=data.get("supersedes"),
            source=data.get("source"),
            tags=list(data.get("tags") or []),
        )


class _Shown:
    """Which memories a prompt already shows: by id, and by text (the same fact stored
    twice under two ids says nothing new the second time)."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._texts: set[str] = set()

    def add(self, memory: Memory) -> bool:
        """Record ``memory``; False when it (or its text) is already shown."""
        text = " ".join(memory.content.split()).casefold()
        if memory.id in self._ids or text in self._texts:
            return False
        self._ids.add(memory.id)
        self._texts.add(text)
        return True

    def take(
        self, memories: list[Memory], limit: int, identity: dict[str, Any] | None = None
    ) -> list[Memory]:
        """Up to ``limit`` of ``memories`` not shown yet (nor in ``identity``), now shown."""
        out: list[Memory] = []
        for m in memories:
            if len(out) >= limit:
                break
            if not (identity and _in_identity(m, identity)) and self.add(m):
                out.append(m)
        return out


def _in_identity(memory: Memory, identity: dict[str, Any]) -> bool:
    """An identity memory ("name: Ana") whose current value the identity section shows."""
    key = memory.metadata.get("identity_key")
    return (
        memory.memory_type is MemoryType.IDENTITY
        and key in identity
        and str(identity[key]) == str(memory.metadata.get("value"))
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
        """The prompt section; a memory appears once, however many sections hold it.

        A memory that is both recent and relevant is shown under "Relevant memories":
        that section is ranked for this message and dates each memory, so it says
        more than the recent list.  "Recent context" then lists what retrieval did not
        bring, and the project section what neither did.  Identity facts are shown in
        their own section only."""
        sections: list[str] = []
        shown = _Shown()
        identity = {k: v for k, v in self.identity.items() if k != "updated_at"}
        if identity:
            sections.append("## What you know about this user")
            sections += [f"- {k}: {v}" for k, v in identity.items()]
        session = {k: v for k, v in self.session.items() if k not in ("started_at", "last_active")}
        if session:
            sections.append("\n## Current session")
            sections += [f"- {k}: {v}" for k, v in session.items()]
        retrieved = shown.take(self.retrieved, max_retrieved, identity)
        working = shown.take(self.working, max_working, identity)
        if working:
            sections.append("\n## Recent context")
            sections += [f"- {m.content}" for m in working]
        if retrieved:
            sections.append("\n## Relevant memories")
            sections += [f"- [{m.created_at:%Y-%m-%d}] {m.content}" for m in retrieved]
        if self.project:
            shared = shown.take([*self.project.retrieved, *self.project.recent], max_retrieved)
            if shared:
                sections.append(f"\n## Shared project: {self.project.name}")
                sections += [f"- {m.content}" for m in shared]
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
