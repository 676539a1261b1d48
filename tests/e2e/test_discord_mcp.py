"""MCP plug-in servers through Discord: fake Discord + scripted fake LLM, the real
discord.py client, the real MCP supervisor and mcp_* tools on a real PostgreSQL.

- an admin's "@Clara install the MCP server …" -> the model calls mcp_install
  (a local-path server: fast and offline) -> the next message offers
  ``local__echo``, and "use local__echo" puts the echo in the reply;
- a non-admin never sees mcp_install, and a direct call anyway is refused by the
  registry: an error result, nothing installed;
- ``/clara mcp``: list/status for everyone; install (deferred, progress edited
  in) and the other changes for admins only, a plain refusal for anyone else.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clara_core.config import Settings
from clara_core.discord_adapter.mcp_commands import NOT_ADMIN
from clara_core.mcp import Supervisor, start_mcp
from storage.mcp_servers import McpServerStore
from tests.fakes.fake_discord import FakeUser
from tests.fakes.fake_discord.models import MessageFlags
from tests.fakes.fake_llm import Reply, ToolCall
from tests.mcp.conftest import LOCAL_SERVER
from tests.support.discord_app import World, clara_on_discord
from tools.registry import ToolRegistry

pytestmark = pytest.mark.storage

LOADING = int(MessageFlags.LOADING)
#: Discord's MANAGE_CHANNELS permission bit.
MANAGE_CHANNELS = 1 << 4


@pytest.fixture
async def mcp(
    engine: AsyncEngine, tmp_path: Path
) -> AsyncIterator[tuple[ToolRegistry, Supervisor]]:
    registry = ToolRegistry()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, mcp_servers_dir=tmp_path / "servers", mcp_connect_timeout=20
    )
    supervisor = await start_mcp(registry, engine, settings)
    try:
        yield registry, supervisor
    finally:
        await supervisor.aclose()


def _admin(w: World, name: str, *, role: str = "Clara-Admin", permissions: int = 0) -> FakeUser:
    """A member made admin by Discord facts only: a role name or a permission."""
    user = w.discord.add_user(name, global_name=name.title())
    granted = w.discord.add_role(w.guild_id, role, permissions=permissions)
    w.discord.add_member(w.guild_id, user.id, roles=[granted.id])
    return user


def _tool_names(request: Any) -> set[str]:
    return {t["function"]["name"] for t in request.tools}


def _tool_results(request: Any) -> list[str]:
    return [str(m.get("content")) for m in request.messages if m.get("role") == "tool"]


def _quote_result(request: Any) -> Reply:
    """The model's step after a tool call: it passes the tool's result on verbatim."""
    [result] = _tool_results(request)
    return Reply(f"Tool said: {result}")


async def _reply_with(w: World, needle: str, timeout: float = 30):
    await w.discord.wait_until(
        lambda: any(needle in m.content for m in w.replies()), timeout=timeout, what=needle
    )
    return next(m for m in w.replies() if needle in m.content)


async def test_admin_installs_by_asking_and_the_next_message_uses_it(
    mcp: tuple[ToolRegistry, Supervisor], engine: AsyncEngine
) -> None:
    registry, supervisor = mcp
    async with clara_on_discord(tools=registry) as w:
        carol = _admin(w, "carol")
        w.llm.enqueue(
            Reply(
                "Installing it.",
                tool_calls=[
                    ToolCall(
                        "mcp_install",
                        {"source": "local", "package": str(LOCAL_SERVER), "name": "local"},
                    )
                ],
            ),
            _quote_result,
        )
        await w.mention(carol, f"install the MCP server at {LOCAL_SERVER} as local")
        reply = await _reply_with(w, "Tool said:")
        assert "MCP server 'local' installed and running" in reply.content
        assert "local__echo" in reply.content
        # The status line showed the install's own steps (starting the server takes
        # a second, so that one is on screen for at least one edit).
        history = w.discord.message_history(reply.id)
        assert any("-# ⚙️ starting local…" in h for h in history), history
        # The admin was offered the management tools; nothing offered the new one yet.
        install_turn = w.llm.requests[-2]
        assert "mcp_install" in _tool_names(install_turn)
        assert "local__echo" not in _tool_names(install_turn)
        row = await McpServerStore(engine).get("local")
        assert row is not None and row["installed_by"] == str(carol.id)

        w.llm.enqueue(
            Reply("", tool_calls=[ToolCall("local__echo", {"text": "Hello World"})]),
            _quote_result,
        )
        await w.mention(carol, "use local__echo to echo Hello World")
        await _reply_with(w, "Tool said: echo: Hello World")
        # Offered from the very next message, with the server's own JSON schema.
        echo_turn = w.llm.requests[-2]
        [echo] = [t for t in echo_turn.tools if t["function"]["name"] == "local__echo"]
        assert echo["function"]["parameters"]["required"] == ["text"]

        # Its tools are for everyone (only the management tools are admin-only).
        w.llm.enqueue(Reply("Everyone may echo."))
        await w.mention(w.bob, "what can you do?")
        await w.wait_reply_text("Everyone may echo.")
        bob_turn = w.llm.requests[-1]
        assert "local__echo" in _tool_names(bob_turn)
        assert "mcp_install" not in _tool_names(bob_turn)
        assert set(supervisor.runners) == {"local"}


async def test_a_non_admins_install_is_refused_by_the_registry(
    mcp: tuple[ToolRegistry, Supervisor], engine: AsyncEngine
) -> None:
    registry, supervisor = mcp
    async with clara_on_discord(tools=registry) as w:
        # Even a role *named* like a permission is no permission: bob has none.
        w.llm.enqueue(
            Reply(
                "",
                tool_calls=[
                    ToolCall("mcp_install", {"source": "local", "package": str(LOCAL_SERVER)})
                ],
            ),
            _quote_result,
        )
        await w.mention(w.bob, f"install the MCP server at {LOCAL_SERVER}")
        reply = await _reply_with(w, "Tool said:")
        first = w.llm.requests[-2]
        assert not {n for n in _tool_names(first) if n.startswith("mcp_")}
        [result] = _tool_results(w.llm.requests[-1])
        assert "restricted to server admins" in result and reply.content.endswith(result)
        assert supervisor.runners == {}
        assert await McpServerStore(engine).list() == []
        assert registry.get("local__echo") is None


# ---- /clara mcp ----------------------------------------------------------------


async def _slash(w: World, user: FakeUser, sub: str, **options: str) -> tuple[str, list[str]]:
    """Run ``/clara mcp <sub>`` as ``user``: the final answer and every revision."""
    typed = [{"type": 3, "name": k, "value": v} for k, v in options.items()]
    data = [{"type": 2, "name": "mcp", "options": [{"type": 1, "name": sub, "options": typed}]}]
    inter = await w.discord.send_slash_command(w.channel_id, user.id, "clara", data)

    def final() -> bool:
        if inter.original_message_id is None:
            return False
        message = w.discord.get_message(inter.original_message_id)
        # Progress lines end in "…"; the result does not.
        return not message.flags & LOADING and not message.content.endswith("…")

    await w.discord.wait_until(final, timeout=60, what=f"/clara mcp {sub}")
    assert inter.original_message_id is not None
    message = w.discord.get_message(inter.original_message_id)
    assert message.flags & MessageFlags.EPHEMERAL
    return message.content, w.discord.message_history(message.id)


async def test_slash_mcp_list_for_everyone_changes_for_admins(
    mcp: tuple[ToolRegistry, Supervisor], engine: AsyncEngine
) -> None:
    registry, supervisor = mcp
    async with clara_on_discord(tools=registry) as w:
        dana = _admin(w, "dana", role="mods", permissions=MANAGE_CHANNELS)
        text, _ = await _slash(w, w.bob, "list")
        assert text.startswith("No MCP servers are installed")

        text, _ = await _slash(w, w.bob, "install", source="local", package=str(LOCAL_SERVER))
        assert text == NOT_ADMIN
        assert supervisor.runners == {} and await McpServerStore(engine).list() == []

        text, history = await _slash(
            w, dana, "install", source="local", package=str(LOCAL_SERVER), name="local"
        )
        assert "MCP server 'local' installed and running" in text and "local__echo" in text
        # Deferred at once, then the installer's steps, then the result.
        assert any("-# ⚙️ using " in h for h in history), history
        assert any("-# ⚙️ starting local…" in h for h in history), history
        row = await McpServerStore(engine).get("local")
        assert row is not None and row["installed_by"] == str(dana.id)

        text, _ = await _slash(w, w.bob, "list")
        assert "- local (local: " in text and "running" in text and "local__echo" in text
        text, _ = await _slash(w, w.bob, "status", name="local")
        assert "restarts: 0" in text
        text, _ = await _slash(w, w.bob, "status", name="nope")
        assert text.startswith("There is no MCP server named 'nope'")

        for verb in ("uninstall", "disable", "restart", "enable"):
            text, _ = await _slash(w, w.bob, verb, name="local")
            assert text == NOT_ADMIN, verb
        assert supervisor.runners["local"].status()["state"] == "running"

        text, _ = await _slash(w, dana, "disable", name="local")
        assert "disabled and stopped" in text
        assert (await McpServerStore(engine).get("local"))["enabled"] is False  # type: ignore[index]
        text, _ = await _slash(w, dana, "enable", name="nope")
        assert text.startswith("❌ there is no MCP server named 'nope'")
        text, _ = await _slash(w, dana, "uninstall", name="local")
        assert "uninstalled" in text
        assert supervisor.runners == {} and registry.get("local__echo") is None


@pytest.mark.slow
async def test_admin_installs_server_everything_from_npm_by_asking(
    mcp: tuple[ToolRegistry, Supervisor],
) -> None:
    if shutil.which("npm") is None:
        pytest.skip("needs npm")
    registry, _ = mcp
    async with clara_on_discord(tools=registry) as w:
        carol = _admin(w, "carol")
        w.llm.enqueue(
            Reply(
                "",
                tool_calls=[
                    ToolCall(
                        "mcp_install",
                        {"source": "npm", "package": "@modelcontextprotocol/server-everything"},
                    )
                ],
            ),
            _quote_result,
        )
        await w.mention(carol, "install the MCP server @modelcontextprotocol/server-everything")
        reply = await _reply_with(w, "Tool said:", timeout=180)
        assert "MCP server 'everything' installed and running" in reply.content, reply.content
        w.llm.enqueue(
            Reply("", tool_calls=[ToolCall("everything__echo", {"message": "Hello World"})]),
            _quote_result,
        )
        await w.mention(carol, "use everything__echo to echo Hello World")
        await _reply_with(w, "Hello World", timeout=30)
        await asyncio.sleep(0)
