"""``--daemon``, ``--status`` and ``--stop``: a locked pidfile, LSB exit codes.

The running Clara holds an ``flock`` on its pidfile for its whole life, so a
pidfile whose lock can be taken is stale, whatever pid it names.  That avoids
the classic pid-reuse trap: a recycled pid is never mistaken for Clara.

Exit codes follow the LSB init-script conventions:
``--status`` 0 running, 1 dead but pidfile exists, 3 not running;
``--stop`` 0 stopped (or was not running), 1 could not stop.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import DaemonError
from .proc import pid_alive

#: The running process's Discord shards, beside the pidfile (written by the Discord
#: runner every few seconds, read by ``--status``); JSON, see ``shard_lines``.
SHARD_STATUS_FILE = "discord-shards.json"
#: Older than this, the file's figures are shown as stale.
SHARD_STATUS_STALE_S = 60.0

STATUS_RUNNING = 0
STATUS_DEAD_PIDFILE = 1
STATUS_NOT_RUNNING = 3


@dataclass
class PidInfo:
    pid: int
    started_at: float


class PidFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Lock and write the pidfile for this process, or raise if Clara runs."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            # A plain message, not a traceback (e.g. --pidfile under a file or /proc).
            raise DaemonError(
                f"cannot create the pidfile {self.path} ({exc.strerror}); "
                "pass --pidfile with a path this user can write to"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            info = self.read()
            raise DaemonError(
                f"Clara is already running (pid {info.pid if info else '?'}, pidfile {self.path})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{time.time():.3f}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def read(self) -> PidInfo | None:
        try:
            lines = self.path.read_text().split()
            return PidInfo(int(lines[0]), float(lines[1]) if len(lines) > 1 else 0.0)
        except (OSError, ValueError, IndexError):
            return None

    def is_locked(self) -> bool:
        """True while a live Clara holds the pidfile."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


def format_uptime(seconds: float) -> str:
    seconds = int(max(0, seconds))
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    if days or hours or minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


def status(pidfile: Path) -> tuple[int, str]:
    pf = PidFile(pidfile)
    info = pf.read()
    if pf.is_locked() and info is not None:
        lines = [
            f"Clara is running (pid {info.pid}, up {format_uptime(time.time() - info.started_at)})"
        ]
        lines += shard_lines(pidfile.parent / SHARD_STATUS_FILE, info.pid)
        return STATUS_RUNNING, "\n".join(lines)
    if pidfile.exists():
        return STATUS_DEAD_PIDFILE, (
            f"Clara is not running, but a stale pidfile remains at {pidfile}"
            + (f" (pid {info.pid})" if info else "")
        )
    return STATUS_NOT_RUNNING, "Clara is not running"


def shard_lines(path: Path, pid: int, now: float | None = None) -> list[str]:
    """``--status`` lines for this process's Discord shards: which it runs, and each
    one's state and heartbeat latency.  Nothing when the file is missing, unreadable
    or another process's (a stale one from an earlier run)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict) or data.get("pid") != pid:
        return []
    age = (now if now is not None else time.time()) - float(data.get("at") or 0)
    stale = f" (as of {format_uptime(age)} ago)" if age > SHARD_STATUS_STALE_S else ""
    shards = data.get("shards") or []
    if not shards:
        return [f"Discord: not connected{stale}"]
    ids = ", ".join(str(s.get("id")) for s in shards)
    lines = [f"Discord shards {ids} of {data.get('shard_count')}{stale}:"]
    for shard in shards:
        latency = shard.get("latency_ms")
        lines.append(
            f"  shard {shard.get('id')}: {'connected' if shard.get('open') else 'reconnecting'}, "
            f"latency {'-' if latency is None else f'{latency} ms'}, "
            f"{shard.get('guilds', 0)} server(s)"
        )
    return lines


def stop(pidfile: Path, timeout: float = 30.0) -> tuple[int, str]:
    """SIGTERM, wait for a graceful exit, SIGKILL after ``timeout``."""
    pf = PidFile(pidfile)
    info = pf.read()
    if not pf.is_locked() or info is None:
        if pidfile.exists():
            with contextlib.suppress(OSError):
                pidfile.unlink()
            return 0, f"Clara was not running; removed stale pidfile {pidfile}"
        return 0, "Clara was not running"
    try:
        os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        return 0, "Clara was not running"
    except PermissionError:
        return 1, f"not allowed to signal pid {info.pid}; run as the user who started Clara"
    # The lock proves the pid is Clara's; wait for the lock *and* the process,
    # since the interpreter still tears down after releasing the pidfile.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pf.is_locked() and not pid_alive(info.pid):
            return 0, f"Clara stopped (pid {info.pid})"
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, signal.SIGKILL)
    for _ in range(50):
        if not pf.is_locked() and not pid_alive(info.pid):
            with contextlib.suppress(OSError):
                pidfile.unlink()
            return 0, f"Clara did not stop within {timeout:.0f}s and was killed (pid {info.pid})"
        time.sleep(0.1)
    return 1, f"could not stop Clara (pid {info.pid})"


class StartupPipe:
    """The daemon tells its launching parent whether start-up worked."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def send(self, message: str) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self.fd, (message.replace("\n", "\\n") + "\n").encode())
            os.close(self.fd)
        self.fd = None

    def ready(self, note: str = "") -> None:
        """Started; ``note`` says what the user should know (e.g. Discord unreachable)."""
        self.send(f"READY {os.getpid()} {note}".rstrip())

    def failed(self, code: int, message: str) -> None:
        self.send(f"ERROR {code} {message}")


def daemonize(logfile: Path, *, wait_timeout: float = 180.0) -> StartupPipe:
    """Detach (double fork).  Returns in the daemon; the launcher exits here.

    The launcher waits until the daemon reports READY (storage up and migrated,
    Discord login accepted or Discord unreachable for now)
    or an error, prints it, and exits with the daemon's exit code, so
    ``--daemon`` with a missing token still says so and returns 2.
    """
    logfile.parent.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(write_fd)
        os.waitpid(pid, 0)
        sys.exit(_await_daemon(read_fd, logfile, wait_timeout))
    os.close(read_fd)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    os.umask(0o027)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    out = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(devnull)
    os.close(out)
    return StartupPipe(write_fd)


def _await_daemon(read_fd: int, logfile: Path, timeout: float) -> int:
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            print(f"Clara is still starting after {timeout:.0f}s; see {logfile}", file=sys.stderr)
            return 1
        ready, _, _ = select.select([read_fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(read_fd, 4096)
        if not chunk:
            break
        buf += chunk
    os.close(read_fd)
    line = buf.decode(errors="replace").strip()
    if line.startswith("READY "):
        _, pid, *note = line.split(" ", 2)
        print(f"Clara started in the background (pid {pid}); logs: {logfile}")
        if note:
            print(f"note: {note[0]}".replace("\\n", "\n"), file=sys.stderr)
        return 0
    if line.startswith("ERROR "):
        _, code, message = line.split(" ", 2)
        print(message.replace("\\n", "\n"), file=sys.stderr)
        return int(code)
    print(f"Clara exited during start-up; see {logfile}", file=sys.stderr)
    return 1
