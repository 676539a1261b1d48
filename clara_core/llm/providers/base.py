"""The contract every wire adapter fulfils."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import ClassVar

from ..types import Completion, CompletionRequest, StreamEvent


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

    @abstractmethod
    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]: ...

    @abstractmethod
    async def complete(self, request: CompletionRequest) -> Completion: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        pass
