"""download_from_sandbox / upload_to_sandbox through the ToolRegistry, on every
sandbox backend that runs here (real bwrap, Docker, remote service) and the real
per-user file store on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clara_core.llm.types import ToolCall
from sandbox.base import Backend
from sandbox.manager import SandboxManager
from storage.local_files import LocalFileStore
from tools.files import register_file_tools
from tools.registry import ToolContext, ToolRegistry, ToolResult
from tools.sandbox_tools import register_sandbox_tools


@pytest.fixture
def store(tmp_path: Path) -> LocalFileStore:
    return LocalFileStore(tmp_path / "files", max_size=1 << 20, quota=4 << 20)


@pytest.fixture
async def registry(backend: Backend, store: LocalFileStore) -> ToolRegistry:
    reg = ToolRegistry()
    manager = SandboxManager(backend, idle_timeout=600)
    register_sandbox_tools(reg, manager, exec_timeout=5)
    assert register_file_tools(reg, store, manager) == 7
    return reg


async def call(reg: ToolRegistry, user: str, name: str, **args: object) -> ToolResult:
    return await reg.call(ToolCall("c1", name, json.dumps(args)), ToolContext(user_id=user))


async def test_files_move_both_ways(registry: ToolRegistry, store: LocalFileStore) -> None:
    u = "xfer1"
    await store.save(u, "data.csv", b"x,y\n1,2\n3,4\n")
    r = await call(registry, u, "upload_to_sandbox", local_filename="data.csv")
    assert r.content == "copied data.csv (12 bytes) to /workspace/data.csv in the sandbox"
    code = (
        "rows = open('data.csv').read().splitlines()[1:]\n"
        "open('out/sum.txt', 'w').write(str(sum(int(a) + int(b) for a, b in "
        "(r.split(',') for r in rows))))\n"
    )
    r = await call(registry, u, "run_shell", command="mkdir -p out")
    r = await call(registry, u, "execute_python", code=code)
    assert not r.is_error, r.content
    r = await call(registry, u, "download_from_sandbox", sandbox_path="out/sum.txt")
    assert r.content == "copied out/sum.txt to local storage as sum.txt (2 bytes)"
    assert (store.root / u / "sum.txt").read_bytes() == b"10"
    # Another name, another folder in the sandbox, and back.
    r = await call(
        registry,
        u,
        "download_from_sandbox",
        sandbox_path="/workspace/data.csv",
        local_filename="copy.csv",
    )
    assert not r.is_error and (store.root / u / "copy.csv").read_bytes() == b"x,y\n1,2\n3,4\n"
    r = await call(
        registry, u, "upload_to_sandbox", local_filename="sum.txt", sandbox_path="in/s.txt"
    )
    assert r.content.endswith("to /workspace/in/s.txt in the sandbox")
    r = await call(registry, u, "read_file", path="in/s.txt")
    assert r.content == "10"


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("../../etc/passwd", "leaves the workspace"),
        ("/etc/shadow", "outside the workspace"),
        ("missing.txt", "no such file"),
        ("lnk", "symlink"),
    ],
)
async def test_download_refuses_escapes(
    registry: ToolRegistry, store: LocalFileStore, path: str, needle: str
) -> None:
    u = "xfer2"
    await call(registry, u, "run_shell", command="ln -sf /etc/passwd lnk")
    r = await call(registry, u, "download_from_sandbox", sandbox_path=path)
    assert r.is_error and needle in r.content, r.content
    assert await store.list(u) == []


async def test_upload_refuses_escapes_and_links(
    registry: ToolRegistry, store: LocalFileStore, tmp_path: Path
) -> None:
    u = "xfer3"
    await store.save(u, "ok.txt", b"fine")
    r = await call(registry, u, "upload_to_sandbox", local_filename="ok.txt", sandbox_path="../x")
    assert r.is_error and "leaves the workspace" in r.content
    r = await call(registry, u, "upload_to_sandbox", local_filename="ok.txt", sandbox_path="/etc/x")
    assert r.is_error and "outside the workspace" in r.content
    # A link in the sandbox does not redirect the write to the host.
    await call(registry, u, "run_shell", command=f"ln -sf {tmp_path}/target lnk")
    r = await call(registry, u, "upload_to_sandbox", local_filename="ok.txt", sandbox_path="lnk")
    assert r.is_error and "symlink" in r.content
    assert not (tmp_path / "target").exists()
    # A link in the local store is not followed into the sandbox.
    secret = tmp_path / "host.env"
    secret.write_text("DISCORD_BOT_TOKEN=abc")
    os.symlink(secret, store.root / u / "env.txt")
    r = await call(registry, u, "upload_to_sandbox", local_filename="env.txt")
    assert r.is_error and "not a file Clara stored" in r.content
    r = await call(registry, u, "run_shell", command="ls; cat env.txt 2>&1 || true")
    assert "DISCORD_BOT_TOKEN" not in r.content
    # Another user's stored file cannot be named.
    await store.save("xfer4", "theirs.txt", b"private")
    r = await call(registry, u, "upload_to_sandbox", local_filename="../xfer4/theirs.txt")
    assert r.is_error and "no stored file" in r.content


async def test_download_respects_the_store_limits(
    registry: ToolRegistry, store: LocalFileStore
) -> None:
    u = "xfer5"
    r = await call(
        registry, u, "execute_python", code="open('big.bin', 'wb').write(b'0' * (2 << 20))"
    )
    assert not r.is_error, r.content
    r = await call(registry, u, "download_from_sandbox", sandbox_path="big.bin")
    assert r.is_error and "more than the 1,048,576 allowed" in r.content
    assert await store.list(u) == []
