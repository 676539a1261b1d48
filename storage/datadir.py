"""Exclusive ownership of CLARA_DATA_DIR and the endpoints file.

One Clara process owns a data directory at a time (an ``flock`` held for the
process lifetime).  The owner records where its embedded servers listen in
``run/endpoints.json`` so CLI commands (``migrate``, ``doctor``, ``cortex``)
can attach to a running Clara's servers instead of starting a second copy.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

from clara_core.errors import DataDirError, EmbeddedServerError

_PROBE_REASONS = {
    errno.EROFS: "it is on a read-only file system",
    errno.EACCES: "this user (uid {uid}) may not write to it",
    errno.EPERM: "this user (uid {uid}) may not write to it",
    errno.ENOSPC: "its disk is full",
    errno.EDQUOT: "this user's disk quota is used up",
    # /proc, /sys and similar pseudo file systems refuse new files this way.
    errno.ENOENT: "new files cannot be created in it",
}

_MKDIR_REASONS = {
    errno.EROFS: "it would be on a read-only file system",
    errno.EACCES: "this user (uid {uid}) may not create it",
    errno.EPERM: "this user (uid {uid}) may not create it",
    errno.ENOSPC: "the disk is full",
    errno.ENOENT: "it cannot be created there",
}


def ensure_writable_dir(path: Path, *, setting: str = "CLARA_DATA_DIR") -> None:
    """Create ``path`` if needed and prove Clara can write there, or raise ``DataDirError``.

    The proof is a real write (create, fsync, remove a probe file), not mode bits:
    root ignores permissions, a read-only mount or a pseudo file system does not.
    Blocking (an fsync): call it before the event loop starts or in a thread.
    """
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:  # exist_ok covers directories only
        raise _unusable(path, setting, "it is a file, not a directory") from None
    except NotADirectoryError:
        raise _unusable(path, setting, "part of that path is a file, not a directory") from None
    except OSError as exc:
        reason = _MKDIR_REASONS.get(exc.errno or 0, "it cannot be created ({strerror})")
        raise _unusable(path, setting, _fill(reason, exc)) from None
    probe = path / f".clara-write-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"ok\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink()
        reason = _PROBE_REASONS.get(exc.errno or 0, "writing a file there failed ({strerror})")
        raise _unusable(path, setting, _fill(reason, exc)) from None


def _fill(reason: str, exc: OSError) -> str:
    return reason.format(uid=os.geteuid(), strerror=exc.strerror or type(exc).__name__)


def _unusable(path: Path, setting: str, reason: str) -> DataDirError:
    return DataDirError(
        f"{setting}={path} cannot be used: {reason}. Point {setting} at a directory this user "
        "can write to (Clara creates it if it is missing), or fix that directory's "
        "permissions or mount."
    )


@dataclass
class Endpoints:
    pid: int
    database_url: str | None
    redis_url: str | None


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / ".lock"
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            # O_CLOEXEC (Python's default): children must not inherit the lock,
            # or an orphaned server would keep the directory "in use".
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            # Say *why* the directory is unusable (a file, read-only, ...), not errno.
            ensure_writable_dir(self.data_dir)
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def holder_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int(self.path.read_text().strip())
        return None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
            self._fd = None

    def acquire_or_raise(self) -> None:
        if not self.try_acquire():
            raise EmbeddedServerError(
                f"CLARA_DATA_DIR {self.data_dir} is in use by another Clara process "
                f"(pid {self.holder_pid()}); stop it first (python discord_bot.py --stop) "
                "or use another CLARA_DATA_DIR"
            )


def endpoints_path(data_dir: Path) -> Path:
    return data_dir / "run" / "endpoints.json"


def write_endpoints(data_dir: Path, endpoints: Endpoints) -> None:
    path = endpoints_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(endpoints.__dict__))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def read_endpoints(data_dir: Path) -> Endpoints | None:
    try:
        return Endpoints(**json.loads(endpoints_path(data_dir).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def clear_endpoints(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        endpoints_path(data_dir).unlink()
