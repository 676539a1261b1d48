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


def _quote_tool_result(request) -> Reply:
    [result] = _tool_results(request)
    return Reply(f"Tool said: {result}")


async def test_write_roles_let_a_member_with_the_role_write_and_refuse_one_without() -> None:
    """GITHUB_WRITE_ROLES=Developers: the registry decides from the Discord member's roles
    (the same facts as the admin check), whatever the model asks for."""
    async with FakeGitHub(tokens={TOKEN: "mona-lisa"}) as gh:
        repo = gh.add_repo("mona-lisa", "hello")
        tools = ToolRegistry()
        client = register_github_tools(
            tools,
            Settings(  # type: ignore[call-arg]
                _env_file=None,
                github_token=TOKEN,
                github_api_url=gh.base_url,
                github_write_roles="developers",  # the role is "Developers": case-insensitive
            ),
        )
        assert client is not None
        try:
            async with clara_on_discord(tools=tools) as w:
                dev = w.discord.add_user("devon", global_name="Devon")
                role = w.discord.add_role(w.guild_id, "Developers")  # no permissions at all
                w.discord.add_member(w.guild_id, dev.id, roles=[role.id])
                create = ToolCall(
                    "github_create_issue", {"owner": "mona-lisa", "repo": "hello", "title": "Bug"}
                )

                w.llm.enqueue(Reply("", tool_calls=[create]), _quote_tool_result)
                await w.mention(w.alice, "open an issue called Bug in mona-lisa/hello")
                refused = await w.wait_reply_text(
                    "Tool said: Error: github_create_issue is restricted to server admins and "
                    "members with certain roles, and this user is neither.",
                    timeout=20,
                )
                assert refused is not None and repo.issues == []
                offered = {t["function"]["name"] for t in w.llm.requests[-2].json["tools"]}
                assert "github_create_issue" not in offered  # alice has no such role

                w.llm.enqueue(Reply("", tool_calls=[create]), _quote_tool_result)
                await w.mention(dev, "open an issue called Bug in mona-lisa/hello")
                await w.wait_reply_text(
                    "Tool said: Created issue #1 in mona-lisa/hello: "
                    "https://github.com/mona-lisa/hello/issues/1",
                    timeout=20,
                )
                offered = {t["function"]["name"] for t in w.llm.requests[-2].json["tools"]}
                assert "github_create_issue" in offered
                assert [i["title"] for i in repo.issues] == ["Bug"]
        finally:
            await client.aclose()
