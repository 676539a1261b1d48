"""--daemon / --status / --stop, stale pidfiles, signals, and SIGKILL durability."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from storage.datadir import read_endpoints
from storage.models import Project
from storage.services import Storage
from tests.fakes.fake_discord import FakeDiscord
from tests.support.clara_process import ENTRY, clara_env, pid_alive, run_clara, wait_for

pytestmark = pytest.mark.slow

# Discord that never answers: the discard port on loopback refuses connections.
UNREACHABLE = {
    "DISCORD_BOT_TOKEN": "test-token",
    "OPENROUTER_API_KEY": "test-key",
    "DISCORD_API_BASE": "http://127.0.0.1:9/api/v10",
    "DISCORD_GATEWAY_URL": "ws://127.0.0.1:9/",
}


def _pid_from(text: str) -> int:
    return int(re.search(r"pid (\d+)", text).group(1))


def _server_pids(data_dir) -> list[int]:
    pids = []
    pm = data_dir / "postgres" / "postmaster.pid"
    if pm.exists():
        pids.append(int(pm.read_text().split()[0]))
    rp = data_dir / "run" / "redis.pid"
    if rp.exists():
        pids.append(int(rp.read_text().strip()))
    return pids


@pytest.fixture
def daemon_env(tmp_path):
    env = clara_env(tmp_path, **UNREACHABLE)
    yield env
    run_clara("--stop", env=env, cwd=tmp_path)


def test_daemon_lifecycle_while_discord_is_unreachable(tmp_path, daemon_env):
    data = tmp_path / "data"
    started = run_clara("--daemon", env=daemon_env, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    pid = _pid_from(started.stdout)
    assert pid_alive(pid)

    time.sleep(1.1)
    status = run_clara("--status", env=daemon_env, cwd=tmp_path)
    assert status.returncode == 0
    assert f"pid {pid}" in status.stdout and re.search(r"up \d+s", status.stdout)

    # Discord is down: Clara stays up and says so plainly in its log.
    log = data / "clara.log"
    wait_for(lambda: "cannot reach Discord" in log.read_text(), what="retry message in log")
    assert "test-token" not in log.read_text()
    servers = _server_pids(data)
    assert len(servers) == 2 and all(pid_alive(p) for p in servers)

    stopped = run_clara("--stop", env=daemon_env, cwd=tmp_path)
    assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout
    assert not pid_alive(pid)
    assert not any(pid_alive(p) for p in servers), "embedded servers outlived Clara"
    assert run_clara("--status", env=daemon_env, cwd=tmp_path).returncode == 3
    assert "shutting down" in log.read_text()


def test_stale_pidfile(tmp_path):
    env = clara_env(tmp_path)
    pidfile = tmp_path / "custom.pid"
    pidfile.write_text("4194000\n1700000000.0\n")  # a pid nobody holds a lock for
    status = run_clara("--status", "--pidfile", str(pidfile), env=env, cwd=tmp_path)
    assert status.returncode == 1 and "stale pidfile" in status.stdout
    stop = run_clara("--stop", "--pidfile", str(pidfile), env=env, cwd=tmp_path)
    assert stop.returncode == 0 and "removed stale pidfile" in stop.stdout
    assert not pidfile.exists()
    assert run_clara("--status", "--pidfile", str(pidfile), env=env, cwd=tmp_path).returncode == 3


def test_status_works_with_broken_config(tmp_path):
    env = clara_env(tmp_path, DISCORD_MAX_MESSAGES="many")
    assert run_clara("--status", env=env, cwd=tmp_path).returncode == 3


def test_daemon_reports_missing_settings_in_the_terminal(tmp_path):
    env = clara_env(tmp_path)  # no token, no key
    result = run_clara("--daemon", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "DISCORD_BOT_TOKEN is not set" in result.stderr
    assert run_clara("--status", env=env, cwd=tmp_path).returncode == 3


def test_second_instance_is_refused(tmp_path, daemon_env):
    assert run_clara("--daemon", env=daemon_env, cwd=tmp_path).returncode == 0
    again = run_clara("--daemon", env=daemon_env, cwd=tmp_path)
    assert again.returncode == 1 and "already running" in again.stderr
    foreground = run_clara(env=daemon_env, cwd=tmp_path)
    assert foreground.returncode == 1 and "already running" in foreground.stderr


def test_sigterm_in_foreground_shuts_down_gracefully(tmp_path):
    env = clara_env(tmp_path, **UNREACHABLE)
    proc = subprocess.Popen(
        [sys.executable, str(ENTRY)], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: read_endpoints(tmp_path / "data"), timeout=60, what="storage up")
        servers = _server_pids(tmp_path / "data")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "shutting down gracefully" in err and "Clara stopped" in err
    assert not any(pid_alive(p) for p in servers)
    assert not (tmp_path / "data" / "clara.pid").exists()


async def _write_then_read(data_dir, marker: str, *, write: bool) -> tuple[bool, str | None]:
    from sqlalchemy import select

    from storage.db import session_factory

    storage = await Storage.open(data_dir, attach=True)
    try:
        async with session_factory(storage.engine)() as db:
            if write:
                db.add(Project(owner_id="durability", name=marker))
                await db.commit()
                await storage.redis.set("durability", marker)
            found = await db.scalar(select(Project).where(Project.name == marker))
            return found is not None, await storage.redis.get("durability")
    finally:
        await storage.close()


def test_sigkill_then_restart_loses_no_committed_data(tmp_path, daemon_env):
    data = tmp_path / "data"
    first = run_clara("--daemon", env=daemon_env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    pid = _pid_from(first.stdout)
    assert asyncio.run(_write_then_read(data, "before-kill", write=True)) == (True, "before-kill")
    servers = _server_pids(data)
    time.sleep(1.2)  # Redis AOF fsyncs every second

    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), what="Clara to die")
    wait_for(lambda: not any(pid_alive(p) for p in servers), what="embedded servers to follow")
    assert run_clara("--status", env=daemon_env, cwd=tmp_path).returncode == 1  # stale pidfile

    second = run_clara("--daemon", env=daemon_env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert asyncio.run(_write_then_read(data, "before-kill", write=False)) == (True, "before-kill")
    log = (data / "clara.log").read_text()
    assert log.count("initialising embedded PostgreSQL cluster") == 1  # reused, not re-created


async def test_daemon_reports_a_rejected_token_in_the_terminal(tmp_path):
    """The 401 must reach the user's terminal with a non-zero exit, not only clara.log."""
    async with FakeDiscord() as fake:  # answers 401 on /users/@me for any other token
        env = clara_env(
            tmp_path,
            DISCORD_BOT_TOKEN="not-the-token",
            OPENROUTER_API_KEY="test-key",
            DISCORD_API_BASE=fake.api_base,
            DISCORD_GATEWAY_URL=fake.gateway_url,
        )
        result = await asyncio.to_thread(run_clara, "--daemon", env=env, cwd=tmp_path)
        assert fake.requests_for("me")[0].status == 401
    assert result.returncode == 2, result.stdout
    assert "DISCORD_BOT_TOKEN was rejected by Discord" in result.stderr
    assert "started in the background" not in result.stdout
    assert "Traceback" not in result.stderr and "not-the-token" not in result.stderr
    assert run_clara("--status", env=env, cwd=tmp_path).returncode == 3


async def test_daemon_reports_a_missing_privileged_intent_in_the_terminal(tmp_path):
    async with FakeDiscord() as fake:
        fake.config.privileged_intents = 0  # Message Content is off in the portal: 4014
        env = clara_env(
            tmp_path,
            DISCORD_BOT_TOKEN=fake.token,
            OPENROUTER_API_KEY="test-key",
            DISCORD_API_BASE=fake.api_base,
            DISCORD_GATEWAY_URL=fake.gateway_url,
        )
        result = await asyncio.to_thread(run_clara, "--daemon", env=env, cwd=tmp_path)
        assert fake.identify_count == 1
    assert result.returncode == 2, result.stdout
    assert "Message Content intent" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_clara("--status", env=env, cwd=tmp_path).returncode == 3


def test_sigterm_interrupts_the_reconnect_backoff(tmp_path):
    """Discord unreachable, Clara waiting ~8 s before her next attempt: a stop
    request must end that wait at once, not after it (--stop SIGKILLs at 30 s)."""
    env = clara_env(tmp_path, **UNREACHABLE)
    proc = subprocess.Popen(
        [sys.executable, str(ENTRY)], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # blocks until Clara logs; bounded by the retry schedule
            lines.append(line)
            wait = re.search(r"cannot reach Discord .*; retrying in (\d+)s", line)
            if wait and int(wait.group(1)) >= 6:
                break
        else:
            raise AssertionError("Clara exited before a long backoff:\n" + "".join(lines))
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(lines) + rest
    assert took < 4.0, f"shutdown took {took:.1f}s: it waited out the backoff"
    assert "Clara stopped" in rest and "Traceback" not in rest
