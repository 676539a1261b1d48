"""``/clara mcp …``: MCP plug-in servers for people who'd rather click than ask.

``list`` and ``status`` are for everyone.  ``install``, ``uninstall``,
``enable``, ``disable`` and ``restart`` are for admins, decided here from the
caller's Discord facts by the same ``is_admin`` the conversation uses (hiding
the commands would not be enough: anyone can send an interaction), and then
run as the ``mcp_*`` tools through the tool registry, whose own admin check
applies too.  Installs take tens of seconds, so changes are deferred at once
and the answer is edited with each progress line and then the result.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands

from clara_core.llm.types import ToolCall
from tools.registry import PROGRESS_KEY, ToolContext, ToolError, ToolRegistry

from .conversation import is_admin

if TYPE_CHECKING:
    from .runner import ClaraDiscordClient

log = logging.getLogger(__name__)

NOT_ADMIN = (
    "Only server admins can change MCP servers (Administrator or Manage Channels "
    "permission, or the Clara-Admin role). `/clara mcp list` and `/clara mcp status` "
    "are open to everyone."
)
NOT_READY = "MCP servers aren't available yet (Clara is still starting). Try again in a minute."
#: Discord's limit for a message's content.
MAX_CONTENT = 2000

SourceChoice = Literal["npm", "pypi", "github", "docker", "local", "smithery"]


def _fit(text: str) -> str:
    return text if len(text) <= MAX_CONTENT else text[: MAX_CONTENT - 2] + " …"


class _ProgressEditor:
    """Edits the deferred answer with the newest progress line, one edit at a time
    (installers report from the event loop, faster than Discord wants edits)."""

    def __init__(self, interaction: discord.Interaction, heading: str) -> None:
        self.interaction = interaction
        self.heading = heading
        self._latest: str | None = None
        self._task: asyncio.Task[None] | None = None

    def __call__(self, line: str) -> None:
        self._latest = line
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush(), name="mcp-progress")

    async def _flush(self) -> None:
        shown: str | None = None
        while self._latest != shown:
            shown = self._latest
            try:
                await self.interaction.edit_original_response(
                    content=_fit(f"{self.heading}\n-# ⚙️ {shown}…")
                )
            except discord.HTTPException as exc:  # the result edit still comes
                log.warning("/clara mcp progress edit failed: %s", exc)
                return

    async def close(self) -> None:
        """Stop before the result is written, so no late progress line covers it."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class McpCommands:
    def __init__(self, client: ClaraDiscordClient) -> None:
        self.client = client

    def register(self, group: app_commands.Group) -> None:
        mcp = app_commands.Group(
            name="mcp", description="MCP plug-in servers (changes: admins only)", parent=group
        )

        @mcp.command(name="list", description="Installed MCP servers, their state and tools")
        async def list_(interaction: discord.Interaction) -> None:
            await self._read(interaction, None)

        @mcp.command(name="status", description="How one MCP server (or all) is doing")
        @app_commands.describe(name="The server's name; all servers when left out")
        async def status(interaction: discord.Interaction, name: str | None = None) -> None:
            await self._read(interaction, name)

        @mcp.command(name="install", description="Install an MCP server (admins)")
        @app_commands.describe(
            source="Where it comes from",
            package="npm/PyPI package, repository URL, Docker image, path on Clara's host, "
            "or Smithery name",
            name="The server's name, the prefix of its tools (derived from the package if empty)",
        )
        async def install(
            interaction: discord.Interaction,
            source: SourceChoice,
            package: str,
            name: str | None = None,
        ) -> None:
            args: dict[str, Any] = {"source": source, "package": package}
            if name:
                args["name"] = name
            await self._change(interaction, "mcp_install", args, f"Installing `{package}`")

        for verb, doing, description in (
            ("uninstall", "Uninstalling", "Remove an MCP server and its tools (admins)"),
            ("enable", "Starting", "Start an installed MCP server (admins)"),
            ("disable", "Stopping", "Stop an MCP server without removing it (admins)"),
            ("restart", "Restarting", "Restart an MCP server (admins)"),
        ):
            self._register_named(mcp, verb, doing, description)

    def _register_named(
        self, mcp: app_commands.Group, verb: str, doing: str, description: str
    ) -> None:
        @mcp.command(name=verb, description=description)
        @app_commands.describe(name="The server's name")
        async def named(interaction: discord.Interaction, name: str) -> None:
            await self._change(interaction, f"mcp_{verb}", {"name": name}, f"{doing} `{name}`")

    def _registry(self) -> ToolRegistry | None:
        conversation = self.client.conversation
        return conversation.runner.tools if conversation is not None else None

    def _context(self, interaction: discord.Interaction) -> ToolContext:
        return ToolContext(
            user_id=str(interaction.user.id),
            channel_id=str(interaction.channel_id) if interaction.channel_id else None,
            is_admin=is_admin(interaction.user),
            platform="discord",
        )

    async def _read(self, interaction: discord.Interaction, name: str | None) -> None:
        registry = self._registry()
        if registry is None or registry.get("mcp_list") is None:
            await interaction.response.send_message(NOT_READY, ephemeral=True)
            return
        # Loaded already (it registered mcp_list): this import costs nothing.
        from tools.mcp_tools import McpTools

        tools = McpTools.of(registry)
        if tools is None:
            await interaction.response.send_message(NOT_READY, ephemeral=True)
            return
        ctx = self._context(interaction)
        try:
            text = await tools.status({"name": name} if name else {}, ctx)
        except ToolError as exc:
            text = str(exc)[:1].upper() + str(exc)[1:]
        await interaction.response.send_message(_fit(text), ephemeral=True)

    async def _change(
        self, interaction: discord.Interaction, tool: str, args: dict[str, Any], heading: str
    ) -> None:
        ctx = self._context(interaction)
        if not ctx.is_admin:
            log.warning("user %s tried /clara mcp %s", ctx.user_id, tool.removeprefix("mcp_"))
            await interaction.response.send_message(NOT_ADMIN, ephemeral=True)
            return
        registry = self._registry()
        if registry is None or registry.get(tool) is None:
            await interaction.response.send_message(NOT_READY, ephemeral=True)
            return
        # Discord drops an interaction unanswered after 3 s; an install takes longer.
        await interaction.response.defer(ephemeral=True, thinking=True)
        progress = _ProgressEditor(interaction, heading)
        ctx.extras[PROGRESS_KEY] = progress
        call = ToolCall(f"slash-{uuid.uuid4().hex[:12]}", tool, json.dumps(args))
        try:
            # The registry checks again (admin, arguments) and bounds the time.
            result = await registry.call(call, ctx)
        finally:
            await progress.close()
        text = result.content
        if result.is_error:
            text = "❌ " + text.removeprefix("Error: ")
        await interaction.edit_original_response(content=_fit(text))
