"""The worker's healthcheck: ``python -m clara_core.worker_health``.

A worker has no Discord connection and no monitor to ask (the image's
HEALTHCHECK asks the monitor).  While it runs, ``python discord_bot.py worker``
writes the time to CLARA_DATA_DIR/worker.health every BEACON_EVERY_S, when its
queue's Redis answers (``clara_core/worker.py``).  This command exits 0 when
that beacon is fresh, 1 otherwise, and says which: a hung loop, a Redis the
worker cannot reach and a worker that has not started all read as unhealthy.

Kept free of Clara's settings and of any third-party import: it runs every few
seconds in the container, and a healthcheck must not fail on what it checks
nothing about (a .env the worker never reads, say).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

HEALTH_FILE = "worker.health"
BEACON_EVERY_S = 10.0
#: Three missed beacons: one slow Redis round trip is not an outage.
STALE_AFTER_S = 3 * BEACON_EVERY_S


def check(data_dir: Path, now: float | None = None) -> tuple[bool, str]:
    path = data_dir / HEALTH_FILE
    try:
        written = float(path.read_text().strip())
    except FileNotFoundError:
        return False, f"no beacon at {path}: the worker has not started (or stopped)"
    except (OSError, ValueError) as exc:
        return False, f"unreadable beacon at {path}: {exc}"
    age = (time.time() if now is None else now) - written
    if age > STALE_AFTER_S:
        return False, (
            f"last beacon {age:.0f} s ago (more than {STALE_AFTER_S:.0f} s): the worker's "
            "loop is stuck or its queue's Redis does not answer"
        )
    return True, f"beacon {max(age, 0):.0f} s ago"


def main() -> int:
    # The same default as CLARA_DATA_DIR's setting (clara_core/config/core.py).
    data_dir = Path(os.environ.get("CLARA_DATA_DIR") or "data")
    ok, why = check(data_dir)
    print(f"worker {'healthy' if ok else 'unhealthy'}: {why}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
