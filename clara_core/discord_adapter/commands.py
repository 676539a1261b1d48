"""Slash commands under ``/clara``: status, a user's default tier, (from
``memory_commands``) what Clara remembers about the caller and forgetting it,
(from ``project_commands``) shared project memory, and (from ``mood_commands``)
Clara's mood in the channel.

Replies are ephemeral (only the caller sees them).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands

from clara_core.daemon import format_uptime

from .mcp_commands import McpCommands
from .mood_commands import MoodCommands
from .proactive_commands import ProactiveCommands
from .say_command import SayCommand
from .voice_commands import VoiceCommands

if TYPE_CHECKING:
    from .runner import ClaraDiscordClient

log = logging.getLogger(__name__)

TierChoice = Literal["high", "mid", "low", "default"]


def build_command_tree(client: ClaraDiscordClient) -> app_commands.CommandTree:
    tree = app_commands.CommandTree(client)
    group = app_commands.Group(name="clara", description="Talk to Clara about Clara")

    @group.command(name="status", description="Uptime, model, tier and queue")
    async def status(interaction: discord.Interaction) -> None:
        s = client.settings
        assert s is not None
        fields = s.provider_fields()
        model = getattr(s, fields.model)
        lines = [
            f"**Clara** — up {format_uptime(time.time() - client.started_at)}",
            f"Model: {s.llm_provider} · `{model}`"
            + (f" (default tier: {s.model_tier})" if s.model_tier else "")
            + (" · auto tier on" if s.auto_tier_selection else ""),
        ]
        if client.preferences is not None:
            mine = await client.preferences.default_tier(str(interaction.user.id))
            lines.append(f"Your tier: {mine or 'server default'}")
        if client.conversation is not None:
            busy = client.conversation.queue.snapshot()
            waiting = sum(max(0, n - 1) for n in busy.values())
            lines.append(f"Queue: {len(busy)} channel(s) busy, {waiting} waiting")
        lines.append(f"Gateway latency: {client.latency * 1000:.0f} ms")
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    @group.command(name="tier", description="Your default model tier (high, mid, low)")
    @app_commands.describe(tier="high, mid or low; 'default' goes back to the server default")
    async def tier(interaction: discord.Interaction, tier: TierChoice | None = None) -> None:
        if client.preferences is None:
            await interaction.response.send_message("Preferences are unavailable.", ephemeral=True)
            return
        user = str(interaction.user.id)
        if tier is None:
            current = await client.preferences.default_tier(user)
            text = f"Your default tier is **{current or 'the server default'}**."
        else:
            await client.preferences.set_default_tier(user, None if tier == "default" else tier)
            text = (
                "Back to the server default tier."
                if tier == "default"
                else f"From now on I'll answer you on the **{tier}** tier (prefixes like `!low` still win)."
            )
        await interaction.response.send_message(text, ephemeral=True)

    # /clara memory and /clara forget (their buttons are routed by the client).
    client.memory_commands.register(group)
    # /clara project create|add|remove|link|unlink|list
    client.project_commands.register(group)
    # /clara mood
    MoodCommands(client).register(group)
    # /clara mcp list|status (everyone), install|uninstall|enable|disable|restart (admins)
    McpCommands(client).register(group)
    ProactiveCommands(client).register(group)
    VoiceCommands(client).register(group)  # /clara join, leave, speech: voice channels
    SayCommand(client).register(group)  # /clara say: the answer as text and a voice message
    tree.add_command(group)
    return tree
