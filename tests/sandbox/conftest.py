"""Real sandbox backends for the behavioural and security suites.

Every test runs once per backend that can run on this machine (bwrap,
docker, remote); a backend that cannot is SKIPPED with the reason it gave
(install it with ``bash .ci/sandbox-setup.sh``).  No fakes: real bubblewrap,
real dockerd through the real SDK, and for ``remote`` the real sandbox
service on loopback (over bwrap) reached by the real HTTP client.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sandbox.base import Backend, SandboxLimits, SandboxUnavailable

# The image .ci/sandbox-setup.sh builds (no registry is reachable here).
TEST_IMAGE = os.environ.get("CLARA_TEST_SANDBOX_IMAGE", "clara-sandbox:bookworm")

TEST_LIMITS = SandboxLimits(
    memory_bytes=256 * 1024 * 1024,
    cpus=1.0,
    pids=64,
    exec_timeout_s=10.0,
    output_limit_bytes=8 * 1024,
    workspace_quota_bytes=32 * 1024 * 1024,
    max_file_bytes=64 * 1024 * 1024,
    network=False,
)

BACKENDS = ["bwrap", "docker", "remote"]
API_KEY = "test-key-0123456789abcdef"


def sandbox_root() -> Path:
    # Not under pytest's tmp_path: its parents are 0700 root, and the bwrap
    # chain (running as the sandbox uid) must be able to reach the workspace.
    root = Path(tempfile.mkdtemp(prefix="clara-sbx-test-", dir="/tmp"))
    root.chmod(0o711)
    return root


def make_backend(kind: str, root: Path, limits: SandboxLimits = TEST_LIMITS) -> Backend:
    """The real backend, or pytest.skip with the reason it cannot run here."""
    try:
        if kind == "bwrap":
            from sandbox.bwrap import BwrapBackend

            return BwrapBackend(root, limits)
        from sandbox.docker import DockerBackend

        return DockerBackend(root, limits, image=TEST_IMAGE)
    except SandboxUnavailable as exc:
        pytest.skip(f"{kind} sandbox unavailable here: {exc} (run .ci/sandbox-setup.sh)")


@pytest.fixture(scope="module")
def sandbox_dir() -> Iterator[Path]:
    root = sandbox_root()
    yield root
    # A test that failed half-way may leave a workspace mounted: release it
    # (and say so) before deleting, so no loop device leaks from the suite.
    for line in Path("/proc/mounts").read_text().splitlines():
        mnt = line.split()[1]
        if mnt.startswith(str(root)):
            subprocess.run(["umount", "-l", mnt], check=False)
            print(f"sandbox tests: unmounted a leftover workspace {mnt}")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module", params=BACKENDS)
async def backend(request: pytest.FixtureRequest, sandbox_dir: Path) -> AsyncIterator[Backend]:
    if request.param != "remote":
        be = make_backend(request.param, sandbox_dir / request.param)
        yield be
        await be.close()
        return
    from sandbox.manager import SandboxManager
    from sandbox.remote import RemoteBackend
    from sandbox.service import start_service

    inner = SandboxManager(make_backend("bwrap", sandbox_dir / "remote"), idle_timeout=600)
    runner, url = await start_service(inner, API_KEY)
    be = RemoteBackend(url, API_KEY, request_timeout=30, exec_timeout=TEST_LIMITS.exec_timeout_s)
    yield be
    await be.close()
    await runner.cleanup()
    await inner.close()


async def assert_next_command_works(be: Backend, user: str) -> None:
    """After every attack: the same sandbox answers a normal command."""
    r = await be.exec(user, ["python3", "-c", "print(6 * 7)"])
    assert r.exit_code == 0, r
    assert r.stdout.strip() == "42"


def host_processes_with(marker: str) -> list[str]:
    """Host processes whose command line contains ``marker`` (sandboxed ones
    are visible from the host's /proc, Docker's included)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and "pytest" not in cmd:
            found.append(f"{entry}: {cmd}")
    return found
