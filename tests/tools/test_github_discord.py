"""GitHub through Discord: "@Clara who am I on GitHub" runs github_get_me against
the fake GitHub (real discord.py client, fake Discord, scripted fake LLM)."""

from __future__ import annotations

import re

import pytest

from clara_core.config import Settings
from tests.fakes.fake_github import FakeGitHub
from tests.fakes.fake_llm import Reply, ToolCall
from tests.support.discord_app import clara_on_discord
from tools.github import register_github_tools
from tools.registry import ToolRegistry

pytestmark = pytest.mark.slow

TOKEN = "ghp_discord_token"


def _tool_results(request) -> list[str]:
    return [str(m.get("content")) for m in request.messages if m.get("role") == "tool"]


def _answer_from_tool_result(request) -> Reply:
    """The model's second step: it reads the login out of the tool result, so the
    reply carries what GitHub said, not a scripted constant."""
    [result] = _tool_results(request)
    login = re.search(r"Authenticated GitHub user: (\S+)", result)
    return Reply(f"On GitHub you are {login.group(1) if login else 'unknown'}.")


async def test_who_am_i_on_github_calls_github_get_me() -> None:
    async with FakeGitHub(tokens={TOKEN: "mona-lisa"}) as gh:
        tools = ToolRegistry()
        client = register_github_tools(
            tools,
            Settings(_env_file=None, github_token=TOKEN, github_api_url=gh.base_url),  # type: ignore[call-arg]
        )
        assert client is not None
        try:
            async with clara_on_discord(tools=tools) as w:
                w.llm.enqueue(
                    Reply("", tool_calls=[ToolCall("github_get_me", {})]),
                    _answer_from_tool_result,
                )
                await w.mention(w.alice, "who am I on GitHub?")
                await w.wait_reply_text("On GitHub you are mona-lisa.", timeout=20)
                # The model was offered the GitHub tools and GitHub was really asked.
                offered = {t["function"]["name"] for t in w.llm.requests[0].json["tools"]}
                assert "github_get_me" in offered
                assert "github_create_issue" not in offered  # alice is no admin
                assert [r.path for r in gh.requests] == ["/user"]
                [result] = _tool_results(w.llm.requests[-1])
                assert result.startswith("Authenticated GitHub user: mona-lisa")
        finally:
            await client.aclose()
