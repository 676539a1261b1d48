"""Memory vocabulary shared by both tiers."""

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


class MemoryType(enum.StrEnum):
    IDENTITY = "identity"
    SEMANTIC = "semantic"
    EPISODIC = "episodic"
    WORKING = "working"
    SESSION = "session"
    PROJECT = "project"


_USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def check_user_id(user_id: str) -> str:
    """User ids become part of storage keys: no separators, no globs, bounded."""
    if not _USER_ID.match(user_id):
        raise CortexError(f"invalid user id {user_id!r}")
    return user_id


@dataclass
class Memory:
    content: str
    user_id: str
    memory_type: MemoryType = MemoryType.EPISODIC
    emotional_score: float = 0.5
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "content": self.content,
            "user_id": self.user_id,
            "type": self.memory_type.value,
            "emotion": self.emotional_score,
            "created_at": self.created_at.isoformat(),
            "metadata": self.metadata,
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
        )
