"""SANDBOX_NETWORK=on, for real: what "on" reaches on each backend, and what happens
when the Docker network it names does not exist (CI's dockerd runs with
``--bridge=none``, so the default ``bridge`` is missing there).

The Docker test creates a temporary user-defined ``--internal`` bridge network
with the SDK (no NAT and no iptables rules: dockerd runs with --iptables=false),
listens on its gateway (the host's side of the bridge), shows a sandbox with the
network on connects there and one with it off does not, and removes the network.
Nothing else on the host's network changes."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from clara_core.config import load_settings
from clara_core.doctor import _check_sandbox
from sandbox.base import Backend, SandboxLimits, SandboxUnavailable
from sandbox.docker import DockerBackend, docker_client

from .conftest import TEST_IMAGE, TEST_LIMITS, sandbox_root

NET_ON = SandboxLimits(**{**TEST_LIMITS.__dict__, "network": True})

_PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("CONNECTED")
except OSError as e:
    print("blocked", type(e).__name__)
"""


class Listener:
    """A TCP server on the host that counts the connections it accepted."""

    def __init__(self) -> None:
        self.hits = 0
        self.server: asyncio.Server | None = None

    async def start(self, host: str) -> int:
        async def on_conn(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.hits += 1
            w.close()

        self.server = await asyncio.start_server(on_conn, host, 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def probe(be: Backend, user: str, host: str, port: int) -> str:
    r = await be.exec(user, ["python3", "-c", _PROBE, host, str(port)])
    assert r.exit_code == 0, r
    return r.stdout.strip()


@pytest.fixture
def root() -> Iterator[Path]:
    path = sandbox_root()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def docker() -> object:
    """The SDK client, or a skip with the reason (no daemon, no test image)."""
    try:
        client = docker_client()
        client.images.get(TEST_IMAGE)
    except Exception as exc:
        pytest.skip(f"docker sandbox unavailable here: {exc} (run .ci/sandbox-setup.sh)")
    return client


@pytest.fixture
async def internal_network(docker: object) -> AsyncIterator[tuple[str, str]]:
    """(name, gateway IP) of a temporary internal bridge network, removed afterwards
    (the tests close their backends first: a network with containers cannot go)."""
    name = f"clara-test-net-{secrets.token_hex(4)}"
    net = await asyncio.to_thread(
        docker.networks.create,  # type: ignore[attr-defined]
        name,
        driver="bridge",
        internal=True,
        labels={"clara.test": "sandbox-network"},
    )
    try:
        await asyncio.to_thread(net.reload)
        gateway = net.attrs["IPAM"]["Config"][0]["Gateway"]
        yield name, gateway
    finally:
        await asyncio.to_thread(net.remove)
        left = await asyncio.to_thread(docker.networks.list, names=[name])  # type: ignore[attr-defined]
        assert left == [], f"the test network {name} is still there"


async def test_docker_network_on_reaches_the_named_network_and_off_does_not(
    root: Path, internal_network: tuple[str, str]
) -> None:
    name, gateway = internal_network
    on = DockerBackend(root / "on", NET_ON, image=TEST_IMAGE, network=name)
    off = DockerBackend(root / "off", TEST_LIMITS, image=TEST_IMAGE, network=name)
    listener = Listener()
    port = await listener.start(gateway)
    try:
        assert (on.network_mode, on.notes) == (name, [])
        assert await probe(on, "net-on", gateway, port) == "CONNECTED"
        assert listener.hits == 1
        # The network is --internal: nothing beyond the host's side of the bridge.
        assert (await probe(on, "net-on", "1.1.1.1", 53)).startswith("blocked")

        assert off.network_mode == "none"
        assert (await probe(off, "net-off", gateway, port)).startswith("blocked")
        assert listener.hits == 1
    finally:
        await listener.stop()
        await on.close()
        await off.close()


async def test_docker_network_that_does_not_exist_runs_offline_and_says_so(
    root: Path, docker: object
) -> None:
    missing = f"clara-no-such-net-{secrets.token_hex(3)}"
    be = DockerBackend(root / "missing", NET_ON, image=TEST_IMAGE, network=missing)
    listener = Listener()
    port = await listener.start("127.0.0.1")
    try:
        assert be.network_mode == "none"
        [note] = be.notes
        assert f"{missing!r} does not exist" in note and "DOCKER_SANDBOX_NETWORK=" in note
        # Sandboxes still start (before: "could not start a sandbox container").
        assert (await probe(be, "net-missing", "127.0.0.1", port)).startswith("blocked")
        assert listener.hits == 0
    finally:
        await listener.stop()
        await be.close()

    # The default, "bridge", on a daemon started with --bridge=none (CI's, this one's).
    try:
        docker.networks.get("bridge")  # type: ignore[attr-defined]
    except Exception:
        default = DockerBackend(root / "default", NET_ON, image=TEST_IMAGE)
        try:
            assert default.network_mode == "none"
            assert "the Docker network 'bridge' does not exist" in default.notes[0]
        finally:
            await default.close()

    # "host" would share the host's namespace, loopback services included: refused.
    host = DockerBackend(root / "host", NET_ON, image=TEST_IMAGE, network="host")
    try:
        assert host.network_mode == "none" and "host's loopback" in host.notes[0]
    finally:
        await host.close()

    # doctor and the start-up line carry the note.
    settings = load_settings(
        env_file=None,
        sandbox_dir=str(root / "doctor"),
        sandbox_mode="local",
        sandbox_network=True,
        docker_sandbox_image=TEST_IMAGE,
        docker_sandbox_network=missing,
    )
    check = await _check_sandbox(settings)
    assert check.ok and check.detail.startswith("docker (SANDBOX_MODE=local); network off: ")
    assert missing in check.detail


async def test_bwrap_network_on_shares_the_host_network(root: Path) -> None:
    """bwrap has no network of its own to join: "on" is the host's namespace, so a
    host loopback service is reachable (the documented, logged caveat); off is not."""
    try:
        from sandbox.bwrap import BwrapBackend

        on = BwrapBackend(root / "bw-on", NET_ON)
        off = BwrapBackend(root / "bw-off", TEST_LIMITS)
    except SandboxUnavailable as exc:
        pytest.skip(f"bwrap sandbox unavailable here: {exc}")
    assert "shares the host's network namespace" in on.notes[0] and off.notes == []
    listener = Listener()
    port = await listener.start("127.0.0.1")
    try:
        assert await probe(on, "bw-net-on", "127.0.0.1", port) == "CONNECTED"
        assert listener.hits == 1
        assert (await probe(off, "bw-net-off", "127.0.0.1", port)).startswith("blocked")
        assert listener.hits == 1
    finally:
        await listener.stop()
        with contextlib.suppress(Exception):
            await on.close()
        await off.close()
    # The caveat is in the start-up line and doctor, not only in a log line.
    check = await _check_sandbox(
        load_settings(
            env_file=None,
            sandbox_dir=str(root / "bw-doc"),
            sandbox_mode="bwrap",
            sandbox_network=True,
        )
    )
    assert check.ok and check.detail.startswith("bwrap (SANDBOX_MODE=bwrap); network on: ")
