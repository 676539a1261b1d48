"""`--console` on the low tier: the low model answers, tool steps go to the base model."""

from __future__ import annotations

import pytest

from tests.fakes.fake_llm import FakeLLM, Reply, ToolCall
from tests.support.clara_process import clara_env
from tests.support.console import console_session

pytestmark = pytest.mark.slow


async def test_console_low_tier_answers_with_the_low_model(tmp_path):
    async with FakeLLM(api_keys={"k"}) as fake:
        env = clara_env(
            tmp_path,
            LLM_PROVIDER="openai",
            CUSTOM_OPENAI_API_KEY="k",
            CUSTOM_OPENAI_BASE_URL=fake.openai_base_url,
            CUSTOM_OPENAI_MODEL="base-model",
            CUSTOM_OPENAI_MODEL_LOW="cheap-model",
        )
        async with console_session(env, tmp_path) as term:
            fake.enqueue(Reply("Hi there."))
            await term.type("!low hi")
            await term.expect("clara> Hi there.")
            assert "[low tier, asked: cheap-model]" in term.output
            assert [r.model for r in fake.requests] == ["cheap-model"]

            fake.enqueue(
                Reply(tool_calls=[ToolCall("get_current_time", {})]),
                Reply(tool_calls=[ToolCall("get_current_time", {})]),
                Reply("Time checked."),
            )
            await term.type("!fast what time is it?")
            await term.expect("Time checked.")
            # Only the conversation's own calls: Cortex's fact extraction runs after the
            # turn (on the low tier too) and may or may not have started by now.
            turn_calls = [r for r in fake.requests if "long-term memory" not in str(r.messages)]
            assert [r.model for r in turn_calls[1:]] == [
                "cheap-model",
                "base-model",
                "cheap-model",
            ]
            assert "get_current_time done" in term.output


async def test_console_low_tier_with_a_tool_endpoint_still_answers_with_the_low_model(tmp_path):
    """TOOL_BASE_URL / TOOL_API_KEY set (the spec's optional overrides): "!low"
    must still answer with the low model, not silently with the base model."""
    async with FakeLLM(api_keys={"k"}) as chat, FakeLLM(api_keys={"tk"}) as tools:
        env = clara_env(
            tmp_path,
            LLM_PROVIDER="openai",
            CUSTOM_OPENAI_API_KEY="k",
            CUSTOM_OPENAI_BASE_URL=chat.openai_base_url,
            CUSTOM_OPENAI_MODEL="base-model",
            CUSTOM_OPENAI_MODEL_LOW="cheap-model",
            TOOL_API_KEY="tk",
            TOOL_BASE_URL=tools.openai_base_url,
        )
        async with console_session(env, tmp_path) as term:
            tools.enqueue(Reply("Hi there."))
            await term.type("!low hi")
            await term.expect("clara> Hi there.")
            assert "[low tier, asked: cheap-model]" in term.output
            turn_calls = [r for r in tools.requests if "long-term memory" not in str(r.messages)]
            assert [r.model for r in turn_calls] == ["cheap-model"]
            # Every request that offers tools went to the tool endpoint.
            assert not any(r.tools for r in chat.requests)
