"""What every execution backend offers, and the errors it raises.

``sandbox/`` knows nothing of LLMs or Discord: it runs argv lists for a user
id in an isolated environment with a persistent per-user workspace.  The
model-facing wrappers live in ``tools/sandbox_tools.py``.

Errors are named for *who can act on them*:

- ``SandboxUnavailable``: the operator (backend not installed, daemon down).
- ``SandboxBusy``: the user, later (every sandbox slot is running code).
- ``SandboxPathError``: the model/user (a path that leaves the workspace,
  a missing file).
- ``SandboxQuotaExceeded``: the user (delete files from the workspace).

A command that times out, is killed or exits non-zero is *not* an error: it
comes back as an ``ExecResult`` the model can read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from clara_core.errors import ClaraError


class SandboxError(ClaraError):
    """Root of every sandbox failure."""


class SandboxUnavailable(SandboxError):
    """The backend cannot run at all here; the operator must install or start it."""


class SandboxBusy(SandboxError):
    """Every sandbox slot is in use; the user should try again shortly."""


class SandboxPathError(SandboxError):
    """A workspace path is invalid, escapes the workspace, or does not exist."""


class SandboxQuotaExceeded(SandboxError):
    """The workspace is full; the user must delete files first."""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-sandbox limits shared by every backend."""

    memory_bytes: int = 512 * 1024 * 1024
    cpus: float = 1.0
    pids: int = 128
    exec_timeout_s: float = 30.0
    output_limit_bytes: int = 64 * 1024
    workspace_quota_bytes: int = 200 * 1024 * 1024
    max_file_bytes: int = 100 * 1024 * 1024
    network: bool = False


@dataclass
class ExecResult:
    """What a command printed and how it ended.

    ``stdout``/``stderr`` are capped (head and tail kept, see ``OutputCap``);
    ``*_bytes`` are the real sizes the program wrote.
    """

    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool = False
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    duration_s: float = 0.0
    timeout_s: float | None = None  # the limit the command ran under
    notes: list[str] = field(default_factory=list)  # e.g. "sandbox was restarted"

    @property
    def truncated(self) -> bool:
        return self.stdout_bytes > len(self.stdout.encode()) or self.stderr_bytes > len(
            self.stderr.encode()
        )

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True)
class FileInfo:
    path: str  # relative to the workspace, "/"-separated
    size: int
    is_dir: bool
    #: Modification time in ns (0: unknown, e.g. an older sandbox service).  Lets
    #: the tools notice a file a command rewrote at the same size (a re-drawn plot).
    mtime_ns: int = 0


class OutputCap:
    """Collects a stream, keeping its first and last bytes and counting the rest.

    The head says how a program started, the tail how it failed; a 100 MB
    print loop costs ``limit`` bytes of memory, not 100 MB.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 64)
        self._head_limit = self.limit // 2
        self._tail_limit = self.limit - self._head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self._head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self._tail_limit:
                del self.tail[: len(self.tail) - self._tail_limit]

    def text(self) -> str:
        kept = len(self.head) + len(self.tail)
        if self.total <= kept:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", "replace")
        skipped = self.total - kept
        return (
            bytes(self.head).decode("utf-8", "replace")
            + f"\n… [{skipped:,} bytes omitted; {self.total:,} bytes in all] …\n"
            + bytes(self.tail).decode("utf-8", "replace")
        )


async def drain(stream: asyncio.StreamReader | None, cap: OutputCap) -> None:
    """Read a subprocess pipe to EOF into ``cap`` (never holding more than the cap)."""
    if stream is None:
        return
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return
        cap.feed(chunk)


@runtime_checkable
class Backend(Protocol):
    """One kind of isolation (bwrap, Docker, remote).  All methods are async and
    never block the event loop; ``user`` is an opaque id the backend maps to
    its own safe names."""

    name: str

    async def ensure(self, user: str) -> None:
        """Create (or revive) the user's sandbox and workspace."""

    async def exec(
        self,
        user: str,
        argv: list[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run ``argv`` in the workspace; kills everything it started by the end."""

    async def put_file(self, user: str, path: str, data: bytes) -> None: ...

    async def get_file(self, user: str, path: str, *, max_bytes: int | None = None) -> bytes: ...

    async def list_files(self, user: str, path: str = ".") -> list[FileInfo]: ...

    async def delete_file(self, user: str, path: str) -> None: ...

    async def recycle(self, user: str) -> None:
        """Kill everything running for the user and start fresh (workspace kept)."""

    async def reap(self, user: str) -> None:
        """Stop and free the user's sandbox (the workspace files stay on disk)."""

    async def live_sandboxes(self) -> list[str]:
        """Ids of users with a running sandbox (for the reaper and benchmarks)."""

    async def delete_user_data(self, user: str) -> None:
        """Reap and delete the workspace for good (``/clara forget``)."""

    async def close(self) -> None:
        """Reap every sandbox this backend started."""
