"""``/clara mood``: Clara's eight hormone levels in this channel, and a 24 h chart.

The levels are read from the companion store (the pipeline writes every
change through to it) and decayed to now by the same pure model, so the
numbers match what the next turn's prompt will see.  The chart is rendered in
a worker thread (matplotlib is CPU work); if the answer is not ready within
``defer_after`` seconds the interaction is deferred first, because Discord
drops an unanswered interaction after 3 s.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from clara_core.companion.chart import curve, render_png
from clara_core.companion.hormones import HORMONES, HormoneModel, HormoneState, levels_from

if TYPE_CHECKING:
    from storage.companion import CompanionStore

    from .runner import ClaraDiscordClient

log = logging.getLogger(__name__)

MOOD_OFF = "My mood isn't stored anywhere on this server (no database), so there's nothing to show."
MOOD_TRY_AGAIN = (
    "I couldn't read my mood just now (the database didn't answer). Try again in a minute."
)
#: Discord allows 3 s for the first answer; leave room for the round trip.
DEFER_AFTER = 2.0
#: The issue's limit for the whole answer.
ANSWER_WITHIN = 40.0
CHART_WINDOW = timedelta(hours=24)


def mood_scope(channel_id: int | None, user_id: int) -> str:
    """The scope the pipeline files this channel's mood under (``pipeline.mood.scope_for``)."""
    return f"channel:{channel_id}" if channel_id is not None else f"user:{user_id}"


def format_levels(levels: dict[str, float], baseline: dict[str, float]) -> str:
    lines = ["**My mood here** (0 = none, 1 = full; resting level for this hour in brackets)"]
    for name in HORMONES:
        lines.append(f"• {name}: {levels[name]:.2f} ({baseline[name]:.2f})")
    return "\n".join(lines)


class MoodCommands:
    def __init__(
        self,
        client: ClaraDiscordClient,
        *,
        clock: Callable[[], datetime] | None = None,
        defer_after: float = DEFER_AFTER,
    ) -> None:
        self.client = client
        self.clock = clock or (lambda: datetime.now(UTC))
        self.defer_after = defer_after
        self._store: CompanionStore | None = None

    def register(self, group: app_commands.Group) -> None:
        @group.command(
            name="mood", description="How Clara feels in this channel, with a 24 h chart"
        )
        async def mood(interaction: discord.Interaction) -> None:
            await self._mood(interaction)

        # Who answers it, for operators and tests tuning the clock or the defer delay.
        mood.extras["handler"] = self

    def _timezone(self) -> str:
        s = self.client.settings
        return s.clara_timezone if s is not None else "UTC"

    def _store_or_none(self) -> CompanionStore | None:
        if self._store is None and self.client.engine is not None:
            from storage.companion import CompanionStore

            self._store = CompanionStore(self.client.engine)
        return self._store

    async def _answer(self, scope: str) -> tuple[str, bytes]:
        store = self._store_or_none()
        assert store is not None
        timezone = self._timezone()
        model = HormoneModel(timezone)
        now = self.clock()
        stored = await store.load(scope)
        if stored is None:
            state = model.initial(now)
        else:
            state = model.advance(
                HormoneState(levels_from(stored.levels, model.baseline(stored.at)), stored.at), now
            )
        history = await store.history(scope, now - CHART_WINDOW)
        points = [(p.at, p.levels) for p in history]
        data = curve(model, points, now - CHART_WINDOW, now)
        png = await asyncio.to_thread(render_png, data, timezone, "Clara's mood, last 24 h")
        baseline = dict(zip(HORMONES, model.baseline(now), strict=True))
        return format_levels(state.as_dict(), baseline), png

    async def _mood(self, interaction: discord.Interaction) -> None:
        if self._store_or_none() is None:
            await interaction.response.send_message(MOOD_OFF, ephemeral=True)
            return
        scope = mood_scope(interaction.channel_id, interaction.user.id)
        work = asyncio.create_task(self._answer(scope), name="clara-mood")
        deferred = False
        try:
            async with asyncio.timeout(ANSWER_WITHIN):
                done, _ = await asyncio.wait({work}, timeout=self.defer_after)
                if not done:
                    await interaction.response.defer(ephemeral=True, thinking=True)
                    deferred = True
                text, png = await work
        except Exception as exc:  # the database or the chart; the user can only retry
            work.cancel()
            log.warning("/clara mood failed: %r", exc)
            if deferred:
                await interaction.edit_original_response(content=MOOD_TRY_AGAIN)
            else:
                await interaction.response.send_message(MOOD_TRY_AGAIN, ephemeral=True)
            return
        chart = discord.File(io.BytesIO(png), filename="mood.png")
        if deferred:
            await interaction.edit_original_response(content=text, attachments=[chart])
        else:
            await interaction.response.send_message(text, file=chart, ephemeral=True)
