"""mcp_install source=docker against the real dockerd, with a locally built image.

No registry is reachable from CI, so the test builds a tiny image FROM
clara-sandbox:bookworm (debootstrap, has python3; .ci/sandbox-setup.sh builds it)
holding ``servers/plain_stdio_server.py``, a pure-Python MCP stdio server (the SDK
is not in that image).  Then: install it through the registry, call its tools as
``plain__<tool>``, check the container's policy (``--rm``, no host environment,
limits, network) from ``docker inspect`` and from inside, and that uninstall
removes the container.  Skipped with the reason when dockerd or the base image
is absent.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clara_core.config import Settings
from clara_core.mcp import ServerState, start_mcp
from clara_core.mcp.docker import LABEL
from tests.mcp.conftest import call, wait_for
from tools.registry import ToolContext, ToolRegistry

pytestmark = pytest.mark.storage

BASE_IMAGE = "clara-sandbox:bookworm"
SERVER = Path(__file__).parent / "servers" / "plain_stdio_server.py"
DOCKERFILE = f"""FROM {BASE_IMAGE}
COPY plain_stdio_server.py /srv/server.py
ENTRYPOINT ["python3", "-u", "/srv/server.py"]
"""
ADMIN = ToolContext("42", is_admin=True)
SECRET = "plain-key-6f1e0c2a"


def _docker_client() -> Any:
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:
        pytest.skip(f"needs a running dockerd: {type(exc).__name__}: {exc}")
    if shutil.which("docker") is None:
        pytest.skip("needs the docker command (mcp_install runs `docker run -i`)")
    return client


@pytest.fixture(scope="session")
def plain_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test image, tagged by its content's hash: built once, reused while unchanged."""
    import docker

    client = _docker_client()
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"needs the image {BASE_IMAGE}: build it with bash .ci/sandbox-setup.sh")
    digest = hashlib.sha256(SERVER.read_bytes() + DOCKERFILE.encode()).hexdigest()[:12]
    tag = f"clara-test-mcp-plain:{digest}"
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        ctx = tmp_path_factory.mktemp("plain-image")
        shutil.copy(SERVER, ctx / "plain_stdio_server.py")
        (ctx / "Dockerfile").write_text(DOCKERFILE)
        client.images.build(path=str(ctx), tag=tag, rm=True, network_mode="none")
    return tag


def _containers(server: str) -> list[Any]:
    client = _docker_client()
    return client.containers.list(all=True, filters={"label": f"{LABEL}={server}"})


async def test_docker_image_installs_runs_through_the_registry_and_uninstalls(
    engine: AsyncEngine, tmp_path: Path, plain_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "clara-own-token")  # must not reach the server
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        clara_data_dir=tmp_path / "data",
        mcp_servers_dir=tmp_path / "servers",
        mcp_connect_timeout=30,
        mcp_docker_network="none",
        mcp_docker_memory="256m",
    )
    reg = ToolRegistry()
    sup = await start_mcp(reg, engine, settings)
    steps: list[str] = []
    try:
        out = await call(
            reg,
            "mcp_install",
            ToolContext("42", is_admin=True, extras={"progress": steps.append}),
            source="docker",
            package=plain_image,
            name="plain",
            env={"PLAIN_KEY": SECRET},
        )
        assert "MCP server 'plain' installed and running" in out.content, out.content
        assert f"using the local image {plain_image}" in steps  # no pull: it is here

        assert (await call(reg, "plain__echo", ADMIN, text="hi")).content == "echo: hi"
        keys = set((await call(reg, "plain__env_keys", ADMIN)).content.split(","))
        assert "PLAIN_KEY" in keys and "DISCORD_BOT_TOKEN" not in keys
        # Only what Docker sets (PATH, HOSTNAME, HOME) and Python's own locale coercion
        # (PEP 538: LC_CTYPE) besides the configured one.
        assert keys <= {"PATH", "HOSTNAME", "HOME", "LC_CTYPE", "PLAIN_KEY"}, keys
        assert (await call(reg, "plain__env_value", ADMIN, name="PLAIN_KEY")).content == SECRET
        limits = (await call(reg, "plain__cgroup", ADMIN)).content
        assert f"memory={256 * 1024 * 1024}" in limits and "pids=256" in limits

        runner = sup.runners["plain"]
        assert runner.config.command == "docker"
        assert SECRET not in " ".join(runner.config.args)  # `ps` shows no value
        [container] = await asyncio.to_thread(_containers, "plain")
        host = container.attrs["HostConfig"]
        assert host["AutoRemove"] is True and host["Init"] is True
        assert host["NetworkMode"] == "none"
        assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (
            256 * 1024 * 1024,
            10**9,
            256,
        )
        assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
        assert host["Privileged"] is False

        gone = await call(reg, "mcp_uninstall", ADMIN, name="plain")
        assert "uninstalled" in gone.content and reg.get("plain__echo") is None
        await wait_for(lambda: not _containers("plain"), timeout=15)
    finally:
        await sup.aclose()
        for c in await asyncio.to_thread(_containers, "plain"):
            c.remove(force=True)


async def test_an_image_that_is_not_there_and_cannot_be_pulled_is_explained(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    _docker_client()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, clara_data_dir=tmp_path / "data", mcp_servers_dir=tmp_path / "servers"
    )
    reg = ToolRegistry()
    sup = await start_mcp(reg, engine, settings)
    try:
        out = await call(
            reg,
            "mcp_install",
            ADMIN,
            source="docker",
            package="localhost:1/clara-no-such-image:1",
            name="nope",
        )
        assert out.is_error and "could not install" in out.content
        assert "docker pull localhost:1/clara-no-such-image:1 failed" in out.content
        assert "Traceback" not in out.content
        assert not (tmp_path / "servers" / "nope").exists()
    finally:
        await sup.aclose()


def _docker_client_pids(server: str) -> list[int]:
    """The ``docker run`` client processes running ``server`` (found by its label)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"docker") and f"{LABEL}={server}".encode() in argv:
            pids.append(int(entry))
    return pids


async def test_a_container_left_by_a_killed_client_is_removed_before_the_restart(
    engine: AsyncEngine, tmp_path: Path, plain_image: str
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        clara_data_dir=tmp_path / "data",
        mcp_servers_dir=tmp_path / "servers",
        mcp_connect_timeout=30,
        mcp_docker_network="none",
    )
    reg = ToolRegistry()
    sup = await start_mcp(reg, engine, settings)
    try:
        out = await call(
            reg,
            "mcp_install",
            ADMIN,
            source="docker",
            package=plain_image,
            name="orphan",
            args=["--linger"],  # outlives its stdin, as some servers do
        )
        assert "installed and running" in out.content, out.content
        [first] = await asyncio.to_thread(_containers, "orphan")
        [pid] = _docker_client_pids("orphan")
        # Measured: a SIGKILLed `docker run -i` client leaves its container running
        # when the server does not exit at the end of its stdin.
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(1)
        assert [c.id for c in await asyncio.to_thread(_containers, "orphan")] == [first.id]

        lost = await call(reg, "orphan__echo", ADMIN, text="x")
        assert lost.is_error and "restarted" in lost.content, lost.content
        runner = sup.runners["orphan"]
        await wait_for(lambda: runner.state is ServerState.RUNNING and runner.restarts >= 1, 30)
        assert (await call(reg, "orphan__echo", ADMIN, text="back")).content == "echo: back"
        # The orphan went before the new session started: one container, the new one.
        [now] = await asyncio.to_thread(_containers, "orphan")
        assert now.id != first.id
        await sup.aclose()
        # Stopping leaves no container behind (the client forwards SIGTERM; the
        # label sweep after each stop covers a client that had to be SIGKILLed).
        assert await asyncio.to_thread(_containers, "orphan") == []
    finally:
        await sup.aclose()
        for c in await asyncio.to_thread(_containers, "orphan"):
            c.remove(force=True)
