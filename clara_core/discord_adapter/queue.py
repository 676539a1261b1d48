"""One active task per channel, a FIFO behind it, and stop that really stops.

``submit()`` returns the job's position (0: it starts now).  ``stop()``
cancels the active job (its LLM stream and tools stop through cancellation)
and drops everything queued, returning what it did so the user gets a
truthful confirmation.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


@dataclass
class QueuedJob:
    run: Job
    on_start: Callable[[], Awaitable[None]] | None = None
    label: str = ""


@dataclass
class _Channel:
    pending: deque[QueuedJob] = field(default_factory=deque)
    active: asyncio.Task[None] | None = None
    active_job: QueuedJob | None = None
    worker: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class StopResult:
    cancelled_active: bool
    cleared: int


class ChannelQueue:
    def __init__(self) -> None:
        self._channels: dict[int, _Channel] = {}

    def submit(self, channel_id: int, job: QueuedJob) -> int:
        """Queue ``job``; returns how many jobs are ahead of it."""
        state = self._channels.setdefault(channel_id, _Channel())
        ahead = len(state.pending) + (1 if state.active is not None else 0)
        state.pending.append(job)
        if state.worker is None or state.worker.done():
            state.worker = asyncio.create_task(
                self._work(channel_id, state), name=f"queue:{channel_id}"
            )
        return ahead

    async def _work(self, channel_id: int, state: _Channel) -> None:
        while state.pending:
            job = state.pending.popleft()
            state.active_job = job
            if job.on_start is not None:
                try:
                    await job.on_start()
                except Exception:
                    log.exception("queue on_start hook failed")
            state.active = asyncio.create_task(job.run(), name=f"job:{channel_id}:{job.label}")
            try:
                await state.active
            except asyncio.CancelledError:
                if not state.active.cancelled():
                    raise  # the worker itself is being cancelled (shutdown)
            except Exception:
                log.exception("job in channel %s failed", channel_id)
            finally:
                state.active = None
                state.active_job = None
        self._channels.pop(channel_id, None)

    async def stop(self, channel_id: int) -> StopResult:
        """Cancel the running job, clear the queue, and wait until it has stopped."""
        state = self._channels.get(channel_id)
        if state is None:
            return StopResult(False, 0)
        cleared = len(state.pending)
        state.pending.clear()
        active = state.active
        if active is not None and not active.done():
            active.cancel()
            await asyncio.wait({active}, timeout=10)
            return StopResult(True, cleared)
        return StopResult(False, cleared)

    def busy(self, channel_id: int) -> bool:
        state = self._channels.get(channel_id)
        return state is not None and (state.active is not None or bool(state.pending))

    def snapshot(self) -> dict[int, int]:
        """channel id -> jobs active or waiting (for /clara status)."""
        return {
            cid: len(s.pending) + (1 if s.active is not None else 0)
            for cid, s in self._channels.items()
        }

    async def close(self) -> None:
        for cid in list(self._channels):
            await self.stop(cid)
        workers = [s.worker for s in self._channels.values() if s.worker is not None]
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
