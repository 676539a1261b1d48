"""The worker's healthcheck (clara_core/worker_health.py): fresh beacon or not."""

from __future__ import annotations

import subprocess
import sys

from clara_core.worker_health import HEALTH_FILE, STALE_AFTER_S, check


def test_a_fresh_beacon_is_healthy_a_stale_or_missing_one_is_not(tmp_path):
    ok, why = check(tmp_path, now=1000.0)
    assert not ok and "has not started" in why
    (tmp_path / HEALTH_FILE).write_text("1000.000\n")
    assert check(tmp_path, now=1000.0 + STALE_AFTER_S - 1)[0]
    ok, why = check(tmp_path, now=1000.0 + STALE_AFTER_S + 1)
    assert not ok and "stuck or its queue's Redis does not answer" in why
    (tmp_path / HEALTH_FILE).write_text("garbage")
    ok, why = check(tmp_path, now=1000.0)
    assert not ok and "unreadable" in why


def test_the_command_exits_0_only_when_healthy(tmp_path):
    env = {"CLARA_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "clara_core.worker_health"]
    missing = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1 and "unhealthy" in missing.stdout
    (tmp_path / HEALTH_FILE).write_text("0\n")  # 1970: stale
    stale = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    assert stale.returncode == 1 and "unhealthy" in stale.stdout
    import time

    (tmp_path / HEALTH_FILE).write_text(f"{time.time()}\n")
    fresh = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    assert fresh.returncode == 0 and "healthy" in fresh.stdout, fresh.stdout + fresh.stderr
