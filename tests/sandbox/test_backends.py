"""Behaviour every sandbox backend must share (run once per backend)."""

from __future__ import annotations

import pytest

from sandbox.base import Backend, SandboxPathError

from .conftest import TEST_LIMITS, assert_next_command_works


async def test_python_runs_and_prints(backend: Backend) -> None:
    r = await backend.exec("beh-print", ["python3", "-c", "print(2**200)"])
    assert r.exit_code == 0 and not r.timed_out
    assert r.stdout.strip() == str(2**200)
    assert r.stderr == ""
    assert not r.truncated


async def test_failure_keeps_exit_code_and_stderr(backend: Backend) -> None:
    r = await backend.exec("beh-fail", ["python3", "-c", "import sys; print('x'); sys.exit(3)"])
    assert r.exit_code == 3
    assert r.stdout == "x\n"
    r = await backend.exec("beh-fail", ["python3", "-c", "1/0"])
    assert r.exit_code == 1
    assert "ZeroDivisionError" in r.stderr


async def test_stdin_reaches_the_program(backend: Backend) -> None:
    r = await backend.exec(
        "beh-stdin", ["python3", "-c", "import sys; print(sys.stdin.read()[::-1])"], stdin=b"abc"
    )
    assert r.stdout.strip() == "cba"


async def test_files_move_both_ways_and_persist(backend: Backend) -> None:
    user = "beh-files"
    await backend.put_file(user, "in/data.txt", b"hello\n")
    r = await backend.exec(
        user, ["sh", "-c", "cat /workspace/in/data.txt; pwd; echo out > made.txt"]
    )
    assert r.stdout == "hello\n/workspace\n"
    assert await backend.get_file(user, "made.txt") == b"out\n"
    names = {f.path: f for f in await backend.list_files(user)}
    assert names["in"].is_dir and names["made.txt"].size == 4
    # The sandbox is reaped (idle) and comes back: the workspace is still there.
    await backend.reap(user)
    assert user not in await backend.live_sandboxes()
    r = await backend.exec(user, ["cat", "made.txt"])
    assert r.stdout == "out\n"
    await backend.delete_file(user, "made.txt")
    with pytest.raises(SandboxPathError):
        await backend.get_file(user, "made.txt")


async def test_output_is_capped_head_and_tail_with_size(backend: Backend) -> None:
    code = "print('START'); print('x' * 100_000); print('END')"
    r = await backend.exec("beh-cap", ["python3", "-c", code])
    assert r.exit_code == 0
    assert r.stdout_bytes == len("START\n") + 100_001 + len("END\n")
    assert r.truncated
    assert len(r.stdout) < TEST_LIMITS.output_limit_bytes + 200
    assert r.stdout.startswith("START\n") and r.stdout.rstrip().endswith("END")
    assert f"{r.stdout_bytes:,} bytes in all" in r.stdout


async def test_timeout_reports_and_sandbox_recovers(backend: Backend) -> None:
    r = await backend.exec(
        "beh-timeout",
        ["python3", "-c", "import time; print('go', flush=True); time.sleep(60)"],
        timeout=1.5,
    )
    assert r.timed_out and r.exit_code is None
    assert r.stdout == "go\n"
    assert r.duration_s < 8
    await assert_next_command_works(backend, "beh-timeout")


async def test_environment_is_clean(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLARA_CANARY_SECRET", "canary-8d1f0c")
    r = await backend.exec(
        "beh-env", ["sh", "-c", "env; cat /proc/1/environ 2>/dev/null; cat /proc/self/environ"]
    )
    assert "canary-8d1f0c" not in r.stdout
    assert "HOME=/workspace" in r.stdout


async def test_runs_as_unprivileged_user_in_own_pid_namespace(backend: Backend) -> None:
    code = "import os; print(os.getuid(), os.geteuid()); print(len([p for p in os.listdir('/proc') if p.isdigit()]))"
    r = await backend.exec("beh-uid", ["python3", "-c", code])
    uid_line, nprocs = r.stdout.split("\n")[:2]
    assert "0" not in uid_line.split()
    # Only the sandbox's own few processes are visible, not the host's hundreds.
    assert int(nprocs) < 10


async def test_delete_user_data_removes_the_workspace(backend: Backend) -> None:
    user = "beh-forget"
    await backend.put_file(user, "private.txt", b"forget me")
    await backend.delete_user_data(user)
    assert user not in await backend.live_sandboxes()
    r = await backend.exec(user, ["ls", "-A", "/workspace"])
    assert r.exit_code == 0 and r.stdout == ""
