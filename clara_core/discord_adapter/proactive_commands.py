"""``/clara proactive on|off``: whether Clara may message the caller on her own.

Without a choice, proactive messages are off for anyone who never talked to
Clara in DMs (unless ORS_DEFAULT_ON); the choice is stored with the user's ORS
patterns (storage/proactive.py), so it holds across restarts and processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands

if TYPE_CHECKING:
    from storage.proactive import ProactiveStore

    from .runner import ClaraDiscordClient

log = logging.getLogger(__name__)

PROACTIVE_OFF_SERVER = (
    "Proactive messages need a database, and this server runs without one, so I never "
    "message anyone on my own here."
)
PROACTIVE_TRY_AGAIN = (
    "I couldn't save that just now (the database didn't answer). Try again in a minute."
)
ON = "Okay: I may message you on my own now and then, never at night and never often."
OFF = "Okay: I won't message you on my own. `/clara proactive on` changes it back."

Choice = Literal["on", "off"]


class ProactiveCommands:
    def __init__(
        self, client: ClaraDiscordClient, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.client = client
        self.clock = clock or (lambda: datetime.now(UTC))
        self._store: ProactiveStore | None = None

    def _store_or_none(self) -> ProactiveStore | None:
        if self._store is None and self.client.engine is not None:
            from storage.proactive import ProactiveStore

            self._store = ProactiveStore(self.client.engine)
        return self._store

    def register(self, group: app_commands.Group) -> None:
        @group.command(name="proactive", description="Whether Clara may message you on her own")
        @app_commands.describe(state="on or off; leave it out to see your current setting")
        async def proactive(interaction: discord.Interaction, state: Choice | None = None) -> None:
            await self._proactive(interaction, state)

        proactive.extras["handler"] = self

    def _default_on(self) -> bool:
        s = self.client.settings
        return bool(s is not None and s.ors_default_on)

    async def _proactive(self, interaction: discord.Interaction, state: Choice | None) -> None:
        store = self._store_or_none()
        if store is None:
            await interaction.response.send_message(PROACTIVE_OFF_SERVER, ephemeral=True)
            return
        user_id = str(interaction.user.id)
        try:
            if state is not None:
                await store.set_opt_in(user_id, state == "on", self.clock())
                text = ON if state == "on" else OFF
            else:
                pattern = await store.pattern(user_id)
                text = self._describe(pattern.opted_in if pattern else None, pattern)
        except Exception as exc:  # the database; the user can only retry
            log.warning("/clara proactive failed: %r", exc)
            await interaction.response.send_message(PROACTIVE_TRY_AGAIN, ephemeral=True)
            return
        await interaction.response.send_message(text, ephemeral=True)

    def _describe(self, opted_in: bool | None, pattern: object) -> str:
        if opted_in is True:
            return "Proactive messages are **on** for you. `/clara proactive off` stops them."
        if opted_in is False:
            return "Proactive messages are **off** for you. `/clara proactive on` allows them."
        talked_in_dm = bool(getattr(pattern, "talked_in_dm", False))
        on = self._default_on() or talked_in_dm
        why = "you talk to me in DMs" if talked_in_dm else "that is this server's default"
        return (
            f"You haven't chosen, so proactive messages are **{'on' if on else 'off'}** "
            f"({why}). `/clara proactive on` or `off` decides."
        )
