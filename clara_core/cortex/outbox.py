"""A durable, ordered outbox for warm-tier writes made while PostgreSQL is down.

Each pending operation is one JSON file named by a monotonically increasing
sequence number, written to a temporary name, fsynced, renamed and the
directory fsynced: once ``append`` returns, the write survives a crash or a
power cut.  ``drain`` applies entries strictly in order and deletes each file
only after its transaction committed.  A crash between commit and delete
replays the entry, which is harmless because every operation is idempotent
(inserts are ``ON CONFLICT DO NOTHING``, status changes and deletes converge).

While anything is pending, new writes queue behind it instead of going
straight to PostgreSQL, so a later write (a ``forget``) can never overtake an
earlier one (the ``store`` it should delete).

File I/O runs in a worker thread: fsync can take milliseconds and the event
loop must not stall on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .types import CortexError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{12})-[0-9a-f]{32}\.json$")

Apply = Callable[[dict[str, Any]], Awaitable[None]]


def write_durably(directory: Path, name: str, data: bytes) -> None:
    """Write ``directory/name`` so that it exists whole or not at all after a crash.

    The file is created 0600 under a unique temporary name (``*.tmp``, which
    ``Outbox.open`` sweeps), fsynced, renamed into place, and the directory is
    fsynced so the rename itself is durable.  Blocking: call it in a thread."""
    tmp = directory / f"{name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask: these files hold users' words
        view = memoryview(data)
        while view:  # os.write may write less than asked
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.rename(tmp, directory / name)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Outbox:
    def __init__(self, directory: Path, *, what: str = "memory") -> None:
        self.directory = directory
        #: Names the queue in log lines (the conversation history reuses this class).
        self.what = what
        self._lock = asyncio.Lock()  # one writer / one drainer at a time
        self._next_seq: int | None = None
        self._count = 0

    async def open(self) -> int:
        """Create the directory (0700: it holds users' memories) and count what is pending."""
        names = await asyncio.to_thread(self._scan, True)
        self._count = len(names)
        self._next_seq = (int(_NAME.match(names[-1]).group(1)) + 1) if names else 1  # type: ignore[union-attr]
        if names:
            log.warning(
                "%s outbox holds %d write(s) from before; they will be flushed",
                self.what,
                self._count,
            )
        return self._count

    @property
    def pending(self) -> int:
        return self._count

    def _scan(self, create: bool = False) -> list[str]:
        if create:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.directory, 0o700)
            for leftover in self.directory.glob("*.tmp"):
                leftover.unlink(missing_ok=True)  # a write that never completed: not acknowledged
        return sorted(n for n in os.listdir(self.directory) if _NAME.match(n))

    def _write(self, name: str, data: bytes) -> None:
        write_durably(self.directory, name, data)

    async def append(self, op: dict[str, Any]) -> None:
        if self._next_seq is None:
            raise CortexError("outbox used before open()")
        data = json.dumps(op, separators=(",", ":")).encode()
        async with self._lock:
            name = f"{self._next_seq:012d}-{uuid.uuid4().hex}.json"
            self._next_seq += 1
            try:
                await asyncio.to_thread(self._write, name, data)
            except OSError as exc:
                # Both PostgreSQL and the disk failed: nothing durable is left.
                raise CortexError(f"could not queue a memory write: {exc}") from exc
            self._count += 1

    def _read(self, name: str) -> dict[str, Any]:
        return json.loads((self.directory / name).read_bytes())

    async def drain(self, apply: Apply) -> int:
        """Apply pending entries in order; stop at the first failure (it is retried later)."""
        done = 0
        async with self._lock:
            names = await asyncio.to_thread(self._scan)
            for name in names:
                op = await asyncio.to_thread(self._read, name)
                await apply(op)  # raises when PostgreSQL is still down: keep the rest
                await asyncio.to_thread((self.directory / name).unlink)
                self._count -= 1
                done += 1
        return done

    async def ops(self) -> list[dict[str, Any]]:
        """The pending operations (for tests and ``cortex stats``)."""
        names = await asyncio.to_thread(self._scan)
        return [await asyncio.to_thread(self._read, n) for n in names]

    def _purge(self, user_id: str) -> int:
        removed = 0
        for name in self._scan():
            op = self._read(name)
            if op.get("user_id") == user_id and op.get("op") != "forget_user":
                (self.directory / name).unlink()
                removed += 1
        return removed

    async def purge_user(self, user_id: str) -> int:
        """Drop a user's queued writes (they asked to be forgotten: their words must
        not linger on disk until PostgreSQL returns)."""
        async with self._lock:
            removed = await asyncio.to_thread(self._purge, user_id)
            self._count -= removed
            return removed
