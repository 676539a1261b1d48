"""The daemon's crash output is redacted and lands in the current log, also after rotation."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.support.clara_process import REPO, clara_env, wait_for

pytestmark = pytest.mark.slow

SECRET = "MTA5ODc2NTQzMjEwOTg3NjU0.GaBcDe.rotation-secret-abcdefghijklmno"

# A real daemon (``daemonize``: double fork, fds 1/2 on the log file) set up with the
# CLI's own daemon logging, a small rotation size, then a crash carrying a secret.
DAEMON = textwrap.dedent(
    """
    import logging, sys
    from pathlib import Path
    from clara_core.cli import configure_daemon_logging
    from clara_core.config import load_settings
    from clara_core.daemon import daemonize

    logfile, secret = Path(sys.argv[1]), sys.argv[2]
    settings = load_settings(env_file=None).resolve_paths()
    pipe = daemonize(logfile)
    configure_daemon_logging(settings, logfile, max_bytes=4096)
    pipe.ready()
    for i in range(300):  # ~30 KB: several rotations
        logging.getLogger("filler").info("filler line %d %s", i, "x" * 60)
    print(f"a stray print to stderr with {secret}", file=sys.stderr)
    raise RuntimeError(f"crash while connecting with token {secret}")
    """
)


def test_crash_after_rotation_is_redacted_in_the_current_log(tmp_path):
    logfile = tmp_path / "clara.log"
    env = clara_env(tmp_path, DISCORD_BOT_TOKEN=SECRET, PYTHONPATH=str(REPO))
    launcher = subprocess.run(
        [sys.executable, "-c", DAEMON, str(logfile), SECRET],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert launcher.returncode == 0, launcher.stderr
    wait_for(
        lambda: logfile.exists() and "RuntimeError" in logfile.read_text(),
        timeout=30,
        what="the crash in the current log",
    )
    assert (tmp_path / "clara.log.1").exists()  # it really rotated
    current = logfile.read_text()
    assert "crash while connecting with token [redacted]" in current
    assert "Traceback (most recent call last)" in current  # the whole traceback, not a line
    assert "a stray print to stderr with [redacted]" in current
    for path in tmp_path.glob("clara.log*"):
        assert SECRET not in path.read_text(), path.name
