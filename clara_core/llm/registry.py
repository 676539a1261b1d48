"""Settings -> endpoints, and wire name -> adapter class.

Built-in adapters register through ``register_wire`` exactly as a plug-in
would; the provider table (which settings fields configure which provider)
is data in ``clara_core.config.llm.PROVIDERS``.
"""

from __future__ import annotations

from clara_core.config import PROVIDERS, Settings
from clara_core.errors import ConfigError

from .providers.base import ChatProvider, Endpoint
from .tiers import Tier

_WIRES: dict[str, type[ChatProvider]] = {}


def register_wire(cls: type[ChatProvider]) -> type[ChatProvider]:
    _WIRES[cls.wire] = cls
    return cls


def wire_class(wire: str) -> type[ChatProvider]:
    load_builtins()
    try:
        return _WIRES[wire]
    except KeyError:
        raise ConfigError([f"no adapter registered for wire API {wire!r}"]) from None


def load_builtins() -> None:
    """Import the built-in adapters (and their SDKs, ~1 s) — at start-up, not mid-turn."""
    if not _WIRES:
        from .providers import anthropic_messages, openai_chat

        register_wire(openai_chat.OpenAIChatProvider)
        register_wire(anthropic_messages.AnthropicMessagesProvider)


def endpoint_for(settings: Settings, provider: str, *, for_tools: bool = False) -> Endpoint:
    """The endpoint of ``provider``; tool-calling requests honour TOOL_API_KEY/TOOL_BASE_URL."""
    fields = PROVIDERS[provider]
    key = settings.provider_api_key(provider)
    if key is None:
        raise ConfigError(
            [f"{fields.api_key.upper()} is not set (needed by LLM provider {provider})"]
        )
    api_key = key.get_secret_value()
    base_url = getattr(settings, fields.base_url)
    if for_tools:
        if settings.tool_api_key is not None:
            api_key = settings.tool_api_key.get_secret_value()
        if settings.tool_base_url:
            base_url = settings.tool_base_url
    headers = {}
    for header, field in fields.headers:
        value = getattr(settings, field)
        if value is not None:
            headers[header] = (
                value.get_secret_value() if hasattr(value, "get_secret_value") else value
            )
    return Endpoint(
        provider=provider,
        wire=fields.wire_api,
        base_url=base_url,
        api_key=api_key,
        headers=tuple(headers.items()),
        timeout=settings.llm_timeout,
    )


def model_for(settings: Settings, provider: str, tier: Tier | None) -> str:
    """Tier model when configured, otherwise the provider's base model."""
    fields = PROVIDERS[provider]
    if tier is not None:
        tiered = getattr(settings, f"{fields.tier_prefix}_{tier}")
        if tiered:
            return tiered
    return getattr(settings, fields.model)
