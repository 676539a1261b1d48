"""What Clara holds about one user: show it (``/clara memory``) and delete it
(``/clara forget``).

Every function here names the user and every query filters by that user at
the data layer, so no id, prefix or page number can reach another user's
data.  User ids are the platform user id as the conversation layer keys them
(on Discord: ``str(author.id)``), the same string Cortex, the core tables and
the file store use.

Each store is optional (``None`` = not configured) and is handled on its own:
one unreachable store must not stop the others from being cleared, and the
report says exactly what was deleted and what could not be reached.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from clara_core.cortex.health import postgres_down
from clara_core.cortex.types import Memory, check_user_id
from storage.local_files import LocalFileStore
from storage.user_data import delete_user_data_in

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from clara_core.cortex.manager import MemoryManager

log = logging.getLogger(__name__)

SHORT_ID_LEN = 8
_FULL_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# A prefix of the canonical text form: at least the 8 characters /clara memory shows.
_ID_PREFIX = re.compile(r"^[0-9a-f]{8}[0-9a-f-]{0,27}$")


class StorageUnavailable(Exception):
    """The store needed to answer is unreachable right now (nothing was changed)."""


class AmbiguousMemoryId(Exception):
    """A short id matches more than one of the user's memories."""


def short_id(memory_id: str) -> str:
    return memory_id[:SHORT_ID_LEN]


def full_memory_id(ref: str) -> str | None:
    """``ref`` in canonical form when it is a complete memory id (a uuid), else ``None``."""
    ref = ref.strip().lower()
    return ref if _FULL_UUID.match(ref) else None


# -- access -------------------------------------------------------------------


@dataclass
class MemoryPage:
    identity: dict[str, Any]
    memories: list[Memory]
    page: int  # 1-based, clamped to [1, pages]
    pages: int
    total: int
    #: Set when long-term memory could not be read (PostgreSQL down).
    unavailable: bool = False


async def memory_page(
    memory: MemoryManager, user_id: str, page: int = 1, *, per_page: int = 10
) -> MemoryPage:
    """One page of the user's memories, newest first, with their identity facts."""
    check_user_id(user_id)
    identity = await memory.get_identity(user_id)  # degrades to the other tier by itself
    if not memory.pg_health.up:
        return MemoryPage(identity, [], 1, 1, 0, unavailable=True)
    try:
        total = await memory.count_memories(user_id)
        pages = max(1, math.ceil(total / per_page))
        page = min(max(1, page), pages)
        memories = await memory.recent_memories(
            user_id, limit=per_page, offset=(page - 1) * per_page
        )
    except Exception as exc:
        if not postgres_down(exc):
            raise
        memory.pg_health.mark_down(exc)  # the health probe marks it up again
        return MemoryPage(identity, [], 1, 1, 0, unavailable=True)
    return MemoryPage(identity, memories, page, pages, total)


async def resolve_memory_id(memory: MemoryManager, user_id: str, ref: str) -> Memory | None:
    """The user's memory named by a full uuid or a short id (a prefix of at least 8
    characters), in any status; ``None`` when the user has no such memory — whether
    or not another user does, which must stay indistinguishable.

    Raises ``AmbiguousMemoryId`` when a prefix matches several of the user's
    memories and ``StorageUnavailable`` when PostgreSQL is down."""
    check_user_id(user_id)
    ref = ref.strip().lower()
    if not (_FULL_UUID.match(ref) or _ID_PREFIX.match(ref)):
        return None
    if not memory.pg_health.up:
        raise StorageUnavailable("long-term memory is unavailable")
    try:
        if _FULL_UUID.match(ref):
            return await memory.warm.get(user_id, ref)
        ids = await memory.warm.ids_with_prefix(user_id, ref, limit=2)
        if len(ids) > 1:
            raise AmbiguousMemoryId(ref)
        return await memory.warm.get(user_id, ids[0]) if ids else None
    except Exception as exc:
        if not postgres_down(exc):
            raise
        memory.pg_health.mark_down(exc)
        raise StorageUnavailable("long-term memory is unavailable") from exc


# -- erasure ------------------------------------------------------------------


@dataclass
class ForgetReport:
    """What ``forget_everything`` deleted, per store."""

    memories: int = 0  # long-term memories (warm tier), identity facts included
    memory_cache_keys: int = 0  # Redis keys: identity, session, working memory, ...
    #: PostgreSQL was down: Cortex queued the deletion in its durable outbox; it
    #: runs, before any other write of that user, when PostgreSQL is back.
    memories_queued: bool = False
    sessions: int = 0
    messages: int = 0
    projects: int = 0
    preferences: int = 0
    files: int = 0
    queued_turns: int = 0  # conversation turns waiting on disk for PostgreSQL
    #: Items deleted by each further store (``others``), by the store's label
    #: (None: cleared, the store does not count items).
    others: dict[str, int | None] = field(default_factory=dict)
    #: Stores that were configured but could not be cleared (names from STORE_NAMES).
    failed: list[str] = field(default_factory=list)
    #: Stores that are not configured (nothing of the user can be there).
    skipped: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.failed and not self.memories_queued


STORE_NAMES = ("memory", "history", "files")


class UserDataStore(Protocol):
    """Any further component holding user data (the mood, the code sandbox, ...):
    it can delete one user's data and say how many items went."""

    async def delete_user_data(self, user_id: str) -> int | None: ...


class QueuedHistory(Protocol):
    """Conversation turns queued on disk while PostgreSQL is down (pipeline.session_log)."""

    async def purge_user(self, user_id: str) -> int: ...


async def forget_everything(
    user_id: str,
    *,
    memory: MemoryManager | None,
    engine: AsyncEngine | None,
    files: LocalFileStore | None,
    queued_history: QueuedHistory | None = None,
    others: Mapping[str, UserDataStore] | None = None,
) -> ForgetReport:
    """Delete everything Clara holds about ``user_id`` and only that:

    * ``memory``: Cortex — both tiers, the outbox's pending writes, project
      memberships (``MemoryManager.forget``);
    * ``engine``: the core tables — sessions and their messages, messages the
      user wrote elsewhere, projects they own, their preferences;
    * ``files``: their folder in the local file store;
    * ``queued_history``: their conversation turns queued on disk while
      PostgreSQL was down (they would otherwise be stored once it is back);
    * ``others``: every further store, by the label the report shows it under
      (the mood of their DMs, their sandbox workspace, ...).
    """
    # Validated once, up front: a malformed id (empty, a glob, a path) must not
    # reach any store, not even one that would treat it harmlessly.
    check_user_id(user_id)
    report = ForgetReport()

    if memory is None:
        report.skipped.append("memory")
    else:
        try:
            result = await memory.forget(user_id)
            report.memories = result.warm
            report.memory_cache_keys = result.hot
            report.memories_queued = result.queued
        except Exception:
            log.exception("forget: clearing Cortex memory of a user failed")
            report.failed.append("memory")

    if engine is None:
        report.skipped.append("history")
    else:
        try:
            counts = await delete_user_data_in(engine, user_id)
            report.sessions = counts.sessions
            report.messages = counts.messages
            report.projects = counts.projects
            report.preferences = counts.preferences
        except Exception as exc:
            if postgres_down(exc):
                log.warning("forget: PostgreSQL is unreachable; history not deleted (%s)", exc)
            else:
                log.exception("forget: deleting a user's history failed")
            report.failed.append("history")

    if queued_history is not None:
        # Queued turns would otherwise be written back once PostgreSQL returns.
        try:
            report.queued_turns = await queued_history.purge_user(user_id)
        except Exception:
            log.exception("forget: dropping a user's queued conversation turns failed")
            if "history" not in report.failed:
                report.failed.append("history")

    if files is None:
        report.skipped.append("files")
    else:
        try:
            report.files = await files.delete_user_data(user_id)
        except Exception:
            log.exception("forget: deleting a user's files failed")
            report.failed.append("files")

    for label, store in (others or {}).items():
        try:
            report.others[label] = await store.delete_user_data(user_id)
        except Exception:
            log.exception("forget: deleting a user's data in %s failed", label)
            report.failed.append(label)

    log.info(
        "forgot a user: %d memories%s, %d sessions, %d messages, %d preferences, %d files%s",
        report.memories,
        " (queued)" if report.memories_queued else "",
        report.sessions,
        report.messages,
        report.preferences,
        report.files,
        f"; failed: {', '.join(report.failed)}" if report.failed else "",
    )
    return report
