"""Per-user workspaces on the host, shared by the bwrap and Docker backends.

A workspace is the one directory a sandbox may write, bound read-write at
``/workspace``.  It persists between sandboxes (reaped sandboxes keep their
files) until ``delete_user_data``.

Quota: when running as root with loop devices, each workspace is an ext4
image file of ``quota`` bytes, loop-mounted while its sandbox lives — a hard
cap the program cannot write past (ENOSPC).  Without loop devices the
directory is plain and the quota is only checked after each command (logged
as a warning at start: "soft quota").

Host-side file access (put/get/list) walks the path one component at a time
with ``O_NOFOLLOW`` relative to the workspace's directory fd, because the
workspace content is attacker-controlled: a symlink ``x -> /etc/shadow``
planted by sandboxed code must never be followed by the root-owned host
process.  Everything here blocks, so backends call it through
``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

from .base import ExecResult, FileInfo, SandboxError, SandboxPathError, SandboxQuotaExceeded

log = logging.getLogger(__name__)

_SAFE_RE = re.compile(r"[^a-zA-Z0-9_.-]")


def user_key(user: str) -> str:
    """A filesystem/container-safe name for a user id that cannot collide."""
    digest = hashlib.sha256(user.encode()).hexdigest()[:12]
    readable = _SAFE_RE.sub("_", user)[:24]
    return f"{readable}-{digest}"


def split_rel(path: str) -> list[str]:
    """Validate a workspace-relative path and return its components.

    Accepts ``a/b``, ``./a``, ``/workspace/a`` (the in-sandbox absolute form);
    refuses ``..``, other absolute paths and NUL bytes.
    """
    if "\x00" in path:
        raise SandboxPathError("a path may not contain NUL bytes")
    p = path.strip()
    if p in ("/workspace", "/workspace/"):
        p = "."
    elif p.startswith("/workspace/"):
        p = p[len("/workspace/") :]
    elif p.startswith("/"):
        raise SandboxPathError(
            f"{path!r} is outside the workspace; use a path relative to /workspace"
        )
    parts = [c for c in p.split("/") if c not in ("", ".")]
    if any(c == ".." for c in parts):
        raise SandboxPathError(f"{path!r} leaves the workspace ('..' is not allowed)")
    return parts


class Workspace:
    """One user's workspace directory (and, when hard quotas work, its image)."""

    def __init__(self, root: Path, key: str, *, uid: int, gid: int, quota: int) -> None:
        self.key = key
        self.dir = root / "ws" / key
        self.image = root / "img" / f"{key}.ext4"
        self.uid = uid
        self.gid = gid
        self.quota = quota

    # -- lifecycle --------------------------------------------------------
    def prepare(self, *, hard_quota: bool) -> bool:
        """Create (and mount) the workspace; return whether the quota is hard."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if hard_quota and not os.path.ismount(self.dir):
            try:
                self._mount_image()
            except (OSError, subprocess.CalledProcessError) as exc:
                log.warning(
                    "workspace %s: hard quota unavailable (%s); using a soft quota", self.key, exc
                )
        mounted = os.path.ismount(self.dir)
        st = os.lstat(self.dir)
        if (st.st_uid, st.st_gid) != (self.uid, self.gid):
            os.chown(self.dir, self.uid, self.gid)
        os.chmod(self.dir, 0o700)  # no other sandbox uid may even list it
        return mounted

    def _mount_image(self) -> None:
        self.image.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.image.exists()
        if fresh:
            with open(self.image, "wb") as f:
                f.truncate(self.quota)
            subprocess.run(
                [
                    *("mkfs.ext4", "-q", "-F", "-m", "0"),
                    *("-E", f"root_owner={self.uid}:{self.gid}", str(self.image)),
                ],
                check=True,
                capture_output=True,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            )
        subprocess.run(
            ["mount", "-o", "loop,nosuid,nodev", str(self.image), str(self.dir)],
            check=True,
            capture_output=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        if fresh:
            shutil.rmtree(self.dir / "lost+found", ignore_errors=True)

    def unmount(self) -> None:
        if os.path.ismount(self.dir):
            r = subprocess.run(
                ["umount", "-l", str(self.dir)],
                capture_output=True,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            )
            if r.returncode != 0:
                log.warning("could not unmount %s: %s", self.dir, r.stderr.decode().strip())

    def destroy(self) -> None:
        self.unmount()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.image.unlink(missing_ok=True)

    def usage(self) -> int:
        """Bytes used by the workspace (lstat sizes, symlinks not followed)."""
        total = 0
        for dirpath, dirnames, filenames in os.walk(self.dir, followlinks=False):
            for name in filenames + dirnames:
                with contextlib.suppress(OSError):  # deleted meanwhile
                    total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
        return total

    # -- safe host-side file access ----------------------------------------
    def _open_dir(self, parts: list[str], *, create: bool) -> int:
        """An fd for the directory ``parts`` inside the workspace, never following links."""
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for comp in parts:
                try:
                    nfd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise SandboxPathError(f"no such directory: {comp}") from None
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    os.chown(comp, self.uid, self.gid, dir_fd=fd, follow_symlinks=False)
                    nfd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise SandboxPathError(
                            f"{comp!r} is a symlink or not a directory; links are not followed"
                        ) from None
                    raise
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def write(self, path: str, data: bytes) -> None:
        parts = split_rel(path)
        if not parts:
            raise SandboxPathError("give a file name, not the workspace itself")
        dfd = self._open_dir(parts[:-1], create=True)
        try:
            try:
                fd = os.open(
                    parts[-1],
                    os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                    0o644,
                    dir_fd=dfd,
                )
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.EISDIR):
                    raise SandboxPathError(
                        f"{path!r} is a symlink or directory; not overwritten"
                    ) from None
                raise
            try:
                os.fchown(fd, self.uid, self.gid)
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    raise SandboxQuotaExceeded(
                        f"the workspace is full ({self.quota:,} bytes); delete files first"
                    ) from None
                raise
            finally:
                os.close(fd)
        finally:
            os.close(dfd)

    def read(self, path: str, max_bytes: int | None = None) -> bytes:
        parts = split_rel(path)
        if not parts:
            raise SandboxPathError("give a file name, not the workspace itself")
        dfd = self._open_dir(parts[:-1], create=False)
        try:
            try:
                fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
            except FileNotFoundError:
                raise SandboxPathError(f"no such file in the workspace: {path}") from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise SandboxPathError(
                        f"{path!r} is a symlink; links are not followed"
                    ) from None
                raise
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):  # FIFOs/devices would block or lie
                    raise SandboxPathError(f"{path!r} is not a regular file")
                if max_bytes is not None and st.st_size > max_bytes:
                    raise SandboxPathError(
                        f"{path!r} is {st.st_size:,} bytes, more than the {max_bytes:,} allowed"
                    )
                chunks = []
                while True:
                    b = os.read(fd, 1 << 20)
                    if not b:
                        break
                    chunks.append(b)
                return b"".join(chunks)
            finally:
                os.close(fd)
        finally:
            os.close(dfd)

    def listdir(self, path: str = ".") -> list[FileInfo]:
        parts = split_rel(path)
        dfd = self._open_dir(parts, create=False)
        prefix = "/".join(parts)
        out = []
        try:
            for name in sorted(os.listdir(dfd)):
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                rel = f"{prefix}/{name}" if prefix else name
                out.append(FileInfo(rel, st.st_size, stat.S_ISDIR(st.st_mode), st.st_mtime_ns))
        finally:
            os.close(dfd)
        return out

    def remove(self, path: str) -> None:
        parts = split_rel(path)
        if not parts:
            raise SandboxPathError("refusing to delete the whole workspace")
        dfd = self._open_dir(parts[:-1], create=False)
        try:
            try:
                st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                raise SandboxPathError(f"no such file in the workspace: {path}") from None
            if stat.S_ISDIR(st.st_mode):
                raise SandboxPathError(f"{path!r} is a directory; remove it with a command")
            os.unlink(parts[-1], dir_fd=dfd)
        finally:
            os.close(dfd)


def pick_uid(root: Path, key: str, base: int, count: int) -> int:
    """A host uid for the user's sandbox processes, unique among workspaces.

    The workspace directory's owner is authoritative, so a user keeps their
    uid across restarts; a new user gets a free uid near a hash of the key.
    """
    ws_root = root / "ws"
    try:
        uid = os.stat(ws_root / key).st_uid
        if base <= uid < base + count:
            return uid
    except FileNotFoundError:
        pass
    taken = set()
    try:
        for entry in os.scandir(ws_root):
            taken.add(entry.stat(follow_symlinks=False).st_uid)
    except FileNotFoundError:
        pass
    start = int(hashlib.sha256(key.encode()).hexdigest(), 16) % count
    for i in range(count):
        uid = base + (start + i) % count
        if uid not in taken:
            return uid
    raise SandboxError("no free sandbox uid is left; raise the uid range")


def can_hard_quota() -> bool:
    return (
        os.geteuid() == 0
        and os.path.exists("/dev/loop-control")
        and shutil.which("mkfs.ext4", path="/usr/sbin:/sbin:/usr/bin") is not None
    )


def check_soft_quota(ws: Workspace) -> str | None:
    """After a command on a soft-quota workspace: a note if it went over."""
    used = ws.usage()
    if used > ws.quota:
        return (
            f"the workspace uses {used:,} bytes, over its {ws.quota:,}-byte quota; "
            "delete files before writing more"
        )
    return None


__all__ = ["Workspace", "can_hard_quota", "check_soft_quota", "pick_uid", "split_rel", "user_key"]


class HostWorkspaceFiles:
    """The file half of a backend whose workspaces live on this host (bwrap binds
    them, Docker bind-mounts them): ensure the user's sandbox, then work on the host
    side of its workspace, off the event loop.  The backend provides ``ensure`` and
    ``_boxes`` (user -> an object with ``.ws``, its Workspace)."""

    _boxes: dict[str, Any]

    async def _finish(
        self,
        box: Any,
        out: Any,
        err: Any,
        *,
        code: int | None,
        timed_out: bool,
        timeout: float,
        t0: float,
        notes: list[str],
    ) -> ExecResult:
        """The result of one command: the capped streams, the exit status (none after a
        timeout), and a note when a soft workspace quota was passed."""
        if not box.hard_quota:
            note = await asyncio.to_thread(check_soft_quota, box.ws)
            if note:
                notes.append(note)
        return ExecResult(
            stdout=out.text(),
            stderr=err.text(),
            exit_code=None if timed_out else code,
            timed_out=timed_out,
            timeout_s=timeout,
            stdout_bytes=out.total,
            stderr_bytes=err.total,
            duration_s=time.monotonic() - t0,
            notes=notes,
        )

    async def _ws(self, user: str) -> Workspace:
        await self.ensure(user)  # type: ignore[attr-defined]
        return self._boxes[user].ws

    async def put_file(self, user: str, path: str, data: bytes) -> None:
        ws = await self._ws(user)
        await asyncio.to_thread(ws.write, path, data)

    async def get_file(self, user: str, path: str, *, max_bytes: int | None = None) -> bytes:
        ws = await self._ws(user)
        return await asyncio.to_thread(ws.read, path, max_bytes)

    async def list_files(self, user: str, path: str = ".") -> list[FileInfo]:
        ws = await self._ws(user)
        return await asyncio.to_thread(ws.listdir, path)

    async def delete_file(self, user: str, path: str) -> None:
        ws = await self._ws(user)
        await asyncio.to_thread(ws.remove, path)
