"""``/clara project …``: shared project memory for a group of people.

A project has an owner, admins and members; a channel linked to it gives its
members the project's shared memories in their conversations there.  The
caller is always ``interaction.user`` and every change goes through
``ProjectStore``, which enforces the roles at the data layer: these commands
only translate its refusals into plain words.  Projects are named among the
caller's own projects, so nobody can address (or learn of) a project they are
not in.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands

from clara_core.cortex.projects import ProjectInfo
from clara_core.cortex.types import AccessDenied, CortexError

from .memory_commands import MEMORY_OFF, TRY_AGAIN

if TYPE_CHECKING:
    from .runner import ClaraDiscordClient

log = logging.getLogger(__name__)

NOT_MANAGER = "Only the project's owner or an admin can do that."


class ProjectCommands:
    def __init__(self, client: ClaraDiscordClient) -> None:
        self.client = client

    def register(self, group: app_commands.Group) -> None:
        project = app_commands.Group(
            name="project", description="Shared memory for a group of people", parent=group
        )

        @project.command(name="create", description="Start a project; you are its owner")
        @app_commands.describe(name="The project's name", member="Someone to add right away")
        async def create(
            interaction: discord.Interaction, name: str, member: discord.User | None = None
        ) -> None:
            members = [str(member.id)] if member is not None else []
            await self._run(
                interaction,
                lambda store, me: store.create(name, me, members=members),
                lambda pid: (
                    f"Project **{discord.utils.escape_markdown(name)}** created"
                    + (f" with <@{member.id}>." if member is not None else ".")
                    + " Link a channel to it with `/clara project link`."
                ),
            )

        @project.command(name="add", description="Add someone to one of your projects")
        async def add(
            interaction: discord.Interaction,
            project: str,
            member: discord.User,
            role: Literal["member", "admin"] = "member",
        ) -> None:
            async def act(store, me):
                info = await self._find(me, project)
                await store.add_member(info.id, str(member.id), by=me, role=role)
                return info

            await self._run(
                interaction, act, lambda info: f"<@{member.id}> is now a {role} of **{info.name}**."
            )

        @project.command(name="remove", description="Remove someone (or yourself) from a project")
        async def remove(
            interaction: discord.Interaction, project: str, member: discord.User
        ) -> None:
            async def act(store, me):
                info = await self._find(me, project)
                return info, await store.remove_member(info.id, str(member.id), by=me)

            await self._run(
                interaction,
                act,
                lambda r: (
                    f"<@{member.id}> left **{r[0].name}**."
                    if r[1]
                    else f"<@{member.id}> wasn't a member of **{r[0].name}** (owners stay)."
                ),
            )

        @project.command(name="link", description="Link this channel to one of your projects")
        async def link(interaction: discord.Interaction, project: str) -> None:
            if interaction.guild is None:
                await interaction.response.send_message(
                    "Projects are linked to server channels, not DMs.", ephemeral=True
                )
                return

            async def act(store, me):
                info = await self._find(me, project)
                await store.link_channel(str(interaction.channel_id), info.id, by=me)
                return info

            await self._run(
                interaction,
                act,
                lambda info: (
                    f"This channel now shares **{info.name}**'s memories with its members."
                ),
            )

        @project.command(name="unlink", description="Unlink this channel from its project")
        async def unlink(interaction: discord.Interaction) -> None:
            await self._run(
                interaction,
                lambda store, me: store.unlink_channel(str(interaction.channel_id), by=me),
                lambda done: (
                    "This channel is no longer linked to a project."
                    if done
                    else "This channel isn't linked to a project."
                ),
            )

        @project.command(name="list", description="Your projects and your role in each")
        async def list_(interaction: discord.Interaction) -> None:
            await self._run(
                interaction,
                lambda store, me: store.projects_of(me),
                lambda infos: (
                    "\n".join(
                        f"**{discord.utils.escape_markdown(i.name)}** · {i.members[next(iter(i.members))]}"
                        for i in infos
                    )
                    or "You are not in any project yet. Start one with `/clara project create`."
                ),
            )

    async def _find(self, me: str, name: str) -> ProjectInfo:
        """One of the caller's projects, by name (case-insensitive) or id."""
        assert self.client.memory is not None
        wanted = name.strip().casefold()
        for info in await self.client.memory.projects.projects_of(me):
            if info.name.casefold() == wanted or info.id == name.strip():
                return info
        raise CortexError(f"You have no project called **{discord.utils.escape_markdown(name)}**.")

    async def _run(self, interaction: discord.Interaction, act, describe) -> None:
        memory = self.client.memory
        if memory is None:
            await interaction.response.send_message(MEMORY_OFF, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        me = str(interaction.user.id)
        try:
            text = describe(await act(memory.projects, me))
        except AccessDenied:
            text = NOT_MANAGER
        except CortexError as exc:
            text = str(exc)
        except Exception:
            log.exception("/clara project failed")
            text = TRY_AGAIN
        await interaction.edit_original_response(
            content=text[:2000], allowed_mentions=discord.AllowedMentions.none()
        )
