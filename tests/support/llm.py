"""Build Clara's LLM pipeline pointed at the fake LLM server, per provider."""

from __future__ import annotations

from typing import Any

from clara_core.config import Settings, load_settings
from clara_core.llm.retry import RetryPolicy
from clara_core.llm.service import LLMService
from clara_core.pipeline.events import PipelineEvent
from clara_core.pipeline.prompt import PromptBuilder
from clara_core.pipeline.turn import TurnInput, TurnRunner
from tests.fakes.fake_llm import FakeLLM
from tools.registry import ToolContext, ToolRegistry

KEY = "test-key"
PROVIDERS = ("openrouter", "nanogpt", "openai", "anthropic")

# Fast retries for tests: the timing logic itself is unit-tested.
FAST_RETRIES = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05, max_retry_after=5)


def provider_settings(fake: FakeLLM, provider: str) -> dict[str, Any]:
    """Settings fields that point ``provider`` at the fake (as an operator would)."""
    return {
        "openrouter": {
            "openrouter_api_key": KEY,
            "openrouter_base_url": fake.url("/api/v1"),
            "openrouter_site": "https://clara.example",
            "openrouter_title": "Clara",
        },
        "nanogpt": {"nanogpt_api_key": KEY, "nanogpt_base_url": fake.openai_base_url},
        "openai": {
            "custom_openai_api_key": KEY,
            "custom_openai_base_url": fake.openai_base_url,
            "cf_access_client_id": "cf-id",
            "cf_access_client_secret": "cf-secret",
        },
        "anthropic": {"anthropic_api_key": KEY, "anthropic_base_url": fake.anthropic_base_url},
    }[provider]


def settings_for(fake: FakeLLM, provider: str, **overrides: Any) -> Settings:
    values = {"llm_provider": provider, **provider_settings(fake, provider), **overrides}
    return load_settings(env_file=None, **values)


def build_runner(
    settings: Settings, tools: ToolRegistry | None = None, *, policy: RetryPolicy = FAST_RETRIES
) -> tuple[TurnRunner, LLMService]:
    service = LLMService(settings, policy=policy)
    runner = TurnRunner(
        service,
        tools if tools is not None else ToolRegistry(),
        PromptBuilder(persona="You are Clara (test persona)."),
        max_tool_iterations=settings.llm_max_tool_iterations,
        default_tier=settings.model_tier,
        auto_tier=settings.auto_tier_selection,
    )
    return runner, service


def turn(text: str, **kwargs: Any) -> TurnInput:
    return TurnInput(text=text, context=ToolContext(user_id="u1"), **kwargs)


async def collect(runner: TurnRunner, turn_input: TurnInput) -> list[PipelineEvent]:
    return [event async for event in runner.run(turn_input)]
