"""``doctor``'s sandbox line: which backend SANDBOX_MODE gets here and why, and a
probe that leaves the sandboxes of a running Clara alone (real bwrap, real dockerd)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clara_core.config import load_settings
from clara_core.doctor import _check_sandbox, run_doctor
from sandbox.base import SandboxUnavailable

from .conftest import TEST_IMAGE, TEST_LIMITS


def _settings(root: Path, **values):
    return load_settings(env_file=None, sandbox_dir=str(root), **values)


async def test_the_line_names_the_backend_and_why(sandbox_dir: Path) -> None:
    check = await _check_sandbox(_settings(sandbox_dir / "d1", sandbox_mode="bwrap"))
    if not check.ok:
        pytest.skip(f"bwrap unavailable here: {check.detail}")
    assert (check.name, check.detail) == ("sandbox", "bwrap (SANDBOX_MODE=bwrap)")
    # auto with an image dockerd does not have: bubblewrap, and the reason Docker was skipped.
    check = await _check_sandbox(
        _settings(sandbox_dir / "d1", sandbox_mode="auto", docker_sandbox_image="nope:none")
    )
    assert check.ok and check.detail.startswith("bwrap (auto; skipped docker: ")
    assert "nope:none" in check.detail


async def test_no_backend_is_a_warning_not_a_failure(sandbox_dir: Path) -> None:
    check = await _check_sandbox(
        _settings(
            sandbox_dir / "d2",
            sandbox_mode="remote",
            sandbox_api_url="http://127.0.0.1:9",
            sandbox_api_key="k" * 20,
        )
    )
    assert not check.ok and not check.required
    assert check.detail.startswith("off, the code tools are not offered: ")
    assert "127.0.0.1:9" in check.detail


async def test_doctor_prints_the_sandbox_line(sandbox_dir: Path, capsys, tmp_path: Path) -> None:
    # A data dir that is a file: storage is skipped, so doctor is quick here.
    (tmp_path / "not-a-dir").write_text("")
    settings = _settings(
        sandbox_dir / "d3", sandbox_mode="bwrap", clara_data_dir=str(tmp_path / "not-a-dir")
    )
    await run_doctor(settings, None)
    lines = capsys.readouterr().out.splitlines()
    [line] = [x for x in lines if x.split("]", 1)[-1].strip().startswith("sandbox ")]
    assert line.startswith(("[ok  ] sandbox", "[warn] sandbox")), line
    assert "bwrap" in line


async def test_the_probe_leaves_a_running_clara_s_containers_alone(sandbox_dir: Path) -> None:
    from sandbox.docker import DockerBackend

    root = sandbox_dir / "shared"
    try:
        running = DockerBackend(root, TEST_LIMITS, image=TEST_IMAGE)
    except SandboxUnavailable as exc:
        pytest.skip(f"docker sandbox unavailable here: {exc} (run .ci/sandbox-setup.sh)")
    try:
        r = await running.exec("doctor-user", ["python3", "-c", "print('before')"])
        assert r.stdout == "before\n"
        # doctor while Clara runs with the same SANDBOX_DIR: a real backend built
        # there would sweep this instance's containers as "stale".
        check = await _check_sandbox(
            _settings(root, sandbox_mode="local", docker_sandbox_image=TEST_IMAGE)
        )
        assert (check.ok, check.detail) == (True, "docker (SANDBOX_MODE=local)")
        assert await running.live_sandboxes() == ["doctor-user"]
        r = await running.exec("doctor-user", ["python3", "-c", "print('after')"])
        assert r.stdout == "after\n" and not r.notes, r
    finally:
        await running.close()
