"""``/clara join``, ``/clara leave`` and ``/clara speech``: Clara in voice channels.

``join`` connects to the caller's voice channel (that can take a few seconds,
so the answer is deferred first) and links it to the text channel the command
came from: Clara's replies there are read aloud as they stream
(``voice_channels``).  ``speech`` is the toggle: for yourself, or (admins) for
the whole server; nobody chose: she speaks (she was asked to join).  The
choices are stored in PostgreSQL; while it is unreachable a toggle still
applies until the next restart, and the answer says so.  Answers are ephemeral.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands

from clara_core.config import load_settings

from .conversation import is_admin
from .voice_channels import VoiceChannels

if TYPE_CHECKING:
    from .runner import ClaraDiscordClient

log = logging.getLogger(__name__)

IN_SERVERS = "Voice channels are in servers: run this in a server where you are in a voice channel."
#: Label of the cached speech choice in /clara forget's report.
FORGET_LABEL = "Voice speech choice"
NOT_SAVED = (
    "\n⚠️ I couldn't save this: the database is unreachable right now, so it only lasts "
    "until I restart. Run the same command again later to keep it."
)


class VoiceCommands:
    def __init__(self, client: ClaraDiscordClient) -> None:
        self.client = client
        conversation = client.conversation
        # One voice pool for listening and speaking (VOICE_WORKERS threads in all).
        self.channels = VoiceChannels(
            client,
            client.settings or load_settings(env_file=None),
            pool=conversation.voice.pool if conversation is not None else None,
        )
        if conversation is not None:
            conversation.reply_observers.append(self.channels)
        # /clara forget clears the cached choice too (the stored one goes with the
        # user's preferences row).
        client.user_data_stores.setdefault(FORGET_LABEL, self.channels.choices)

    def register(self, group: app_commands.Group) -> None:
        channels = self.channels

        @group.command(name="join", description="Join your voice channel and read replies aloud")
        async def join(interaction: discord.Interaction) -> None:
            member = interaction.user
            if interaction.guild is None or not isinstance(member, discord.Member):
                await interaction.response.send_message(IN_SERVERS, ephemeral=True)
                return
            problem = channels.unavailable()
            if problem is not None:
                await interaction.response.send_message(problem, ephemeral=True)
                return
            # Connecting takes a round trip to the voice server: answer within Discord's 3 s.
            await interaction.response.defer(ephemeral=True, thinking=True)
            assert interaction.channel_id is not None
            try:
                text = await channels.join(member, interaction.channel_id)
            except Exception:  # the deferred answer must not stay "thinking" forever
                log.exception("/clara join failed")
                text = "Something went wrong joining the voice channel; try again in a minute."
            await interaction.edit_original_response(content=text)

        @group.command(name="leave", description="Leave the voice channel")
        async def leave(interaction: discord.Interaction) -> None:
            if interaction.guild is None:
                await interaction.response.send_message(IN_SERVERS, ephemeral=True)
                return
            left = await channels.leave(interaction.guild.id)
            await interaction.response.send_message(
                "👋 Left the voice channel." if left else "I'm not in a voice channel here.",
                ephemeral=True,
            )

        @group.command(name="speech", description="Whether Clara reads her replies aloud in voice")
        @app_commands.describe(
            setting="on, off, or default (back to the server's choice)",
            scope="me (default) or server (admins: for everyone who hasn't chosen)",
        )
        async def speech(
            interaction: discord.Interaction,
            setting: Literal["on", "off", "default"],
            scope: Literal["me", "server"] = "me",
        ) -> None:
            value = None if setting == "default" else setting == "on"
            choices = channels.choices
            if scope == "server":
                guild = interaction.guild
                if guild is None:
                    await interaction.response.send_message(IN_SERVERS, ephemeral=True)
                    return
                if not is_admin(interaction.user):
                    await interaction.response.send_message(
                        "Only server admins (Manage Channels or the Clara-Admin role) can change "
                        "this for the whole server; `/clara speech` with scope me changes it "
                        "for you.",
                        ephemeral=True,
                    )
                    return
                saved = await choices.set_guild(guild.id, value)
                now = choices.effective(None, value)
                text = (
                    f"Replies in voice are now **{'spoken' if now else 'text only'}** here for "
                    "everyone who hasn't chosen for themselves."
                )
            else:
                saved = await choices.set_user(interaction.user.id, value)
                if interaction.guild is not None:
                    now = await choices.decide(interaction.guild.id, interaction.user.id)
                else:  # a DM: no server choice to fall back on
                    now = choices.effective(value, None)
                text = "When I'm in a voice channel I'll " + (
                    "read my replies to you aloud." if now else "answer you in text only."
                )
            if not saved and channels.choices.stored:
                text += NOT_SAVED
            await interaction.response.send_message(text, ephemeral=True)
