"""bubblewrap backend: namespaces without a daemon.

Each command runs as the chain (measured on this machine, see docs/sandbox.md):

    sh (joins the cgroups) → prlimit (AS, CPU, NPROC, FSIZE, NOFILE, CORE)
      → setpriv --reuid/--regid <per-user uid> --clear-groups --no-new-privs
      → bwrap --unshare-all --die-with-parent --new-session … <argv>

Why each link:
- ``bwrap --uid`` started by root is still real uid 0 outside, so RLIMIT_NPROC
  is ignored and a uid-N workspace is not writable; ``setpriv`` makes the real
  uid an unprivileged one, unique per user, so NPROC counts only that user.
- cgroup v1 ``memory``/``pids`` (when writable) give a hard memory+swap and
  process cap and a reliable "kill everything" list.
- The whole chain starts with a *clean* environment: inside bwrap, PID 1 is
  bwrap itself and ``/proc/1/environ`` holds the environment it was started
  with, so ``--clearenv`` alone would leak the bot's secrets.
- A new session for the chain lets a timeout ``killpg`` it; PID 1 of the
  sandbox's PID namespace dying takes every process in it along
  (``--die-with-parent`` on the inside), and the cgroup kill catches the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from .base import (
    ExecResult,
    OutputCap,
    SandboxLimits,
    SandboxUnavailable,
    drain,
)
from .proc import Spawned, spawn
from .workspace import (
    HostWorkspaceFiles,
    Workspace,
    can_hard_quota,
    pick_uid,
    user_key,
)

log = logging.getLogger(__name__)

_CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
# The only host /etc entries a program needs to start and find its libraries;
# nothing with secrets (no shadow, no ssh, no .env).
_ETC_RO = [
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "localtime",
    "nsswitch.conf",
    "mime.types",
    "python3",
    "python3.11",
    "python3.12",
    "ssl/certs",
    "ca-certificates.conf",
]
_CGROUP_V1 = Path("/sys/fs/cgroup")
_CG_PARENT = "clara-sandbox"


def bwrap_missing() -> str | None:
    """Why this backend cannot run here, or None."""
    for tool in ("bwrap", "setpriv", "prlimit"):
        if shutil.which(tool, path=_CLEAN_PATH) is None:
            return f"{tool} is not installed (Debian: apt-get install bubblewrap util-linux)"
    return None


def _untraversable_parent(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` that "others" cannot search."""
    for parent in reversed(path.parents):
        try:
            if not os.stat(parent).st_mode & 0o001:
                return parent
        except FileNotFoundError:
            return None
    return None


@dataclass
class _Box:
    ws: Workspace
    uid: int
    hard_quota: bool
    cgroups: list[Path] = field(default_factory=list)
    procs: set[Spawned] = field(default_factory=set)
    oom_kills: int = 0  # the cgroup's oom_kill counter when last read


class BwrapBackend(HostWorkspaceFiles):
    name = "bwrap"

    def __init__(
        self,
        root: Path,
        limits: SandboxLimits,
        *,
        uid_base: int = 200_000,
        uid_count: int = 50_000,
    ) -> None:
        missing = bwrap_missing()
        if missing:
            raise SandboxUnavailable(f"bubblewrap sandbox unavailable: {missing}")
        self.root = Path(root).absolute()
        self.limits = limits
        self.uid_base = uid_base
        self.uid_count = uid_count
        self._instance = hashlib.sha256(str(self.root).encode()).hexdigest()[:8]
        self._boxes: dict[str, _Box] = {}
        self._lock = asyncio.Lock()
        self._privileged = os.geteuid() == 0
        if self._privileged:
            blocked = _untraversable_parent(self.root)
            if blocked:
                raise SandboxUnavailable(
                    f"{blocked} is not searchable by other users (mode o+x missing), so the "
                    "sandbox uid cannot reach its workspace; choose another SANDBOX_DIR or "
                    f"chmod o+x {blocked}"
                )
        self._hard_quota = can_hard_quota()
        self._cgroups = self._privileged and all(
            os.access(_CGROUP_V1 / c, os.W_OK) for c in ("memory", "pids")
        )
        if not self._privileged:
            log.warning(
                "bwrap sandbox: not root, so every sandbox runs as this process's uid "
                "(no per-user uid, no cgroup caps); run as root for full isolation"
            )
        #: Caveats for the operator: the selection line (logged once, as a warning)
        #: and ``doctor`` carry them.
        self.notes: list[str] = []
        if limits.network:
            self.notes.append(
                "network on: bwrap shares the host's network namespace, so sandboxed code "
                "can reach services on the host's loopback (Postgres, Redis); use the Docker "
                "backend (DOCKER_SANDBOX_NETWORK) for network access"
            )
        log.info(
            "bwrap sandbox: root=%s cgroups=%s hard quota=%s",
            self.root,
            "v1 memory+pids" if self._cgroups else "none (rlimits only)",
            self._hard_quota,
        )

    # -- lifecycle ---------------------------------------------------------
    async def ensure(self, user: str) -> None:
        async with self._lock:
            if user in self._boxes:
                return
            self._boxes[user] = await asyncio.to_thread(self._create_box, user)

    def _pick_uid(self, key: str) -> int:
        if not self._privileged:
            return os.geteuid()
        return pick_uid(self.root, key, self.uid_base, self.uid_count)

    def _create_box(self, user: str) -> _Box:
        key = user_key(user)
        (self.root / "ws").mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)
        uid = self._pick_uid(key)
        ws = Workspace(self.root, key, uid=uid, gid=uid, quota=self.limits.workspace_quota_bytes)
        hard = ws.prepare(hard_quota=self._hard_quota)
        box = _Box(ws=ws, uid=uid, hard_quota=hard)
        etc = self.root / "etc" / key
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "passwd").write_text(
            f"root:x:0:0:root:/root:/bin/sh\nsandbox:x:{uid}:{uid}:sandbox:/workspace:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        )
        (etc / "group").write_text(f"root:x:0:\nsandbox:x:{uid}:\nnogroup:x:65534:\n")
        (etc / "hosts").write_text("127.0.0.1 localhost sandbox\n::1 localhost\n")
        if self._cgroups:
            box.cgroups = self._make_cgroups(key)
        return box

    def _make_cgroups(self, key: str) -> list[Path]:
        # Named per backend root too: two Clara instances (or test runs) with
        # the same user must never share, and so never kill, each other's work.
        name = f"{self._instance}-{key}"
        mem = _CGROUP_V1 / "memory" / _CG_PARENT / name
        pids = _CGROUP_V1 / "pids" / _CG_PARENT / name
        try:
            mem.mkdir(parents=True, exist_ok=True)
            pids.mkdir(parents=True, exist_ok=True)
            (mem / "memory.limit_in_bytes").write_text(str(self.limits.memory_bytes))
            memsw = mem / "memory.memsw.limit_in_bytes"
            if memsw.exists():  # memory+swap: no escape into swap
                memsw.write_text(str(self.limits.memory_bytes))
            (pids / "pids.max").write_text(str(self.limits.pids))
        except OSError as exc:
            log.warning("bwrap sandbox: cgroups unusable (%s); rlimits only", exc)
            return []
        return [mem, pids]

    def _bwrap_args(self, box: _Box) -> list[str]:
        lim = self.limits
        args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session"]
        if lim.network:
            args += ["--share-net", "--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"]
        args += ["--hostname", "sandbox", "--ro-bind", "/usr", "/usr"]
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            host = Path("/") / top
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), f"/{top}"]
            elif host.is_dir():
                args += ["--ro-bind", str(host), f"/{top}"]
        for name in _ETC_RO:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        etc = self.root / "etc" / box.ws.key
        for name in ("passwd", "group", "hosts"):
            args += ["--ro-bind", str(etc / name), f"/etc/{name}"]
        args += [
            "--proc", "/proc",
            "--dev", "/dev",
            "--perms", "1777", "--size", str(min(lim.memory_bytes, 256 << 20)), "--tmpfs", "/tmp",
            "--bind", str(box.ws.dir), "/workspace",
            # bwrap's root is a scratch tmpfs the sandbox user owns: make it
            # read-only so / and /etc are not writable (only /workspace, /tmp).
            "--remount-ro", "/",
            "--chdir", "/workspace",
            "--clearenv",
            "--setenv", "PATH", _CLEAN_PATH,
            "--setenv", "HOME", "/workspace",
            "--setenv", "TMPDIR", "/tmp",
            "--setenv", "LANG", "C.UTF-8",
            "--setenv", "MPLBACKEND", "Agg",
            "--cap-drop", "ALL",
            "--",
        ]  # fmt: skip
        return args

    def _chain(self, box: _Box, argv: list[str], timeout: float) -> list[str]:
        lim = self.limits
        # Without a cgroup, the address-space rlimit is the only memory cap;
        # with one, it is a loose backstop (threads reserve lots of virtual memory).
        as_limit = lim.memory_bytes if not box.cgroups else max(4 * lim.memory_bytes, 2 << 30)
        chain: list[str] = []
        if box.cgroups:
            # The shell puts itself into the cgroups, then execs the rest of the
            # chain, so every descendant is counted and killable from the start.
            procs = [str(c / "cgroup.procs") for c in box.cgroups]
            chain += [
                "/bin/sh",
                "-c",
                'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"',
                "sh",
                *procs,
                "--",
            ]
        chain += [
            "prlimit",
            f"--as={as_limit}",
            f"--cpu={int(timeout) + 2}",
            f"--fsize={lim.max_file_bytes}",
            "--nofile=1024",
            "--core=0",
        ]
        if self._privileged:
            # RLIMIT_NPROC counts every process of the *real* uid: only
            # meaningful for the sandbox's own uid.  Unprivileged, it would
            # count the bot's own threads too and make the fork fail.
            chain.append(f"--nproc={lim.pids}")
        chain.append("--")
        if self._privileged:
            chain += [
                "setpriv",
                f"--reuid={box.uid}",
                f"--regid={box.uid}",
                "--clear-groups",
                "--no-new-privs",
                "--",
            ]
        return chain + self._bwrap_args(box) + list(argv)

    # -- exec ----------------------------------------------------------------
    async def exec(
        self,
        user: str,
        argv: list[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        if not argv:
            raise ValueError("argv must not be empty")
        await self.ensure(user)
        box = self._boxes[user]
        timeout = timeout or self.limits.exec_timeout_s
        t0 = time.monotonic()
        if box.cgroups and not all(cg.is_dir() for cg in box.cgroups):
            # Removed behind our back (an operator cleaning up): recreate, or the
            # chain's first link would fail on every command from now on.
            box.cgroups = await asyncio.to_thread(self._make_cgroups, box.ws.key)
        proc = await spawn(
            self._chain(box, argv, timeout),
            env={"PATH": _CLEAN_PATH},  # never the bot's environment (see module doc)
            stdin=stdin is not None,
        )
        box.procs.add(proc)
        out = OutputCap(self.limits.output_limit_bytes)
        err = OutputCap(self.limits.output_limit_bytes)
        timed_out = False
        readers = asyncio.gather(drain(proc.stdout, out), drain(proc.stderr, err), proc.wait())
        try:
            if stdin is not None:
                feeding = asyncio.ensure_future(proc.feed_stdin(stdin))
            try:
                await asyncio.wait_for(asyncio.shield(readers), timeout)
            except TimeoutError:
                timed_out = True
        except BaseException:  # cancelled (stop phrase): kill, then propagate
            await self._kill(box, proc)
            readers.cancel()
            with contextlib.suppress(BaseException):
                await readers
            raise
        finally:
            box.procs.discard(proc)
        if timed_out:
            await self._kill(box, proc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(readers, 5)
        if stdin is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(feeding, 5)
        # After a normal exit, bwrap's PID 1 exiting already took the namespace
        # down; this catches anything that slipped into the cgroup another way.
        oom = await asyncio.to_thread(self._after_exec, box)
        notes = []
        code = proc.returncode
        if code is not None and code < 0 and not timed_out:
            notes.append(f"killed by signal {signal.Signals(-code).name}")
        if oom:
            notes.append(
                f"killed: the sandbox's memory limit ({self.limits.memory_bytes >> 20} MiB) "
                "was reached"
            )
        return await self._finish(
            box, out, err, code=code, timed_out=timed_out, timeout=timeout, t0=t0, notes=notes
        )

    def _after_exec(self, box: _Box) -> bool:
        self._kill_cgroup(box)
        return self._oom_hit(box)

    def _oom_hit(self, box: _Box) -> bool:
        """Whether the kernel OOM-killed something in the box since the last look."""
        for cg in box.cgroups:
            ctl = cg / "memory.oom_control"
            if not ctl.exists():
                continue
            try:
                fields = dict(line.split() for line in ctl.read_text().splitlines())
                kills = int(fields.get("oom_kill", "0"))
            except (OSError, ValueError):
                return False
            hit = kills > box.oom_kills
            box.oom_kills = kills
            return hit
        return False

    async def _kill(self, box: _Box, proc: Spawned) -> None:
        proc.kill_group()
        await asyncio.to_thread(self._kill_cgroup, box)
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await asyncio.wait_for(proc.wait(), 5)

    def _kill_cgroup(self, box: _Box) -> None:
        """SIGKILL every process in the box's cgroups until none is left."""
        for cg in box.cgroups:
            procs = cg / "cgroup.procs"
            for _ in range(50):
                try:
                    pids = [int(p) for p in procs.read_text().split()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.01)

    # -- teardown ----------------------------------------------------------
    async def recycle(self, user: str) -> None:
        box = self._boxes.get(user)
        if box is None:
            return
        for proc in list(box.procs):
            await self._kill(box, proc)
        await asyncio.to_thread(self._kill_cgroup, box)

    async def reap(self, user: str) -> None:
        await self.recycle(user)
        async with self._lock:
            box = self._boxes.pop(user, None)
        if box is not None:
            await asyncio.to_thread(self._free_box, box)

    def _free_box(self, box: _Box) -> None:
        self._kill_cgroup(box)
        box.ws.unmount()
        for cg in box.cgroups:
            with contextlib.suppress(OSError):
                cg.rmdir()
        shutil.rmtree(self.root / "etc" / box.ws.key, ignore_errors=True)

    async def live_sandboxes(self) -> list[str]:
        return list(self._boxes)

    async def delete_user_data(self, user: str) -> None:
        await self.reap(user)
        key = user_key(user)
        ws = Workspace(self.root, key, uid=0, gid=0, quota=0)
        await asyncio.to_thread(ws.destroy)

    async def close(self) -> None:
        for user in list(self._boxes):
            await self.reap(user)
