"""A small, bounded thread pool for voice work (decode, Whisper, piper).

Transcription is seconds of CPU per clip: it must never run on the event loop,
and a burst of voice messages must not queue unboundedly behind it.  ``run``
refuses with ``VoiceBusy`` when every worker is busy and the waiting line is
full, so the user hears "try again in a minute" instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .errors import VoiceBusy

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Jobs allowed to wait per worker before new ones are refused.
WAITING_PER_WORKER = 4


class VoicePool:
    def __init__(self, workers: int, *, waiting_per_worker: int = WAITING_PER_WORKER) -> None:
        self.workers = workers
        self.capacity = workers * (1 + waiting_per_worker)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clara-voice")
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if self._in_flight >= self.capacity:
            raise VoiceBusy(
                f"{self._in_flight} voice jobs are already running or waiting "
                f"({self.workers} at a time)"
            )
        self._in_flight += 1
        try:
            # A cancelled caller stops waiting; the worker thread finishes its clip
            # (Whisper can't be interrupted) and the result is dropped.
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._in_flight -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
