"""Exclusive ownership of CLARA_DATA_DIR and the endpoints file.

One Clara process owns a data directory at a time (an ``flock`` held for the
process lifetime).  The owner records where its embedded servers listen in
``run/endpoints.json`` so CLI commands (``migrate``, ``doctor``, ``cortex``)
can attach to a running Clara's servers instead of starting a second copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

from clara_core.errors import EmbeddedServerError


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
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_CLOEXEC (Python's default): children must not inherit the lock,
        # or an orphaned server would keep the directory "in use".
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
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
