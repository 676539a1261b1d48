"""Retry timing, capabilities, message conversion, tool-call argument parsing."""

from __future__ import annotations

import random

import pytest

from clara_core.llm.models import DEFAULT, capabilities_for
from clara_core.llm.providers.anthropic_messages import to_anthropic_messages
from clara_core.llm.providers.openai_chat import to_openai_messages
from clara_core.llm.retry import RetryPolicy
from clara_core.llm.types import ImagePart, Message, TextPart, ToolCall


def test_backoff_grows_with_jitter_and_gives_up():
    policy = RetryPolicy(max_retries=3, base_delay=1.0, max_delay=30.0)
    rng = random.Random(7)
    delays = [policy.delay(n, None, rng) for n in (1, 2, 3)]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and 2.0 <= delays[2] <= 4.0
    assert policy.delay(4, None, rng) is None


def test_retry_after_is_honoured_but_not_beyond_reason():
    policy = RetryPolicy(max_retries=3, max_retry_after=60)
    rng = random.Random(1)
    assert 2.5 <= policy.delay(1, 2.5, rng) <= 3.5
    assert policy.delay(1, 600, rng) is None  # a provider that wants 10 minutes is down for us


@pytest.mark.parametrize(
    ("model", "vision"),
    [
        ("claude-sonnet-4-5", True),
        ("anthropic/claude-sonnet-4", True),
        ("gpt-4o-mini", True),
        ("moonshotai/Kimi-K2-Instruct-0905", False),
        ("meta-llama/llama-3.3-70b", False),
    ],
)
def test_capabilities_are_data(model, vision):
    assert capabilities_for(model).vision is vision


def test_unknown_models_get_conservative_defaults():
    assert capabilities_for("my-local-model") == DEFAULT
    assert DEFAULT.vision is False and DEFAULT.tools is True


def test_tool_call_arguments_parse_or_explain():
    assert ToolCall("1", "t", '{"a": 1}').arguments == {"a": 1}
    assert ToolCall("1", "t", "").arguments == {}
    with pytest.raises(ValueError, match="not valid JSON"):
        _ = ToolCall("1", "t", '{"a": ').arguments
    with pytest.raises(ValueError, match="JSON object"):
        _ = ToolCall("1", "t", "[1, 2]").arguments


def _conversation() -> list[Message]:
    return [
        Message(role="user", content=[TextPart("look"), ImagePart("image/png", data=b"\x89PNG")]),
        Message(
            role="assistant",
            content=[TextPart("checking")],
            tool_calls=[ToolCall("c1", "a", '{"x": 1}'), ToolCall("c2", "b", "{bad")],
        ),
        Message.tool_result("c1", "one"),
        Message.tool_result("c2", "error: bad json", is_error=True),
        Message.text("user", "and?"),
    ]


def test_anthropic_conversion_groups_tool_results_in_one_user_turn():
    out = to_anthropic_messages(_conversation())
    assert [m["role"] for m in out] == ["user", "assistant", "user"]
    assert out[0]["content"][1]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": "iVBORw==",
    }
    uses = [b for b in out[1]["content"] if b["type"] == "tool_use"]
    assert [u["input"] for u in uses] == [{"x": 1}, {}]  # broken JSON replays as {}
    kinds = [b["type"] for b in out[2]["content"]]
    assert kinds == ["tool_result", "tool_result", "text"]
    assert out[2]["content"][1]["is_error"] is True


def test_openai_conversion_keeps_raw_arguments_and_images():
    out = to_openai_messages("be nice", _conversation())
    assert out[0] == {"role": "system", "content": "be nice"}
    assert out[1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert out[2]["tool_calls"][1]["function"]["arguments"] == "{bad"
    assert [m["role"] for m in out[3:]] == ["tool", "tool", "user"]
