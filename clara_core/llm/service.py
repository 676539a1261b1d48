"""``LLMService``: the one object the pipeline uses to talk to models.

It resolves (tier, tools?) to routes (primary provider, then each of
LLM_FALLBACK_PROVIDERS), retries transient failures with backoff that honours
Retry-After, falls back when a provider keeps failing, and never retries once
output has reached the user (a half-streamed answer cannot be un-sent).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from clara_core.config import Settings

from .errors import (
    LLMError,
    ProviderAuthError,
    ProviderRequestError,
    ProviderUnavailable,
    StreamInterrupted,
)
from .models import ModelCapabilities, capabilities_for
from .providers.base import ChatProvider, Endpoint
from .registry import endpoint_for, load_wires_for, model_for, wire_class
from .retry import RetryPolicy
from .tiers import CLASSIFIER_SYSTEM, Tier, parse_tier_answer
from .types import Completion, CompletionRequest, Message, OutputSchema, StreamEvent, ToolSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    provider: str
    endpoint: Endpoint
    model: str
    tier: Tier | None

    @property
    def capabilities(self) -> ModelCapabilities:
        return capabilities_for(self.model)


@dataclass
class ChatRequest:
    """A model call before a route (and so a model) is chosen."""

    messages: list[Message]
    system: str | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    max_tokens: int | None = None
    #: A wish: sent only where the route's wire and model accept it.
    temperature: float | None = None
    #: Ask for JSON of this shape through the wire's structured output where the
    #: route supports it; elsewhere the prompt alone asks (parse tolerantly).
    output_schema: OutputSchema | None = None


class LLMService:
    def __init__(
        self,
        settings: Settings,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy or RetryPolicy(max_retries=settings.llm_max_retries)
        self.rng = rng or random.Random()
        self.sleep = sleep
        self._providers: dict[Endpoint, ChatProvider] = {}
        # Routes whose server refused structured output although the model table
        # says the model has it (a proxy that doesn't pass it on): ask them with
        # the prompt alone from then on instead of failing every call.
        self._no_structured: set[tuple[Endpoint, str]] = set()
        # SDK imports (~1 s) and client construction (SSL context, transport
        # imports: ~100 ms each) block. Pay for them here, at start-up, for
        # every endpoint routes() can produce (only the wires those speak), never
        # inside a turn.
        load_wires_for(settings)
        for tier in (None, "low"):
            for with_tools in (False, True):
                for route in self.routes(tier, with_tools=with_tools):
                    self._provider(route.endpoint)

    # -- routing ------------------------------------------------------------

    def routes(
        self, tier: Tier | None, *, with_tools: bool, keep_tier: bool = False
    ) -> list[Route]:
        """Primary route first, then fallbacks. Tools never run on the low tier: a
        request with tools goes to the base model, unless ``keep_tier`` (the low
        model is only offered the tools to say it needs one; the turn hands that
        step to the base model, pipeline/turn.py).  Either way it goes where tool
        requests go (TOOL_BASE_URL / TOOL_API_KEY)."""
        if with_tools and tier == "low" and not keep_tier:
            tier = None  # the provider's base model
        primary = self.settings.llm_provider
        names = [primary, *self.settings.llm_fallback_providers]
        out = []
        for name in dict.fromkeys(names):
            out.append(
                Route(
                    provider=name,
                    # TOOL_API_KEY/TOOL_BASE_URL describe the main provider's
                    # tool endpoint; a fallback may not even speak the same wire.
                    endpoint=endpoint_for(
                        self.settings, name, for_tools=with_tools and name == primary
                    ),
                    model=model_for(self.settings, name, tier),
                    tier=tier,
                )
            )
        return out

    def primary_route(
        self, tier: Tier | None, *, with_tools: bool, keep_tier: bool = False
    ) -> Route:
        return self.routes(tier, with_tools=with_tools, keep_tier=keep_tier)[0]

    def _provider(self, endpoint: Endpoint) -> ChatProvider:
        provider = self._providers.get(endpoint)
        if provider is None:
            provider = wire_class(endpoint.wire)(endpoint)
            self._providers[endpoint] = provider
        return provider

    def _request(self, req: ChatRequest, route: Route) -> CompletionRequest:
        """The request for this route, holding only what its wire and model accept."""
        caps = route.capabilities
        wire = wire_class(route.endpoint.wire)
        sampling = wire.sampling_params & caps.sampling_params
        structured = (
            req.output_schema is not None
            and wire.structured_output
            and caps.structured_output
            and (route.endpoint, route.model) not in self._no_structured
        )
        return CompletionRequest(
            model=route.model,
            messages=req.messages,
            system=req.system,
            tools=req.tools,
            max_tokens=min(req.max_tokens or self.settings.llm_max_tokens, caps.max_output_tokens),
            temperature=req.temperature if "temperature" in sampling else None,
            output_schema=req.output_schema if structured else None,
        )

    def _refused_structured(
        self, request: CompletionRequest, route: Route, exc: ProviderRequestError
    ) -> bool:
        """True when a refusal may be the structured output itself: remember it so the
        caller asks again (and from now on) with the prompt alone."""
        if request.output_schema is None:
            return False
        log.warning(
            "%s refused a structured-output request for %s (%s); "
            "asking with the prompt alone from now on",
            route.provider,
            route.model,
            exc,
        )
        self._no_structured.add((route.endpoint, route.model))
        return True

    # -- calls --------------------------------------------------------------

    async def stream(
        self,
        req: ChatRequest,
        *,
        tier: Tier | None,
        with_tools: bool | None = None,
        keep_tier: bool = False,
    ) -> AsyncIterator[StreamEvent]:
        """Stream one model call with retries and fallback; ends with a ``Completion``."""
        with_tools = bool(req.tools) if with_tools is None else with_tools
        last: LLMError | None = None
        for route in self.routes(tier, with_tools=with_tools, keep_tier=keep_tier):
            provider = self._provider(route.endpoint)
            attempt = 0
            while True:
                emitted = False
                request = self._request(req, route)
                try:
                    async for event in provider.stream(request):
                        emitted = True
                        yield event
                    return
                except ProviderRequestError as exc:
                    if emitted or not self._refused_structured(request, route, exc):
                        raise
                except ProviderUnavailable as exc:
                    if emitted:
                        raise StreamInterrupted(str(exc), provider=route.provider) from exc
                    attempt += 1
                    delay = self.policy.delay(attempt, exc.retry_after, self.rng)
                    if delay is None:
                        log.warning(
                            "%s: giving up after %d attempt(s): %s", route.provider, attempt, exc
                        )
                        last = exc
                        break
                    log.warning("%s: %s; retry %d in %.1fs", route.provider, exc, attempt, delay)
                    await self.sleep(delay)
                except ProviderAuthError as exc:
                    log.error("%s rejected the API key: %s", route.provider, exc)
                    last = exc
                    break
        assert last is not None
        raise last

    async def complete(self, req: ChatRequest, *, tier: Tier | None) -> Completion:
        """A non-streamed call (classification, summaries) with the same policy."""
        last: LLMError | None = None
        for route in self.routes(tier, with_tools=bool(req.tools)):
            provider = self._provider(route.endpoint)
            attempt = 0
            while True:
                request = self._request(req, route)
                try:
                    return await provider.complete(request)
                except ProviderRequestError as exc:
                    if not self._refused_structured(request, route, exc):
                        raise
                except ProviderUnavailable as exc:
                    attempt += 1
                    delay = self.policy.delay(attempt, exc.retry_after, self.rng)
                    if delay is None:
                        last = exc
                        break
                    await self.sleep(delay)
                except ProviderAuthError as exc:
                    last = exc
                    break
        assert last is not None
        raise last

    async def choose_tier(self, text: str, recent: list[Message]) -> Tier:
        """Ask the low model how hard the message is; unclear or failing -> mid."""
        context = "\n".join(
            f"{m.name or m.role}: {m.plain_text[:500]}" for m in recent[-4:] if m.plain_text
        )
        prompt = (f"Recent conversation:\n{context}\n\n" if context else "") + (
            f"Newest message:\n{text[:2000]}\n\nTier?"
        )
        try:
            answer = await self.complete(
                ChatRequest(
                    messages=[Message.text("user", prompt)],
                    system=CLASSIFIER_SYSTEM,
                    max_tokens=16,
                    temperature=0.0,
                ),
                tier="low",
            )
        except LLMError as exc:
            log.warning("auto tier selection failed (%s); using mid", exc)
            return "mid"
        return parse_tier_answer(answer.text)

    async def aclose(self) -> None:
        providers, self._providers = list(self._providers.values()), {}
        for p in providers:
            await p.aclose()
