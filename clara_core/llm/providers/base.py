"""The contract every wire adapter fulfils."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx  # noqa: F401  (imported whole before any request: see below)
import httpx2

from ..errors import ProviderUnavailable
from ..types import Completion, CompletionRequest, StreamEvent
from .burst import REQUEST_GATE
from .http_errors import provider_failures, translate_error
from .sse import SSEvent, iter_sse

# Why ``import httpx`` above, though nothing here uses it: the openai SDK checks
# ``sys.modules.get("httpx")`` on every request (to accept legacy httpx objects).
# If another thread is importing httpx at that moment (huggingface_hub, tavily
# and mcp import it, some of them lazily in worker threads), the SDK finds the
# half-initialised module and the request fails with "partially initialized
# module 'httpx' has no attribute 'Timeout'".  Seen when answers start right at
# start-up (the catch-up after a restart).  Imported whole before any request,
# the module is complete whenever the SDK looks.


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
    #: Sampling parameters this wire's API accepts (``CompletionRequest.temperature``
    #: ...).  ``LLMService`` only sets those in this set *and* the model's.
    sampling_params: ClassVar[frozenset[str]] = frozenset()  # none unless declared
    #: Whether the adapter can express ``CompletionRequest.output_schema``.
    structured_output: ClassVar[bool] = False
    client: Any  # the SDK client: both SDKs share the ``post(..., stream=True)`` API

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.failures = provider_failures(self.sdk_error)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Any provider-side failure inside the block becomes Clara's ``LLMError``:
        SDK errors, transport errors that escape the SDK unwrapped, a body that is
        not the JSON it claims to be."""
        name = self.endpoint.provider
        try:
            yield
        except self.failures as exc:
            raise translate_error(exc, name) from exc
        except json.JSONDecodeError as exc:
            raise ProviderUnavailable(
                f"{name}: malformed response body ({exc})", provider=name
            ) from exc

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
        with self._translated():
            response = await self.client.post(path, cast_to=httpx2.Response, body=body, stream=True)
        try:
            yield iter_sse(response.aiter_lines())
        except self.failures as exc:
            # Raw from the response's iterator, or wrapped by an SDK that reads it.
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
