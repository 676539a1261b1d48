"""Keep the garbage collector's full passes short once Clara has started.

Start-up leaves a large heap of long-lived objects (SDKs, models, settings,
discord.py state).  CPython's oldest-generation collection walks all of them;
measured in bench/pipeline.py such a pass took 70-130 ms, and it runs *on the
event loop*, stalling every conversation at once.  ``gc.freeze()`` moves what
exists after start-up into a permanent generation the collector skips, so
later full passes only walk what was allocated since.

Only the young generations are collected before freezing: Discord is already
connected when the heap settles, so this runs just before the first message
is handled.  A full pass there cost 170 ms of CPU (440 ms on a loaded
2-core machine) and found 33 unreachable objects out of ~320,000 — not worth
delaying the first answer for; those few stay frozen.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def settle_heap() -> None:
    """Collect the young generations, then exempt the start-up objects from future passes."""
    t0 = time.perf_counter()
    gc.collect(1)
    gc.freeze()
    log.debug(
        "heap settled: %d objects frozen in %.0f ms",
        gc.get_freeze_count(),
        (time.perf_counter() - t0) * 1000,
    )
