"""A small, bounded thread pool for voice work (decode, Whisper, piper).

Transcription is seconds of CPU per clip: it must never run on the event loop,
and a burst of voice messages must not queue unboundedly behind it.  ``run``
refuses with ``VoiceBusy`` when every worker is busy and the waiting line is
full, so the user hears "try again in a minute" instead of waiting forever.

Memory: Whisper, PyAV and piper allocate tens of MB per job (decode buffers,
CTranslate2's and onnxruntime's working tensors) from several threads.  glibc
keeps what they free in per-thread arenas, so RSS climbed from 250 MB with
both models loaded to ~530 MB after a few jobs and stayed there.  When the
pool goes idle it hands that memory back to the system (``malloc_trim``, on
the worker, after the result is delivered, so no caller waits for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .errors import VoiceBusy

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Jobs allowed to wait per worker before new ones are refused.
WAITING_PER_WORKER = 4


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``; None elsewhere (musl, macOS), where it isn't needed or
    doesn't exist."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
        trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def release_memory() -> None:
    """Return the C heap's free memory to the system (blocking, a few ms: a worker's job)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class VoicePool:
    def __init__(self, workers: int, *, waiting_per_worker: int = WAITING_PER_WORKER) -> None:
        self.workers = workers
        self.capacity = workers * (1 + waiting_per_worker)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clara-voice")
        self._in_flight = 0

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
            if self._in_flight == 0:
                self._trim()

    def _trim(self) -> None:
        # Queued behind nothing (the pool is idle): the next job waits at most the
        # trim's few milliseconds.
        with contextlib.suppress(RuntimeError):  # closed meanwhile
            self._executor.submit(release_memory)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
