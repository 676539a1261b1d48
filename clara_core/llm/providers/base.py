"""The contract every wire adapter fulfils."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from ..types import Completion, CompletionRequest, StreamEvent

T = TypeVar("T")

# Building and sending a request costs ~1-2 ms of CPU in the SDK. When hundreds
# of turns start in the same instant, all of that would land in one event-loop
# iteration and freeze everything else (Discord heartbeats, streaming edits).
# A small gate spreads request starts out: a start holds a slot until the
# response headers arrive or START_HOLD_S passes, whichever comes first.
START_SLOTS = 8
START_HOLD_S = 0.02


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach one configured provider."""

    provider: str  # "openrouter", "anthropic", ... (for messages and logs only)
    wire: str  # which adapter speaks to it: "openai" or "anthropic"
    base_url: str | None
    api_key: str = field(repr=False)  # never in logs or error messages
    headers: tuple[tuple[str, str], ...] = ()  # hashable: endpoints key the client cache
    timeout: float = 120.0


class ChatProvider(ABC):
    """One wire API. ``stream()`` yields deltas and finally a ``Completion``.

    Adapters never retry (the SDKs are created with ``max_retries=0``): the
    service owns retries so it can honour Retry-After, fall back to another
    provider, and stop immediately when a turn is cancelled.  Closing the
    async generator (cancellation) must close the HTTP response at once.
    """

    wire: ClassVar[str]

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._start_gate = asyncio.Semaphore(START_SLOTS)

    async def _gated_start(self, start: Awaitable[T]) -> T:
        """Run the start of a request through the gate (see START_SLOTS)."""
        task = asyncio.ensure_future(start)
        try:
            async with self._start_gate:
                await asyncio.wait({task}, timeout=START_HOLD_S)
            return await task
        except asyncio.CancelledError:
            task.cancel()
            with contextlib.suppress(BaseException):
                result: Any = await task
                if hasattr(result, "aclose"):  # a response that arrived anyway
                    await result.aclose()
            raise

    @abstractmethod
    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]: ...

    @abstractmethod
    async def complete(self, request: CompletionRequest) -> Completion: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        pass
