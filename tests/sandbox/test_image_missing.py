"""The spec's default DOCKER_SANDBOX_IMAGE (python:3.12-slim) needs a registry; where
none answers, auto mode falls back to bubblewrap.  The operator reads why once, in
the start-up log and in doctor, with how to build an image here.  Real dockerd,
real bwrap; skipped with the reason when either is missing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from clara_core.config import load_settings
from clara_core.doctor import _check_sandbox
from sandbox.base import SandboxUnavailable
from sandbox.docker import DockerBackend, docker_client
from sandbox.manager import build_sandbox_manager

from .conftest import API_KEY, TEST_LIMITS

MISSING = "clara-test-missing-image:none"
HOW = (
    "build a local one with `bash .ci/sandbox-setup.sh` (debootstrap, about a minute, "
    "no registry needed) and set DOCKER_SANDBOX_IMAGE=clara-sandbox:bookworm, "
    f"or pull it (`docker pull {MISSING}`) where a registry is reachable"
)


@pytest.fixture
def dockerd() -> None:
    try:
        docker_client()
    except SandboxUnavailable as exc:
        pytest.skip(f"no Docker daemon here: {exc}")


def _settings(root: Path, **values: object):
    return load_settings(env_file=None, sandbox_dir=str(root), **values)


async def test_a_missing_image_says_how_to_build_one(dockerd: None, sandbox_dir: Path) -> None:
    with pytest.raises(SandboxUnavailable) as err:
        DockerBackend(sandbox_dir / "missing", TEST_LIMITS, image=MISSING)
    assert str(err.value) == f"the sandbox image {MISSING!r} is not on the Docker daemon; {HOW}"


async def test_auto_fallback_is_said_once_with_the_fix(
    dockerd: None, sandbox_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(
        sandbox_dir / "auto",
        sandbox_mode="auto",
        docker_sandbox_image=MISSING,
        # A remote service that does not answer: its reason is said once too.
        sandbox_api_url="http://127.0.0.1:9",
        sandbox_api_key=API_KEY,
    )
    caplog.set_level(logging.INFO)
    mgr = await build_sandbox_manager(settings)
    if mgr is None:
        pytest.skip("bwrap cannot run here either; nothing to fall back to")
    try:
        assert mgr.mode == "bwrap"
        about_image = [r for r in caplog.records if MISSING in r.getMessage()]
        about_remote = [r for r in caplog.records if "127.0.0.1:9" in r.getMessage()]
        assert len(about_image) == 1 and about_image == about_remote, [
            r.getMessage() for r in caplog.records
        ]
        [line] = about_image
        assert line.levelno == logging.WARNING and line.name == "sandbox.manager"
        assert line.getMessage().startswith("code sandbox: bwrap (auto; skipped remote: ")
        assert HOW in line.getMessage()
    finally:
        await mgr.close()

    # doctor: the same sentence, so the fix is one command away there too.
    check = await _check_sandbox(
        _settings(sandbox_dir / "auto", sandbox_mode="auto", docker_sandbox_image=MISSING)
    )
    assert check.ok and check.detail.startswith("bwrap (auto; skipped docker: ")
    assert HOW in check.detail
