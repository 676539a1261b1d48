"""Docker backend: one long-lived container per user, via the ``docker`` SDK.

The SDK is synchronous, so every call runs in ``asyncio.to_thread``.

Container: ``--network none`` unless SANDBOX_NETWORK=on, then the Docker network
DOCKER_SANDBOX_NETWORK (default ``bridge``; a dockerd started with
``--bridge=none`` has none, so a missing network degrades to no network and the
backend says so in ``notes``, which the log line and ``doctor`` carry), memory = memory+swap
limit, pids limit, CPU quota, read-only root with a tmpfs ``/tmp``, the user's
workspace bind-mounted at ``/workspace`` (``put_archive`` fails on a read-only
root, so files move through that mount), a per-user unprivileged uid,
``cap_drop ALL``, no-new-privileges and an init (tini) as PID 1 keeping a
``sleep infinity``.

Measured here (issue 10): killing a timed-out ``docker exec`` client leaves
its process running inside, and background children survive the exec.  So:
- every command runs under a small ``sh`` wrapper that, once the command
  exits, SIGKILLs every process in the container except PID 1 and its
  keeper (``sleep``) — no leftover background job;
- on a timeout, a cancel or pid exhaustion the container is recycled
  (kill + start, ~1.3 s), which ends everything it ran.

A container removed or stopped from outside (``docker rm -f``, a daemon
restart, the host's OOM killer) is noticed when the next exec is refused
(404 / 409 "is not running"): the box is recreated once and the command run
again, transparently — the workspace is a bind mount, so its files survive.
No status check per command: the refusal costs nothing on the common path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import (
    ExecResult,
    OutputCap,
    SandboxError,
    SandboxLimits,
    SandboxUnavailable,
)
from .workspace import (
    HostWorkspaceFiles,
    Workspace,
    can_hard_quota,
    pick_uid,
    user_key,
)

log = logging.getLogger(__name__)

LABEL = "clara.sandbox"
# What .ci/sandbox-setup.sh builds without a registry (debootstrap + docker import).
LOCAL_IMAGE = "clara-sandbox:bookworm"
SETUP_COMMAND = "bash .ci/sandbox-setup.sh"
# Network modes that are not a network of their own: "host" would hand sandboxed
# code the host's loopback services (Postgres, Redis, the bot's own ports).
_SHARED_NETWORKS = ("host",)
# Runs "$@", then kills every leftover process but PID 1 (init) and the keeper.
# Only shell builtins after the command: a fork bomb's exhausted pid table
# cannot stop the cleanup from running.
_WRAPPER = (
    'keep="$1"; shift; "$@"; rc=$?; '
    "for d in /proc/[0-9]*; do p=${d#/proc/}; "
    'case "$p" in 1|"$$"|"$keep") ;; *) kill -9 "$p" 2>/dev/null ;; esac; done; '
    'exit "$rc"'
)


def docker_client() -> Any:
    """A connected Docker client, or SandboxUnavailable saying why not (blocking)."""
    try:
        import docker  # the SDK is only needed by this backend
    except ImportError as exc:  # pragma: no cover - dependency is locked
        raise SandboxUnavailable("the docker Python package is not installed") from exc
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:
        raise SandboxUnavailable(
            f"no Docker daemon answers ({type(exc).__name__}: {exc}); "
            "start dockerd or set SANDBOX_MODE=bwrap"
        ) from exc
    return client


def image_missing_message(image: str) -> str:
    """What the operator reads when DOCKER_SANDBOX_IMAGE is not on the daemon: the
    spec's default (python:3.12-slim) needs a registry, so say how to build one here."""
    build = f"`{SETUP_COMMAND}` (debootstrap, about a minute, no registry needed)"
    if image == LOCAL_IMAGE:
        how = f"build it with {build}"
    else:
        how = (
            f"build a local one with {build} and set DOCKER_SANDBOX_IMAGE={LOCAL_IMAGE}, "
            f"or pull it (`docker pull {image}`) where a registry is reachable"
        )
    return f"the sandbox image {image!r} is not on the Docker daemon; {how}"


def _container_gone(exc: BaseException) -> bool:
    """True when the daemon refused an exec because the container no longer runs:
    removed (404 NotFound) or stopped (409 Conflict "... is not running")."""
    from docker.errors import APIError, NotFound

    if isinstance(exc, NotFound):
        return True
    return isinstance(exc, APIError) and exc.status_code == 409


class _ContainerGone(SandboxError):
    """The exec was refused before the command started (see _container_gone)."""


@dataclass
class _Box:
    ws: Workspace
    uid: int
    hard_quota: bool
    container: Any
    keeper_pid: str = "0"


class DockerBackend(HostWorkspaceFiles):
    name = "docker"

    def __init__(
        self,
        root: Path,
        limits: SandboxLimits,
        *,
        image: str,
        network: str = "bridge",
        client: Any | None = None,
        uid_base: int = 200_000,
        uid_count: int = 50_000,
        remove_stale: bool = True,
    ) -> None:
        self.root = Path(root).absolute()
        self.limits = limits
        self.image = image
        self.uid_base = uid_base
        self.uid_count = uid_count
        self._client = client or docker_client()
        try:
            self._client.images.get(image)
        except Exception as exc:
            if "No such image" not in str(exc):
                raise SandboxUnavailable(
                    f"the sandbox image {image!r} could not be looked up: {exc}"
                ) from exc
            raise SandboxUnavailable(image_missing_message(image)) from exc
        #: Caveats for the operator (the start-up log line and ``doctor`` show them).
        self.notes: list[str] = []
        self.network_mode = self._pick_network(network) if limits.network else "none"
        # Containers are labelled with this instance's root so a restarted bot
        # removes what a crashed one left behind, and no one else's.
        self._instance = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        self._boxes: dict[str, _Box] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._hard_quota = can_hard_quota()
        if remove_stale:  # not for `doctor`'s probe: a running bot owns them
            self._remove_stale()
        log.info(
            "docker sandbox: image=%s root=%s network=%s hard quota=%s",
            image,
            self.root,
            self.network_mode,
            self._hard_quota,
        )

    def _pick_network(self, name: str) -> str:
        """The network SANDBOX_NETWORK=on joins, or "none" with a note saying why not.

        Degrading to no network rather than refusing keeps the code tools working
        (offline) on a daemon without that network, e.g. CI's ``--bridge=none``."""
        if name in _SHARED_NETWORKS or name.startswith("container:"):
            self.notes.append(
                f"network off: DOCKER_SANDBOX_NETWORK={name} would share another network "
                "namespace (the host's loopback services included); use a bridge network, "
                "e.g. docker network create clara-sandbox"
            )
            return "none"
        if name == "none":
            return "none"
        from docker.errors import NotFound

        try:
            self._client.networks.get(name)
        except NotFound:
            self.notes.append(
                f"network off: SANDBOX_NETWORK=on, but the Docker network {name!r} does not "
                "exist on this daemon (a dockerd started with --bridge=none has no 'bridge'); "
                "create one (docker network create clara-sandbox) and set "
                "DOCKER_SANDBOX_NETWORK=clara-sandbox"
            )
            return "none"
        except Exception as exc:
            self.notes.append(
                f"network off: the Docker network {name!r} could not be looked up ({exc})"
            )
            return "none"
        return name

    def _remove_stale(self) -> None:
        for c in self._client.containers.list(
            all=True, filters={"label": f"{LABEL}={self._instance}"}
        ):
            log.info("removing stale sandbox container %s", c.name)
            with contextlib.suppress(Exception):
                c.remove(force=True)

    def _lock(self, user: str) -> asyncio.Lock:
        return self._locks.setdefault(user, asyncio.Lock())

    # -- lifecycle ---------------------------------------------------------
    async def ensure(self, user: str) -> None:
        if user in self._boxes:
            return
        async with self._lock(user):
            if user not in self._boxes:
                self._boxes[user] = await asyncio.to_thread(self._create_box, user)

    def _create_box(self, user: str) -> _Box:
        key = user_key(user)
        (self.root / "ws").mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)
        uid = pick_uid(self.root, key, self.uid_base, self.uid_count)
        ws = Workspace(self.root, key, uid=uid, gid=uid, quota=self.limits.workspace_quota_bytes)
        hard = ws.prepare(hard_quota=self._hard_quota)
        name = f"clara-sbx-{self._instance}-{key}"
        with contextlib.suppress(Exception):
            self._client.containers.get(name).remove(force=True)
        lim = self.limits
        try:
            container = self._client.containers.run(
                self.image,
                ["sleep", "infinity"],
                name=name,
                detach=True,
                labels={LABEL: self._instance, f"{LABEL}.user": key},
                hostname="sandbox",
                user=f"{uid}:{uid}",
                working_dir="/workspace",
                environment={
                    "HOME": "/workspace",
                    "TMPDIR": "/tmp",
                    "LANG": "C.UTF-8",
                    "MPLBACKEND": "Agg",
                },
                network_mode=self.network_mode,
                mem_limit=lim.memory_bytes,
                memswap_limit=lim.memory_bytes,  # no escape into swap
                pids_limit=lim.pids,
                nano_cpus=int(lim.cpus * 1e9),
                read_only=True,
                tmpfs={"/tmp": f"rw,nosuid,nodev,size={min(lim.memory_bytes, 256 << 20)}"},
                volumes={str(ws.dir): {"bind": "/workspace", "mode": "rw"}},
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                init=True,
                ulimits=[_ulimit("fsize", lim.max_file_bytes), _ulimit("nofile", 1024)],
            )
        except Exception as exc:
            ws.unmount()
            raise SandboxError(f"could not start a sandbox container: {exc}") from exc
        box = _Box(ws=ws, uid=uid, hard_quota=hard, container=container)
        box.keeper_pid = self._keeper_pid(box)
        return box

    def _keeper_pid(self, box: _Box) -> str:
        # The init's only child right after start is the keeper ("sleep").
        res = box.container.exec_run(["cat", "/proc/1/task/1/children"], user=f"{box.uid}")
        pids = res.output.decode().split()
        return pids[0] if pids else "0"

    # -- exec --------------------------------------------------------------
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
        try:
            return await self._exec_once(user, argv, stdin=stdin, timeout=timeout)
        except _ContainerGone as exc:
            # Removed or stopped from outside: the command never started, so
            # running it again in a fresh container is safe (files are kept).
            log.warning("sandbox container of %s is gone (%s); recreating it", user, exc)
            await self._replace_box(user)
        try:
            return await self._exec_once(user, argv, stdin=stdin, timeout=timeout)
        except _ContainerGone as exc:
            await self._replace_box(user)
            raise SandboxError(
                "the sandbox container was stopped twice in a row; try again in a moment"
            ) from exc

    async def _replace_box(self, user: str) -> None:
        async with self._lock(user):
            await self.reap(user)

    async def _exec_once(
        self,
        user: str,
        argv: list[str],
        *,
        stdin: bytes | None,
        timeout: float | None,
    ) -> ExecResult:
        await self.ensure(user)
        box = self._boxes[user]
        timeout = timeout or self.limits.exec_timeout_s
        t0 = time.monotonic()
        stdin_name = None
        cmd = list(argv)
        if stdin is not None:
            # The SDK's exec has no simple stdin; pass it through the workspace.
            stdin_name = f".clara-stdin-{secrets.token_hex(6)}"
            await asyncio.to_thread(box.ws.write, stdin_name, stdin)
            cmd = ["sh", "-c", 'f="$1"; shift; exec "$@" < "$f"', "sh", stdin_name, *cmd]
        full = ["sh", "-c", _WRAPPER, "sh", box.keeper_pid, *cmd]
        out = OutputCap(self.limits.output_limit_bytes)
        err = OutputCap(self.limits.output_limit_bytes)
        stop = threading.Event()
        job = asyncio.ensure_future(asyncio.to_thread(self._run_exec, box, full, out, err, stop))
        timed_out = False
        notes: list[str] = []
        code: int | None = None
        try:
            code = await asyncio.wait_for(asyncio.shield(job), timeout)
        except TimeoutError:
            timed_out = True
        except asyncio.CancelledError:  # stop phrase: kill the container's work at once
            stop.set()
            await self._recycle_box(box)
            raise
        except SandboxError:
            raise
        except Exception as exc:
            await self._recycle_box(box)
            raise SandboxError(f"the sandbox failed to run the command: {exc}") from exc
        finally:
            if stdin_name:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(box.ws.remove, stdin_name)
        if timed_out:
            stop.set()
            # A killed exec client leaves its process inside: only a restart
            # reliably ends it (and a fork bomb's wedged pid table).
            await self._recycle_box(box)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(job, 5)
            notes.append("the sandbox was restarted to stop the command (workspace kept)")
        elif code == 137:
            notes.append(
                "killed (SIGKILL): most likely the sandbox's memory limit "
                f"({self.limits.memory_bytes >> 20} MiB) was reached"
            )
        return await self._finish(
            box, out, err, code=code, timed_out=timed_out, timeout=timeout, t0=t0, notes=notes
        )

    def _run_exec(
        self, box: _Box, cmd: list[str], out: OutputCap, err: OutputCap, stop: threading.Event
    ) -> int | None:
        api = self._client.api
        try:
            ex = api.exec_create(
                box.container.id,
                cmd,
                stdout=True,
                stderr=True,
                workdir="/workspace",
                user=f"{box.uid}",
            )
        except Exception as exc:
            # Only a refusal to *create* the exec is retried: the command has not
            # started, so running it again cannot run it twice.
            if _container_gone(exc):
                raise _ContainerGone(str(exc)) from exc
            raise
        for o, e in api.exec_start(ex["Id"], stream=True, demux=True):
            if stop.is_set():
                break
            if o:
                out.feed(o)
            if e:
                err.feed(e)
        return api.exec_inspect(ex["Id"]).get("ExitCode")

    async def _recycle_box(self, box: _Box) -> None:
        def restart() -> None:
            with contextlib.suppress(Exception):
                box.container.kill()
            box.container.start()
            box.keeper_pid = self._keeper_pid(box)

        try:
            await asyncio.to_thread(restart)
        except Exception as exc:
            log.warning("sandbox container restart failed (%s); it will be recreated", exc)
            for user, b in list(self._boxes.items()):
                if b is box:
                    self._boxes.pop(user, None)
                    await asyncio.to_thread(self._free_box, box)

    # -- teardown ----------------------------------------------------------
    async def recycle(self, user: str) -> None:
        box = self._boxes.get(user)
        if box is not None:
            await self._recycle_box(box)

    async def reap(self, user: str) -> None:
        box = self._boxes.pop(user, None)
        if box is not None:
            await asyncio.to_thread(self._free_box, box)

    def _free_box(self, box: _Box) -> None:
        with contextlib.suppress(Exception):
            box.container.remove(force=True)
        box.ws.unmount()

    async def live_sandboxes(self) -> list[str]:
        return list(self._boxes)

    async def count_containers(self) -> int:
        """Containers this instance has on the daemon (benchmarks, tests)."""
        found = await asyncio.to_thread(
            self._client.containers.list, all=True, filters={"label": f"{LABEL}={self._instance}"}
        )
        return len(found)

    async def delete_user_data(self, user: str) -> None:
        await self.reap(user)
        ws = Workspace(self.root, user_key(user), uid=0, gid=0, quota=0)
        await asyncio.to_thread(ws.destroy)

    async def close(self) -> None:
        for user in list(self._boxes):
            await self.reap(user)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._client.close)


def _ulimit(name: str, value: int) -> Any:
    from docker.types import Ulimit

    return Ulimit(name=name, soft=value, hard=value)
