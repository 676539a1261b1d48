"""Per-user sandbox lifecycle on top of one backend.

- one sandbox per user, created on first use, its commands serialised (a
  user's second command waits for the first; the backends' kill-leftovers
  logic relies on it);
- at most ``max_sandboxes`` alive: a new user evicts the least recently used
  *idle* sandbox, and gets ``SandboxBusy`` when every one is running code;
- an idle reaper that really runs (a task started by ``start()``), on an
  injected clock so tests can age sandboxes without sleeping;
- backend choice for ``SANDBOX_MODE=auto``: remote if SANDBOX_API_URL is
  set, else Docker if a daemon answers (and the image is there), else
  bubblewrap — the choice and the reasons are logged and kept in
  ``SandboxManager.selection`` for ``doctor``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .base import (
    Backend,
    ExecResult,
    FileInfo,
    SandboxBusy,
    SandboxLimits,
    SandboxUnavailable,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass
class _Slot:
    last_used: float
    busy: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SandboxManager:
    def __init__(
        self,
        backend: Backend,
        *,
        idle_timeout: float = 900.0,
        max_sandboxes: int = 10,
        clock: Clock = time.monotonic,
        reap_interval: float | None = None,
        selection: str = "",
    ) -> None:
        self.backend = backend
        self.idle_timeout = idle_timeout
        self.max_sandboxes = max_sandboxes
        self.clock = clock
        self.reap_interval = reap_interval or max(1.0, min(60.0, idle_timeout / 4))
        self.selection = selection or f"{backend.name} (chosen explicitly)"
        self._slots: dict[str, _Slot] = {}
        self._admit_lock = asyncio.Lock()
        self._reaper: asyncio.Task[None] | None = None
        self.reaped_total = 0

    @property
    def mode(self) -> str:
        return self.backend.name

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        """Start the idle reaper (idempotent; needs a running loop)."""
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap_loop(), name="sandbox-reaper")

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reap_interval)
            try:
                await self.reap_idle()
            except Exception:  # one bad reap must not stop the reaper for good
                log.exception("sandbox reaper pass failed")

    async def reap_idle(self) -> list[str]:
        """Reap every sandbox idle longer than ``idle_timeout``; return their users."""
        now = self.clock()
        victims = [
            u
            for u, s in self._slots.items()
            if s.busy == 0 and now - s.last_used >= self.idle_timeout
        ]
        for user in victims:
            await self._reap(user, why="idle")
        return victims

    async def _reap(self, user: str, *, why: str) -> None:
        slot = self._slots.get(user)
        if slot is None or slot.busy:
            return
        self._slots.pop(user, None)
        try:
            await self.backend.reap(user)
        except Exception:
            log.exception("reaping the sandbox of %s failed", user)
        self.reaped_total += 1
        log.info("sandbox of %s reaped (%s)", user, why)

    async def stop(self) -> None:
        """Stop the reaper (the backend keeps running)."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None

    async def close(self) -> None:
        await self.stop()
        await self.backend.close()
        self._slots.clear()

    # -- admission -----------------------------------------------------------
    async def _admit(self, user: str) -> _Slot:
        async with self._admit_lock:
            slot = self._slots.get(user)
            if slot is None:
                if len(self._slots) >= self.max_sandboxes:
                    idle = [(s.last_used, u) for u, s in self._slots.items() if s.busy == 0]
                    if not idle:
                        raise SandboxBusy(
                            f"all {self.max_sandboxes} sandboxes are running code right now; "
                            "try again in a minute"
                        )
                    await self._reap(min(idle)[1], why="making room for a new user")
                slot = self._slots[user] = _Slot(last_used=self.clock())
            slot.busy += 1  # counted before the lock is released: no reap in between
            return slot

    async def _run(self, user: str, op: Callable[[], Any]) -> Any:
        slot = await self._admit(user)
        try:
            async with slot.lock:
                return await op()
        finally:
            slot.busy -= 1
            slot.last_used = self.clock()

    # -- operations ----------------------------------------------------------
    async def exec(
        self,
        user: str,
        argv: list[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        result: ExecResult = await self._run(
            user, lambda: self.backend.exec(user, argv, stdin=stdin, timeout=timeout)
        )
        log.debug(
            "sandbox exec for %s: exit=%s timed_out=%s %.0f ms",
            user,
            result.exit_code,
            result.timed_out,
            result.duration_s * 1000,
        )
        return result

    async def put_file(self, user: str, path: str, data: bytes) -> None:
        await self._run(user, lambda: self.backend.put_file(user, path, data))

    async def get_file(self, user: str, path: str, *, max_bytes: int | None = None) -> bytes:
        data: bytes = await self._run(
            user, lambda: self.backend.get_file(user, path, max_bytes=max_bytes)
        )
        return data

    async def list_files(self, user: str, path: str = ".") -> list[FileInfo]:
        files: list[FileInfo] = await self._run(user, lambda: self.backend.list_files(user, path))
        return files

    async def delete_file(self, user: str, path: str) -> None:
        await self._run(user, lambda: self.backend.delete_file(user, path))

    async def ensure(self, user: str) -> None:
        """Create the user's sandbox now (it is otherwise created on first use)."""
        await self._run(user, lambda: self.backend.ensure(user))

    async def recycle(self, user: str) -> None:
        await self.backend.recycle(user)

    async def reap(self, user: str) -> None:
        """Stop the user's sandbox now, killing what runs in it (the files stay)."""
        self._slots.pop(user, None)
        await self.backend.reap(user)

    async def delete_user_data(self, user: str) -> None:
        """``/clara forget``: stop the sandbox and delete the workspace."""
        self._slots.pop(user, None)
        await self.backend.delete_user_data(user)

    def live_users(self) -> list[str]:
        return list(self._slots)

    def status(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "selection": self.selection,
            "live": len(self._slots),
            "busy": sum(1 for s in self._slots.values() if s.busy),
            "max": self.max_sandboxes,
            "reaped_total": self.reaped_total,
        }


# -- construction from settings -------------------------------------------------
_MEM_RE = re.compile(r"^(\d+)([bkmg]?)$")


def parse_docker_memory(value: str) -> int:
    m = _MEM_RE.match(value.strip().lower())
    if not m:
        raise ValueError(f"bad memory size {value!r}; use 512m or 1g")
    n, unit = m.groups()
    return int(n) * {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]


def limits_from_settings(settings: Any) -> SandboxLimits:
    return SandboxLimits(
        memory_bytes=parse_docker_memory(settings.docker_sandbox_memory),
        cpus=float(settings.docker_sandbox_cpu),
        pids=int(settings.sandbox_pids_limit),
        exec_timeout_s=float(settings.sandbox_exec_timeout),
        output_limit_bytes=int(settings.sandbox_output_limit),
        workspace_quota_bytes=int(settings.sandbox_workspace_quota),
        max_file_bytes=min(int(settings.sandbox_workspace_quota), 100 * 1024 * 1024),
        network=bool(settings.sandbox_network),
    )


def _make_docker(
    settings: Any, root: Path, limits: SandboxLimits, *, probe: bool = False
) -> Backend:
    from .docker import DockerBackend

    return DockerBackend(
        root,
        limits,
        image=settings.docker_sandbox_image,
        network=settings.docker_sandbox_network,
        remove_stale=not probe,
    )


def _make_bwrap(settings: Any, root: Path, limits: SandboxLimits) -> Backend:
    from .bwrap import BwrapBackend

    return BwrapBackend(root, limits)


async def _make_remote(settings: Any) -> Backend:
    from .remote import RemoteBackend

    key = settings.sandbox_api_key.get_secret_value() if settings.sandbox_api_key else ""
    if not key:
        raise SandboxUnavailable("SANDBOX_API_URL is set but SANDBOX_API_KEY is not")
    backend = RemoteBackend(
        settings.sandbox_api_url,
        key,
        request_timeout=float(settings.sandbox_timeout),
        exec_timeout=float(settings.sandbox_exec_timeout),
    )
    try:
        await backend.health()
    except Exception:
        await backend.close()
        raise
    return backend


async def select_backend(settings: Any, *, probe: bool = False) -> tuple[Backend, str]:
    """The backend SANDBOX_MODE asks for, and a sentence saying why (for logs/doctor).

    Raises SandboxUnavailable (with every reason) when none can run.  ``probe``
    (``doctor``): decide only, touching nothing a running Clara owns (Docker's
    stale-container sweep is skipped); close the backend afterwards.
    """
    make_docker = partial(_make_docker, probe=probe)
    mode = settings.sandbox_mode
    limits = limits_from_settings(settings)
    root = Path(settings.sandbox_dir).absolute()
    reasons = []
    if mode == "remote":
        if not settings.sandbox_api_url:
            raise SandboxUnavailable("SANDBOX_MODE=remote needs SANDBOX_API_URL")
        return await _make_remote(
            settings
        ), f"remote {settings.sandbox_api_url} (SANDBOX_MODE=remote)"
    if mode == "auto" and settings.sandbox_api_url:
        try:
            return await _make_remote(settings), f"remote {settings.sandbox_api_url} (auto)"
        except SandboxUnavailable as exc:
            # Not logged here: the one selection line says it (build_sandbox_manager).
            reasons.append(f"remote: {exc}")
    if mode == "local":
        backend = await asyncio.to_thread(make_docker, settings, root, limits)
        return backend, _with_notes(backend, "docker (SANDBOX_MODE=local)")
    if mode == "bwrap":
        backend = await asyncio.to_thread(_make_bwrap, settings, root, limits)
        return backend, _with_notes(backend, "bwrap (SANDBOX_MODE=bwrap)")
    for name, make in (("docker", make_docker), ("bwrap", _make_bwrap)):
        try:
            backend = await asyncio.to_thread(make, settings, root, limits)
        except SandboxUnavailable as exc:
            reasons.append(f"{name}: {exc}")
            continue
        why = f"{name} (auto" + (f"; skipped {'; '.join(reasons)}" if reasons else "") + ")"
        return backend, _with_notes(backend, why)
    raise SandboxUnavailable("no sandbox backend can run here: " + " | ".join(reasons))


def _with_notes(backend: Backend, why: str) -> str:
    """The selection sentence plus the backend's caveats (e.g. network off)."""
    notes = getattr(backend, "notes", None) or []
    return "; ".join([why, *notes])


def _is_fallback(why: str) -> bool:
    """Whether the operator should look: a backend was skipped ("auto; skipped …")
    or has a caveat (``_with_notes``); both join with "; "."""
    return "; " in why


async def build_sandbox_manager(
    settings: Any, *, clock: Clock = time.monotonic
) -> SandboxManager | None:
    """The composition root's one call: a started manager, or None (logged) when
    no backend can run — the sandbox tools are then simply not offered."""
    try:
        backend, why = await select_backend(settings)
    except SandboxUnavailable as exc:
        log.warning("code sandbox disabled: %s", exc)
        return None
    # Said once, and as a warning when something the operator asked for or could
    # have (remote, Docker, the network) was not available.
    log.log(logging.WARNING if _is_fallback(why) else logging.INFO, "code sandbox: %s", why)
    manager = SandboxManager(
        backend,
        idle_timeout=float(settings.docker_sandbox_timeout),
        max_sandboxes=int(settings.sandbox_max_sandboxes),
        clock=clock,
        selection=why,
    )
    manager.start()
    return manager
