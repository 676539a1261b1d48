"""SandboxManager on a real backend: reaper on an injected clock, the cap,
per-user serialisation, and auto selection from settings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from clara_core.config.tools import ToolSettings
from sandbox.base import Backend, SandboxBusy
from sandbox.manager import SandboxManager, build_sandbox_manager, select_backend


class FakeClock:
    """Monotonic seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def _wait_for(pred, timeout: float = 5.0) -> None:
    """Poll: the reaper is a background task with nothing to await on."""
    async with asyncio.timeout(timeout):
        while not pred():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_idle_reaper_really_runs(backend: Backend) -> None:
    clock = FakeClock()
    mgr = SandboxManager(backend, idle_timeout=600, clock=clock, reap_interval=0.05)
    mgr.start()
    try:
        await mgr.exec("mgr-idle-a", ["true"])
        clock.t += 300
        await mgr.exec("mgr-idle-b", ["true"])
        await mgr.put_file("mgr-idle-a", "keep.txt", b"kept")
        assert set(mgr.live_users()) >= {"mgr-idle-a", "mgr-idle-b"}
        clock.t += 400  # a: 400 s idle (touched by put_file), b: 400 s idle
        await asyncio.sleep(0.2)
        assert set(mgr.live_users()) >= {"mgr-idle-a", "mgr-idle-b"}
        clock.t += 250  # both past 600 s now
        await _wait_for(lambda: mgr.reaped_total >= 2)
        assert not {"mgr-idle-a", "mgr-idle-b"} & set(mgr.live_users())
        assert not {"mgr-idle-a", "mgr-idle-b"} & set(await backend.live_sandboxes())
        # Reaped, not deleted: the workspace comes back with the next command.
        r = await mgr.exec("mgr-idle-a", ["cat", "keep.txt"])
        assert r.stdout == "kept"
    finally:
        await mgr.stop()  # the module's backend is closed by its fixture


async def test_cap_evicts_idle_and_refuses_when_all_busy(backend: Backend) -> None:
    clock = FakeClock()
    mgr = SandboxManager(backend, idle_timeout=600, max_sandboxes=2, clock=clock)
    await mgr.exec("mgr-cap-1", ["true"])
    clock.t += 1
    await mgr.exec("mgr-cap-2", ["true"])
    clock.t += 1
    await mgr.exec("mgr-cap-3", ["true"])  # evicts the least recently used: 1
    assert set(mgr.live_users()) == {"mgr-cap-2", "mgr-cap-3"}
    assert "mgr-cap-1" not in await backend.live_sandboxes()
    # Both slots running code: a fourth user is told to wait, nothing is killed.
    long = [asyncio.create_task(mgr.exec(u, ["sleep", "1.5"])) for u in ("mgr-cap-2", "mgr-cap-3")]
    await asyncio.sleep(0.5)
    with pytest.raises(SandboxBusy, match="try again"):
        await mgr.exec("mgr-cap-4", ["true"])
    results = await asyncio.gather(*long)
    assert all(r.exit_code == 0 for r in results)
    for u in mgr.live_users():
        await backend.reap(u)


async def test_one_users_commands_run_one_at_a_time(backend: Backend) -> None:
    mgr = SandboxManager(backend, idle_timeout=600)
    code = "import time; print(time.time()); time.sleep(0.4); print(time.time())"
    a, b = await asyncio.gather(
        mgr.exec("mgr-serial", ["python3", "-c", code]),
        mgr.exec("mgr-serial", ["python3", "-c", code]),
    )
    spans = sorted(tuple(map(float, r.stdout.split())) for r in (a, b))
    assert spans[0][1] <= spans[1][0]  # the second started after the first ended


async def test_cancelled_exec_kills_the_command(backend: Backend) -> None:
    mgr = SandboxManager(backend, idle_timeout=600)
    task = asyncio.create_task(mgr.exec("mgr-cancel", ["sh", "-c", "while :; do :; done"]))
    await asyncio.sleep(0.5)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.time() - t0 < 5
    r = await mgr.exec("mgr-cancel", ["python3", "-c", "print('alive')"])
    assert r.stdout == "alive\n"


async def test_auto_selection_and_explicit_modes(sandbox_dir: Path) -> None:
    from .conftest import TEST_IMAGE

    root = sandbox_dir / "auto"
    s = ToolSettings(_env_file=None, sandbox_dir=root, sandbox_mode="bwrap")
    try:
        be, why = await select_backend(s)
    except Exception as exc:
        pytest.skip(f"bwrap unavailable: {exc}")
    assert be.name == "bwrap" and "SANDBOX_MODE=bwrap" in why
    await be.close()
    s = ToolSettings(
        _env_file=None, sandbox_dir=root, sandbox_mode="auto", docker_sandbox_image=TEST_IMAGE
    )
    mgr = await build_sandbox_manager(s)
    assert mgr is not None
    try:
        assert mgr.mode in ("docker", "bwrap")
        assert mgr.selection.startswith(mgr.mode + " (auto")
        if mgr.mode == "bwrap":  # Docker was skipped, and the log/doctor line says why
            assert "docker:" in mgr.selection
        r = await mgr.exec("mgr-auto", ["python3", "-c", "print('ok')"])
        assert r.stdout == "ok\n"
    finally:
        await mgr.close()
    # An image that does not exist: auto falls back to bwrap and says why.
    s = ToolSettings(
        _env_file=None, sandbox_dir=root, sandbox_mode="auto", docker_sandbox_image="nope:none"
    )
    mgr = await build_sandbox_manager(s)
    assert mgr is not None and mgr.mode == "bwrap"
    assert "docker:" in mgr.selection and "nope:none" in mgr.selection
    await mgr.close()
    s = ToolSettings(
        _env_file=None,
        sandbox_dir=root,
        sandbox_mode="remote",
        sandbox_api_url="http://127.0.0.1:9",
    )
    assert await build_sandbox_manager(s) is None
