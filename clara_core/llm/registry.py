"""Settings -> endpoints, and wire name -> adapter class.

Built-in adapters register through ``register_wire`` exactly as a plug-in
would; the provider table (which settings fields configure which provider)
is data in ``clara_core.config.llm.PROVIDERS``.
"""

from __future__ import annotations

import importlib

from clara_core.config import PROVIDERS, Settings
from clara_core.errors import ConfigError

from .providers.base import ChatProvider, Endpoint
from .tiers import Tier

_WIRES: dict[str, type[ChatProvider]] = {}

#: The built-in adapters by wire, imported when their wire is first asked for: each
#: pulls in its SDK (the anthropic SDK alone takes ~1 s of CPU to import), and a
#: Clara that speaks one wire should not pay for the other at every start.
_BUILTINS = {
    "openai": ("clara_core.llm.providers.openai_chat", "OpenAIChatProvider"),
    "anthropic": ("clara_core.llm.providers.anthropic_messages", "AnthropicMessagesProvider"),
}


def register_wire(cls: type[ChatProvider]) -> type[ChatProvider]:
    _WIRES[cls.wire] = cls
    return cls


def wire_class(wire: str) -> type[ChatProvider]:
    if wire not in _WIRES and wire in _BUILTINS:
        module, name = _BUILTINS[wire]
        register_wire(getattr(importlib.import_module(module), name))
    try:
        return _WIRES[wire]
    except KeyError:
        raise ConfigError([f"no adapter registered for wire API {wire!r}"]) from None


def load_builtins() -> None:
    """Import every built-in adapter (and its SDK) now, e.g. for tools that list them."""
    for wire in _BUILTINS:
        wire_class(wire)


def load_wires_for(settings: Settings) -> None:
    """Import the adapters (and SDKs) of the wires the configured providers speak —
    at start-up (a worker thread may call this), never mid-turn."""
    for provider in dict.fromkeys([settings.llm_provider, *settings.llm_fallback_providers]):
        wire_class(PROVIDERS[provider].wire_api)


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
