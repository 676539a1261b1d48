"""The Docker backend recovers by itself when its container is removed or stopped
from outside (``docker rm -f``, a daemon restart): the next command recreates it,
runs, and finds the workspace files (a bind mount) still there.  Real dockerd,
real SDK; skipped with the reason when no daemon or image is here."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox.docker import DockerBackend

from .conftest import make_backend, sandbox_root


@pytest.fixture
async def docker_backend() -> AsyncIterator[DockerBackend]:
    root = sandbox_root()
    be = make_backend("docker", root / "docker")
    assert isinstance(be, DockerBackend)
    yield be
    await be.close()
    shutil.rmtree(root, ignore_errors=True)


def _containers(be: DockerBackend) -> list:
    return be._client.containers.list(all=True, filters={"label": f"clara.sandbox={be._instance}"})


async def _make_note(be: DockerBackend, user: str) -> None:
    r = await be.exec(user, ["sh", "-c", "echo kept > note.txt && echo ok"])
    assert (r.exit_code, r.stdout) == (0, "ok\n"), r


async def _next_command_sees_the_note(be: DockerBackend, user: str) -> None:
    r = await be.exec(user, ["python3", "-c", "print(open('note.txt').read().strip(), 6 * 7)"])
    assert (r.exit_code, r.stdout, r.timed_out) == (0, "kept 42\n", False), r
    assert len(_containers(be)) == 1  # recreated, not piled up


async def test_a_container_removed_from_outside_is_recreated(docker_backend: DockerBackend) -> None:
    be, user = docker_backend, "recover-removed"
    await _make_note(be, user)
    [container] = _containers(be)
    await asyncio.to_thread(container.remove, force=True)  # `docker rm -f` by an operator
    await _next_command_sees_the_note(be, user)
    [fresh] = _containers(be)
    assert fresh.id != container.id
    # And it keeps working (the recreated box is the one in use).
    r = await be.exec(user, ["true"])
    assert r.exit_code == 0


async def test_a_container_stopped_from_outside_is_recreated(docker_backend: DockerBackend) -> None:
    be, user = docker_backend, "recover-stopped"
    await _make_note(be, user)
    [container] = _containers(be)
    await asyncio.to_thread(container.stop, timeout=0)  # `docker stop`, a daemon restart
    await _next_command_sees_the_note(be, user)


async def test_stdin_survives_the_recreation(docker_backend: DockerBackend) -> None:
    # execute_python sends its code on stdin (a file in the workspace): the retry
    # must hand it to the new container too.
    be, user = docker_backend, "recover-stdin"
    await _make_note(be, user)
    [container] = _containers(be)
    await asyncio.to_thread(container.remove, force=True)
    r = await be.exec(user, ["python3", "-"], stdin=b"print(open('note.txt').read().strip())")
    assert (r.exit_code, r.stdout) == (0, "kept\n"), r
    leftovers = [p.name for p in Path(be.root).rglob(".clara-stdin-*")]
    assert leftovers == []
