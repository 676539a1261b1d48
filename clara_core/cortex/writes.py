"""Every warm-tier write goes through ``WarmWriter``.

When PostgreSQL is up and nothing is queued, a write commits directly.  When
PostgreSQL is down — or earlier writes still wait — it goes to the durable
outbox, and ``flush`` replays the outbox in order once PostgreSQL is back.
Operations are plain JSON so they survive a restart in the outbox.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from .health import TierHealth, postgres_down
from .outbox import Outbox, write_durably
from .types import Memory, MemoryStatus, MemoryType, is_valid_user_id
from .warm import WarmStore

log = logging.getLogger(__name__)

PARKED_DIR = "failed"
#: "<user id>+<32 hex>.json".  "+" is outside the user-id alphabet (types.check_user_id),
#: so the owner is exactly the part before it: "demo" never matches "demo-user+…".
#: A write cut short by a crash leaves "<that name>.<32 hex>.tmp" (outbox.write_durably).
_PARKED_NAME = re.compile(r"^(?P<user>[^+]+)\+[0-9a-f]{32}\.json(\.[0-9a-f]{32}\.tmp)?$")


def parked_name(user_id: object) -> str:
    owner = user_id if is_valid_user_id(user_id) else "unknown"
    return f"{owner}+{uuid.uuid4().hex}.json"


def parked_owner(path: Path) -> str | None:
    """Whose parked entry this is: read from the entry itself (exact, and right for
    files named by older versions, "<user>-<hex>.json"), else from a current name."""
    try:
        op = json.loads(path.read_bytes())
    except (OSError, ValueError):
        op = None
    if isinstance(op, dict) and isinstance(op.get("user_id"), str):
        return op["user_id"]
    m = _PARKED_NAME.match(path.name)
    return m.group("user") if m else None


def add_op(
    memories: Sequence[Memory],
    embeddings: Sequence[Sequence[float] | None],
    *,
    model: str | None,
    supersede: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "op": "add",
        "user_id": memories[0].user_id,
        "memories": [m.to_json_dict() for m in memories],
        "embeddings": [list(e) if e is not None else None for e in embeddings],
        "model": model,
        "supersede": list(supersede),
    }


class WarmWriter:
    def __init__(
        self,
        warm: WarmStore,
        outbox: Outbox,
        health: TierHealth,
        *,
        forget_user_extra: Callable[[str], Awaitable[Any]] | None = None,
    ) -> None:
        self.warm = warm
        #: Other per-user tables to clear with a queued "forget everything".
        self.forget_user_extra = forget_user_extra
        self.outbox = outbox
        self.health = health

    async def submit(self, op: dict[str, Any]) -> bool:
        """Apply ``op`` now or queue it durably; returns True when it was queued."""
        return await self._submit(lambda: self.apply(op), lambda: op)

    async def add(
        self,
        memories: Sequence[Memory],
        embeddings: Sequence[Sequence[float] | None],
        *,
        model: str | None,
        supersede: Sequence[str] = (),
    ) -> bool:
        """Store memories; they are serialised only when they must wait in the outbox
        (``store`` is on every remembered fact's path)."""
        return await self._submit(
            lambda: self._add(memories, embeddings, model, supersede),
            lambda: add_op(memories, embeddings, model=model, supersede=supersede),
        )

    async def _submit(
        self, now: Callable[[], Awaitable[Any]], op: Callable[[], dict[str, Any]]
    ) -> bool:
        if self.health.up and self.outbox.pending == 0:
            try:
                await now()
                return False
            except Exception as exc:
                if not postgres_down(exc):
                    raise  # a bad write is a bug: don't park it in the outbox forever
                self.health.mark_down(exc)
        await self.outbox.append(op())
        return True

    async def _add(
        self,
        memories: Sequence[Memory],
        embeddings: Sequence[Sequence[float] | None],
        model: str | None,
        supersede: Sequence[str],
    ) -> None:
        user_id = memories[0].user_id
        await self.warm.add_many(
            list(zip(memories, embeddings, strict=True)),
            model=model,
            supersede=[(user_id, old) for old in supersede],
        )

    async def apply(self, op: dict[str, Any]) -> None:
        kind, user_id = op["op"], op["user_id"]
        if kind == "add":
            memories = [Memory.from_json_dict(d) for d in op["memories"]]
            await self._add(memories, op["embeddings"], op["model"], op.get("supersede", []))
        elif kind == "status":
            await self.warm.update_status(user_id, op["ids"], MemoryStatus(op["status"]))
        elif kind == "retype":
            await self.warm.retype(user_id, op["ids"], MemoryType(op["type"]))
        elif kind == "forget":
            await self.warm.delete(user_id, op["memory_id"])
        elif kind == "forget_user":
            await self.warm.delete_user_data(user_id)
            if self.forget_user_extra is not None:
                await self.forget_user_extra(user_id)
        else:
            raise ValueError(f"unknown outbox operation {kind!r}")

    async def flush(self) -> int:
        """Replay the outbox; returns how many entries were applied."""
        if self.outbox.pending == 0:
            return 0
        applied = 0
        while True:
            try:
                applied += await self.outbox.drain(self._apply_or_park)
                break
            except Exception as exc:
                if postgres_down(exc):
                    self.health.mark_down(exc)
                    break
                raise
        if applied:
            log.info("flushed %d queued memory write(s) to PostgreSQL", applied)
        return applied

    async def _apply_or_park(self, op: dict[str, Any]) -> None:
        try:
            await self.apply(op)
        except Exception as exc:
            if postgres_down(exc):
                raise
            # Not an outage: this entry can never apply (e.g. a constraint).  Keep it
            # for the operator instead of blocking every later write behind it.
            log.error("memory write could not be applied and was set aside: %s", exc)
            await asyncio.to_thread(self._park, op)

    @property
    def parked_dir(self) -> Path:
        """Entries that can never apply, kept for the operator (docs/cortex.md)."""
        return self.outbox.directory / PARKED_DIR

    def _park(self, op: dict[str, Any]) -> None:
        parked = self.parked_dir
        parked.mkdir(mode=0o700, exist_ok=True)
        os.chmod(parked, 0o700)  # it may predate this version, made with the umask's mode
        # Same guarantees as the outbox itself (0600, fsync of file and directory):
        # the outbox entry is deleted as soon as this returns.
        write_durably(parked, parked_name(op.get("user_id")), json.dumps(op).encode())

    def _purge_parked(self, user_id: str) -> int:
        """Delete exactly ``user_id``'s parked entries (never "demo-user"'s for "demo")."""
        parked = self.parked_dir
        if not parked.is_dir():
            return 0
        removed = 0
        for path in parked.iterdir():
            if path.is_file() and parked_owner(path) == user_id:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    async def purge_user(self, user_id: str) -> int:
        removed = await self.outbox.purge_user(user_id)
        await asyncio.to_thread(self._purge_parked, user_id)
        return removed
