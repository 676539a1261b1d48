"""LLM provider settings, named exactly as the monolith spec names them.

Which fields belong to which provider is data (``PROVIDERS``), so code that
needs "the API key of the configured provider" looks it up instead of
branching on the provider's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from ._types import CommaList
from .base import ClaraSettingsBase

ProviderName = Literal["openrouter", "nanogpt", "openai", "anthropic"]
Tier = Literal["high", "mid", "low"]


@dataclass(frozen=True)
class ProviderFields:
    """Which settings fields configure one provider."""

    name: str
    wire_api: Literal["openai", "anthropic"]
    api_key: str
    model: str
    base_url: str
    tier_prefix: str  # e.g. "openrouter_model" -> openrouter_model_high/_mid/_low
    # HTTP header -> settings field, sent when that field is set
    headers: tuple[tuple[str, str], ...] = ()


PROVIDERS: dict[str, ProviderFields] = {
    "openrouter": ProviderFields(
        name="openrouter",
        wire_api="openai",
        api_key="openrouter_api_key",
        model="openrouter_model",
        base_url="openrouter_base_url",
        tier_prefix="openrouter_model",
        headers=(("HTTP-Referer", "openrouter_site"), ("X-Title", "openrouter_title")),
    ),
    "nanogpt": ProviderFields(
        name="nanogpt",
        wire_api="openai",
        api_key="nanogpt_api_key",
        model="nanogpt_model",
        base_url="nanogpt_base_url",
        tier_prefix="nanogpt_model",
    ),
    "openai": ProviderFields(
        name="openai",
        wire_api="openai",
        api_key="custom_openai_api_key",
        model="custom_openai_model",
        base_url="custom_openai_base_url",
        tier_prefix="custom_openai_model",
        headers=(
            ("CF-Access-Client-Id", "cf_access_client_id"),
            ("CF-Access-Client-Secret", "cf_access_client_secret"),
        ),
    ),
    "anthropic": ProviderFields(
        name="anthropic",
        wire_api="anthropic",
        api_key="anthropic_api_key",
        model="anthropic_model",
        base_url="anthropic_base_url",
        tier_prefix="anthropic_model",
    ),
}


class LLMSettings(ClaraSettingsBase):
    llm_provider: ProviderName = Field(
        "openrouter",
        description="Chat provider: openrouter, nanogpt, openai (any OpenAI-compatible endpoint) or anthropic.",
    )
    llm_fallback_providers: CommaList = Field(
        default_factory=list,
        description="Comma list of further providers to try, in order, when the main one keeps failing.",
    )

    openrouter_api_key: SecretStr | None = Field(None, description="OpenRouter API key.")
    openrouter_base_url: str = Field(
        "https://openrouter.ai/api/v1", description="OpenRouter API base URL."
    )
    openrouter_model: str = Field(
        "anthropic/claude-sonnet-5.5", description="OpenRouter chat model."
    )
    openrouter_model_high: str | None = Field(None, description="OpenRouter model for !high.")
    openrouter_model_mid: str | None = Field(None, description="OpenRouter model for !mid.")
    openrouter_model_low: str | None = Field(None, description="OpenRouter model for !low.")
    openrouter_site: str | None = Field(
        None, description="Optional HTTP-Referer header sent to OpenRouter."
    )
    openrouter_title: str | None = Field(
        None, description="Optional X-Title header sent to OpenRouter."
    )

    nanogpt_api_key: SecretStr | None = Field(None, description="NanoGPT API key.")
    nanogpt_base_url: str = Field(
        "https://nano-gpt.com/api/v1", description="NanoGPT API base URL."
    )
    nanogpt_model: str = Field(
        "moonshotai/Kimi-K2-Instruct-0905", description="NanoGPT chat model."
    )
    nanogpt_model_high: str | None = Field(None, description="NanoGPT model for !high.")
    nanogpt_model_mid: str | None = Field(None, description="NanoGPT model for !mid.")
    nanogpt_model_low: str | None = Field(None, description="NanoGPT model for !low.")

    custom_openai_api_key: SecretStr | None = Field(
        None, description="API key for the custom OpenAI-compatible endpoint (LLM_PROVIDER=openai)."
    )
    custom_openai_base_url: str = Field(
        "https://api.openai.com/v1", description="Base URL of the OpenAI-compatible endpoint."
    )
    custom_openai_model: str = Field("gpt-4o", description="Chat model on the custom endpoint.")
    custom_openai_model_high: str | None = Field(
        None, description="Custom endpoint model for !high."
    )
    custom_openai_model_mid: str | None = Field(None, description="Custom endpoint model for !mid.")
    custom_openai_model_low: str | None = Field(None, description="Custom endpoint model for !low.")
    cf_access_client_id: str | None = Field(
        None,
        description="Cloudflare Access service-token client id (endpoints behind cloudflared).",
    )
    cf_access_client_secret: SecretStr | None = Field(
        None, description="Cloudflare Access service-token client secret."
    )

    anthropic_api_key: SecretStr | None = Field(None, description="Anthropic API key.")
    anthropic_base_url: str | None = Field(
        None, description="Anthropic base URL override, e.g. for a proxy such as clewdr."
    )
    anthropic_model: str = Field("claude-sonnet-5-5", description="Anthropic chat model.")
    anthropic_model_high: str | None = Field(None, description="Anthropic model for !high.")
    anthropic_model_mid: str | None = Field(None, description="Anthropic model for !mid.")
    anthropic_model_low: str | None = Field(None, description="Anthropic model for !low.")

    model_tier: Tier | None = Field(
        None,
        description="Default tier (high, mid or low) when a message names none; unset: the base model.",
    )
    auto_tier_selection: bool = Field(
        False, description="Let the low model pick the tier from the message and recent context."
    )
    tool_api_key: SecretStr | None = Field(
        None, description="API key override for tool-calling requests."
    )
    tool_base_url: str | None = Field(
        None, description="Base URL override for tool-calling requests."
    )
    llm_max_tool_iterations: int = Field(
        10, ge=1, le=50, description="Most model/tool round trips in one reply."
    )
    llm_max_retries: int = Field(
        3,
        ge=0,
        le=10,
        description="Retries of a failing model call (429, 5xx, timeouts) before falling back.",
    )
    llm_timeout: float = Field(
        120, gt=0, description="Seconds a model call may stay silent before it counts as failed."
    )
    llm_max_tokens: int = Field(
        4096, ge=16, description="Most tokens the model may write in one call."
    )
    openai_api_key: SecretStr | None = Field(
        None,
        description="OpenAI API key, used for OpenAI embeddings when memory is configured to use them.",
    )

    @field_validator("model_tier", mode="before")
    @classmethod
    def _lower_tier(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("llm_provider", mode="before")
    @classmethod
    def _lower_provider(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("llm_fallback_providers")
    @classmethod
    def _known_fallbacks(cls, v: list[str]) -> list[str]:
        names = [p.lower() for p in v]
        unknown = [p for p in names if p not in PROVIDERS]
        if unknown:
            raise ValueError(
                f"unknown provider(s) {', '.join(unknown)}; choose from {', '.join(PROVIDERS)}"
            )
        return names

    def provider_fields(self, name: str | None = None) -> ProviderFields:
        return PROVIDERS[name or self.llm_provider]

    def provider_api_key(self, name: str | None = None) -> SecretStr | None:
        return getattr(self, self.provider_fields(name).api_key)
