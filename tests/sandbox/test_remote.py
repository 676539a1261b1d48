"""The sandbox service's own contract: auth, bad requests, outages, selection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from clara_core.config.tools import ToolSettings
from sandbox.base import SandboxUnavailable
from sandbox.manager import SandboxManager, build_sandbox_manager
from sandbox.remote import RemoteBackend
from sandbox.service import create_app, start_service
from sandbox.workspace import can_hard_quota

from .conftest import API_KEY, make_backend


@pytest.fixture(scope="module")
async def service(sandbox_dir: Path) -> AsyncIterator[str]:
    inner = SandboxManager(make_backend("bwrap", sandbox_dir / "svc"), idle_timeout=600)
    runner, url = await start_service(inner, API_KEY)
    yield url
    await runner.cleanup()
    await inner.close()


async def test_wrong_or_missing_key_is_refused(service: str) -> None:
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": API_KEY}):
            async with http.post(
                f"{service}/v1/sandboxes/x/exec", json={"argv": ["true"]}, headers=headers
            ) as resp:
                assert resp.status == 401
                assert (await resp.json())["error"] == "auth"
    be = RemoteBackend(service, "wrong-key-0123456789")
    with pytest.raises(SandboxUnavailable, match="rejected the API key"):
        await be.exec("x", ["true"])
    await be.close()


async def test_bad_requests_say_what_is_wrong(service: str) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for body, needle in [
            ({"argv": "rm -rf /"}, "argv must be a non-empty list of strings"),
            ({"argv": []}, "argv must be a non-empty list"),
            ({"argv": ["true"], "timeout": -1}, "timeout must be a positive number"),
            ({}, "argv"),
        ]:
            async with http.post(f"{service}/v1/sandboxes/x/exec", json=body) as resp:
                assert resp.status == 400
                assert needle in (await resp.json())["message"]


def test_short_api_keys_are_refused(sandbox_dir: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="at least 16"):
        create_app(SandboxManager(make_backend("bwrap", sandbox_dir / "short")), "short")


async def test_service_down_is_unavailable_with_its_url() -> None:
    be = RemoteBackend("http://127.0.0.1:9", API_KEY, request_timeout=3)
    with pytest.raises(SandboxUnavailable, match=r"127\.0\.0\.1:9 did not answer"):
        await be.exec("x", ["true"])
    await be.close()


async def test_selection_prefers_a_healthy_remote(service: str, sandbox_dir: Path) -> None:
    base = {"_env_file": None, "sandbox_dir": sandbox_dir / "sel", "sandbox_api_key": API_KEY}
    mgr = await build_sandbox_manager(
        ToolSettings(**base, sandbox_mode="auto", sandbox_api_url=service)
    )
    assert mgr is not None and mgr.mode == "remote"
    r = await mgr.exec("sel-user", ["python3", "-c", "print('via service')"])
    assert r.stdout == "via service\n"
    await mgr.close()
    # Down: auto falls back to a local backend and says why; remote mode gives up.
    down = "http://127.0.0.1:9"
    mgr = await build_sandbox_manager(
        ToolSettings(**base, sandbox_mode="auto", sandbox_api_url=down)
    )
    assert mgr is not None and mgr.mode in ("docker", "bwrap")
    assert "remote:" in mgr.selection and "did not answer" in mgr.selection
    await mgr.close()
    assert (
        await build_sandbox_manager(
            ToolSettings(**base, sandbox_mode="remote", sandbox_api_url=down)
        )
        is None
    )


async def test_service_process_serves_and_stops_cleanly(sandbox_dir: Path) -> None:
    import asyncio
    import os
    import signal
    import socket
    import sys

    make_backend("bwrap", sandbox_dir / "probe")  # skips when bwrap cannot run here
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = sandbox_dir / "proc"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SANDBOX_API_KEY": API_KEY,
        "SANDBOX_MODE": "bwrap",
        "SANDBOX_DIR": str(root),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox.service", "--port", str(port),
        env=env, cwd=str(Path(__file__).resolve().parents[2]),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    be = RemoteBackend(f"http://127.0.0.1:{port}", API_KEY, request_timeout=5)
    try:
        async with asyncio.timeout(20):
            while True:
                try:
                    await be.health()
                    break
                except SandboxUnavailable:
                    await asyncio.sleep(0.1)
        r = await be.exec("proc-user", ["python3", "-c", "print(2**10)"])
        assert r.stdout == "1024\n"
        ws_mounts = [
            line for line in Path("/proc/mounts").read_text().splitlines() if str(root) in line
        ]
        if can_hard_quota():  # the workspace is a loop mount while the sandbox lives
            assert ws_mounts
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            out, _ = await proc.communicate()
        assert proc.returncode == 0, out.decode()
        assert "stopping: reaping every sandbox" in out.decode()
        # Whatever was mounted for the user is released on a clean stop.
        still = [
            line for line in Path("/proc/mounts").read_text().splitlines() if str(root) in line
        ]
        assert still == []
    finally:
        await be.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
