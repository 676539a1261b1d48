"""The sandbox service's image (sandbox/service/Dockerfile), built and run for real.

Built from the local debootstrap image (BASE_IMAGE=clara-sandbox:bookworm: no
registry is reachable here, PyPI is) with the host's network for apt and pip,
tagged by a hash of everything the build reads, so a machine that keeps its
images builds it once per change.  The container runs the Docker backend
through the host's socket (the image's default, docs/sandbox.md); the test talks
to it only through the real client configured the way Clara is
(SANDBOX_MODE=remote, SANDBOX_API_URL, SANDBOX_API_KEY).  Skipped with the
reason when no dockerd or base image is here (``bash .ci/sandbox-setup.sh``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from clara_core.config.tools import ToolSettings
from clara_core.llm.types import ToolCall
from sandbox.base import SandboxUnavailable
from sandbox.docker import LABEL
from sandbox.manager import build_sandbox_manager
from sandbox.remote import RemoteBackend
from tests.support.docker_images import docker_client_or_skip, sandbox_service_test_image
from tests.support.ports import free_port
from tools.registry import ToolContext, ToolRegistry
from tools.sandbox_tools import register_sandbox_tools

from .conftest import API_KEY, TEST_IMAGE, sandbox_root

# A first build takes ~40 s here (apt + PyPI); leave room on a loaded CI machine.
pytestmark = pytest.mark.timeout(600)


def _docker_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "")
    return host.removeprefix("unix://") if host.startswith("unix://") else "/var/run/docker.sock"


@pytest.fixture(scope="module")
def client() -> Any:
    return docker_client_or_skip(TEST_IMAGE)


@pytest.fixture(scope="module")
def image(client: Any) -> str:
    return sandbox_service_test_image(client, TEST_IMAGE)


@pytest.fixture
def root() -> Iterator[Path]:
    path = sandbox_root()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def service(client: Any, image: str, root: Path) -> AsyncIterator[tuple[str, Any]]:
    """(URL, container) of the service container, answering health; removed after."""
    port = free_port()
    container = await asyncio.to_thread(
        client.containers.run,
        image,
        ["python", "-m", "sandbox.service", "--host", "127.0.0.1", "--port", str(port)],
        detach=True,
        # The host's namespace only so this test can reach it without a bridge;
        # the sandboxes the service starts still get network "none".
        network_mode="host",
        init=True,
        labels={"clara.test": "sandbox-service"},
        environment={
            "SANDBOX_API_KEY": API_KEY,
            "SANDBOX_MODE": "local",
            "DOCKER_SANDBOX_IMAGE": TEST_IMAGE,
            "SANDBOX_DIR": str(root),
        },
        volumes={
            _docker_socket(): {"bind": "/var/run/docker.sock", "mode": "rw"},
            # Same path inside and out: dockerd resolves the workspace binds on the host.
            str(root): {"bind": str(root), "mode": "rw"},
        },
    )
    url = f"http://127.0.0.1:{port}"
    probe = RemoteBackend(url, API_KEY, request_timeout=3)
    try:
        async with asyncio.timeout(30):
            while True:
                try:
                    await probe.health()
                    break
                except SandboxUnavailable:
                    await asyncio.to_thread(container.reload)
                    if container.status == "exited":
                        logs = container.logs().decode(errors="replace")
                        pytest.fail(f"the service container exited:\n{logs[-3000:]}")
                    await asyncio.sleep(0.2)
        yield url, container
    finally:
        await probe.close()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(container.remove, force=True)
        instance = hashlib.sha256(str(root).encode()).hexdigest()[:12]
        for c in client.containers.list(all=True, filters={"label": f"{LABEL}={instance}"}):
            with contextlib.suppress(Exception):
                c.remove(force=True)


def _settings(root: Path, url: str, key: str) -> ToolSettings:
    return ToolSettings(
        _env_file=None,
        sandbox_mode="remote",
        sandbox_api_url=url,
        sandbox_api_key=key,
        sandbox_dir=root / "bot",
    )


async def test_the_image_serves_clara_through_the_real_client(
    client: Any, service: tuple[str, Any], root: Path
) -> None:
    url, container = service
    mgr = await build_sandbox_manager(_settings(root, url, API_KEY))
    assert mgr is not None and mgr.selection == f"remote {url} (SANDBOX_MODE=remote)"
    try:
        health = await mgr.backend.health()  # type: ignore[attr-defined]
        assert health["mode"] == "docker" and health["selection"].startswith("docker ")

        reg = ToolRegistry()
        register_sandbox_tools(reg, mgr, exec_timeout=20)
        code = (
            "import os; print(2**200); print(os.getuid() >= 200000, os.path.exists('/.dockerenv'))"
        )
        r = await reg.call(
            ToolCall("c1", "execute_python", json.dumps({"code": code})),
            ToolContext(user_id="image-user"),
        )
        assert not r.is_error, r.content
        # Verbatim output, from a per-user uid inside a sibling sandbox container.
        assert r.content == f"{2**200}\nTrue True\n"
        instance = hashlib.sha256(str(root).encode()).hexdigest()[:12]
        boxes = client.containers.list(filters={"label": f"{LABEL}={instance}"})
        assert len(boxes) == 1 and boxes[0].attrs["HostConfig"]["NetworkMode"] == "none"
    finally:
        await mgr.close()

    # A wrong key is refused: the client says so, and Clara does not offer the tools.
    wrong = RemoteBackend(url, "wrong-key-0123456789", request_timeout=5)
    with pytest.raises(SandboxUnavailable, match="rejected the API key"):
        await wrong.exec("image-user", ["true"])
    await wrong.close()
    assert await build_sandbox_manager(_settings(root, url, "wrong-key-0123456789")) is None

    # SIGTERM (docker stop) reaps the sandboxes it started before exiting.
    await asyncio.to_thread(container.stop, timeout=30)
    await asyncio.to_thread(container.reload)
    assert container.attrs["State"]["ExitCode"] == 0, container.logs().decode()[-2000:]
    assert "stopping: reaping every sandbox" in container.logs().decode()
    assert client.containers.list(all=True, filters={"label": f"{LABEL}={instance}"}) == []
