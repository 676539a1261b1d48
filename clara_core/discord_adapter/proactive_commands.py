"""``/clara proactive on|off``: whether Clara may message the caller on her own;
``/clara boundary``: when and how she may.

Without a choice, proactive messages are off for anyone who never talked to
Clara in DMs (unless ORS_DEFAULT_ON); the choice is stored with the user's ORS
patterns (storage/proactive.py), so it holds across restarts and processes.

A boundary is stated in words ("not before 10:00", "no weekends", "only about
work"); the hours and days in them are enforced by the ORS rules
(companion/boundaries.py, ors.py), the rest is given to the model deciding.
The answer lists each boundary with what of it is enforced, so the user sees
exactly what the rules will hold Clara to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands

from clara_core.companion.boundaries import MAX_BOUNDARIES, Boundary

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

NO_BOUNDARIES = (
    "You haven't set any boundaries for messages I send on my own. "
    "`/clara boundary add:` with e.g. `not before 10:00`, `no weekends` or `only about work`."
)
BOUNDARY_HELP = "`/clara boundary remove:<number>` removes one, `remove:0` all of them."


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

        @group.command(name="boundary", description="When or how Clara may message you on her own")
        @app_commands.describe(
            add="In words, e.g. 'not before 10:00', 'no weekends', 'only about work'",
            remove="The number of a boundary in the list to remove; 0 removes them all",
        )
        async def boundary(
            interaction: discord.Interaction,
            add: app_commands.Range[str, 1, 200] | None = None,
            remove: app_commands.Range[int, 0, MAX_BOUNDARIES] | None = None,
        ) -> None:
            await self._boundary(interaction, add, remove)

        boundary.extras["handler"] = self

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

    async def _boundary(
        self, interaction: discord.Interaction, add: str | None, remove: int | None
    ) -> None:
        store = self._store_or_none()
        if store is None:
            await interaction.response.send_message(PROACTIVE_OFF_SERVER, ephemeral=True)
            return
        user_id = str(interaction.user.id)
        add = add.strip() if add is not None and add.strip() else None
        head = ""
        try:
            if remove is not None:
                items = await store.remove_boundary(user_id, None if remove == 0 else remove - 1)
                head = "Removed." if remove else "All boundaries removed."
            if add is not None:
                b = Boundary.parse(add)
                items = await store.add_boundary(
                    user_id, b.to_json(), self.clock(), limit=MAX_BOUNDARIES
                )
                head = (
                    f"Noted. Enforced: I won't message you on my own {b.describe()}."
                    if b.enforced
                    else "Noted. I'll keep it in mind whenever I think of writing to you."
                )
            if add is None and remove is None:
                pattern = await store.pattern(user_id)
                items = list(pattern.boundaries) if pattern is not None else []
        except Exception as exc:  # the database; the user can only retry
            log.warning("/clara boundary failed: %r", exc)
            await interaction.response.send_message(PROACTIVE_TRY_AGAIN, ephemeral=True)
            return
        text = describe_boundaries([Boundary.from_json(i) for i in items])
        await interaction.response.send_message(
            f"{head}\n\n{text}" if head else text, ephemeral=True
        )


def describe_boundaries(boundaries: list[Boundary]) -> str:
    """The list as the user sees it: their words, and what of them is enforced."""
    if not boundaries:
        return NO_BOUNDARIES
    lines = ["Your boundaries for messages I send on my own:"]
    for i, b in enumerate(boundaries, 1):
        how = f"enforced: {b.describe()}" if b.enforced else "I keep it in mind"
        lines.append(f"{i}. {b.text} ({how})")
    lines.append(BOUNDARY_HELP)
    return "\n".join(lines)
