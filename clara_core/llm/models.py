"""What a model can do, as data: vision, tools, context window, output limit,
which sampling parameters it takes, and whether it follows a JSON schema.

Rules are matched in order against the model id (case-insensitive globs), so
``anthropic/claude-sonnet-4`` on OpenRouter and ``claude-sonnet-4-5`` on
Anthropic share one rule.  Code asks ``capabilities_for(model).vision``; it
never branches on provider or model names.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

#: Every sampling parameter Clara knows how to send.
ALL_SAMPLING: frozenset[str] = frozenset({"temperature"})


@dataclass(frozen=True)
class ModelCapabilities:
    vision: bool = False
    tools: bool = True
    context_window: int = 32_000
    max_output_tokens: int = 4_096
    #: Sampling parameters the model accepts.  What is sent is this set intersected
    #: with what the wire accepts (``ChatProvider.sampling_params``); the rest is
    #: dropped, because a provider that rejects a parameter fails the whole call.
    sampling_params: frozenset[str] = ALL_SAMPLING
    #: Follows a JSON schema through its wire's structured output (OpenAI
    #: ``response_format`` json_schema, Anthropic forced tool use).  Off for models
    #: not known to: many OpenAI-compatible servers reject ``response_format``.
    structured_output: bool = False


_CLAUDE = ModelCapabilities(
    vision=True, context_window=200_000, max_output_tokens=8_192, structured_output=True
)
_GPT4O = ModelCapabilities(
    vision=True, context_window=128_000, max_output_tokens=16_384, structured_output=True
)
_GPT41 = ModelCapabilities(
    vision=True, context_window=1_000_000, max_output_tokens=32_768, structured_output=True
)
# Reasoning models refuse ``temperature`` (only the default is allowed).
_GPT5 = ModelCapabilities(
    vision=True,
    context_window=400_000,
    max_output_tokens=32_768,
    sampling_params=frozenset(),
    structured_output=True,
)
_GEMINI = ModelCapabilities(
    vision=True, context_window=1_000_000, max_output_tokens=8_192, structured_output=True
)
_KIMI = ModelCapabilities(vision=False, context_window=128_000, max_output_tokens=8_192)
_OPEN_TEXT = ModelCapabilities(vision=False, context_window=128_000, max_output_tokens=8_192)

RULES: list[tuple[str, ModelCapabilities]] = [
    ("*claude*", _CLAUDE),
    ("*gpt-4o*", _GPT4O),
    ("*gpt-4.1*", _GPT41),
    ("*gpt-5*", _GPT5),
    # OpenAI's o-series, bare ("o3-mini") or behind a router prefix ("openai/o3"):
    # "*o3*" would also catch unrelated names that merely contain "o3".
    ("o3*", _GPT5),
    ("*/o3*", _GPT5),
    ("o4-mini*", _GPT5),
    ("*/o4-mini*", _GPT5),
    ("*gemini*", _GEMINI),
    ("*kimi*", _KIMI),
    ("*qwen*vl*", ModelCapabilities(vision=True, context_window=128_000)),
    ("*llava*", ModelCapabilities(vision=True, tools=False, context_window=32_000)),
    ("*llama-4*", ModelCapabilities(vision=True, context_window=128_000, max_output_tokens=8_192)),
    ("*llama*", _OPEN_TEXT),
    ("*deepseek*", _OPEN_TEXT),
    ("*qwen*", _OPEN_TEXT),
    ("*mistral*", _OPEN_TEXT),
    ("*glm*", _OPEN_TEXT),
]

DEFAULT = ModelCapabilities()


def capabilities_for(model: str) -> ModelCapabilities:
    name = model.lower()
    for pattern, caps in RULES:
        if fnmatch.fnmatchcase(name, pattern):
            return caps
    return DEFAULT
