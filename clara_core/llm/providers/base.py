"""The contract every wire adapter fulfils."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx2

from ..errors import ProviderUnavailable
from ..types import Completion, CompletionRequest, StreamEvent
from .burst import REQUEST_GATE
from .http_errors import translate_error
from .sse import SSEvent, iter_sse


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
    sdk_error: ClassVar[type[Exception]]  # the SDK's root exception class
    client: Any  # the SDK client: both SDKs share the ``post(..., stream=True)`` API

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def _sdk_client_kwargs(self) -> dict[str, Any]:
        """What both SDK clients are built with: no SDK retries (the service owns them)."""
        e = self.endpoint
        return {
            "api_key": e.api_key,
            "base_url": e.base_url,
            "default_headers": dict(e.headers) or None,
            "max_retries": 0,
            "timeout": httpx2.Timeout(e.timeout, connect=10.0),
        }

    @asynccontextmanager
    async def _sse_events(
        self, path: str, body: dict[str, Any]
    ) -> AsyncIterator[AsyncIterator[SSEvent]]:
        """POST a streaming request and yield its server-sent events as plain dicts.

        Uses the SDK's documented custom-request path: the SDK does auth,
        headers and error translation and hands back the raw stream; we skip
        its per-request parameter transform and per-chunk models, which cost
        more CPU than the rest of a turn (bench/pipeline.py). Leaving the block
        in any way (done, error, cancellation) closes the HTTP response at once.
        """
        name = self.endpoint.provider
        await REQUEST_GATE.wait()
        try:
            response = await self.client.post(path, cast_to=httpx2.Response, body=body, stream=True)
        except (self.sdk_error, httpx2.TransportError) as exc:
            raise translate_error(exc, name) from exc
        try:
            yield iter_sse(response.aiter_lines())
        except (self.sdk_error, httpx2.TransportError) as exc:
            raise translate_error(exc, name) from exc
        except ValueError as exc:  # malformed JSON in the stream
            raise ProviderUnavailable(
                f"{name}: malformed stream data ({exc})", provider=name
            ) from exc
        finally:
            await response.aclose()

    @abstractmethod
    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]: ...

    @abstractmethod
    async def complete(self, request: CompletionRequest) -> Completion: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        pass
