"""``/clara say prompt:…``: Clara answers out loud, as a Discord voice message.

What a user expects from "say": Clara answers the prompt exactly as she would
a mention (memory, their tier, tools, the channel's recent talk), shows the
answer as text in the channel, and posts it as a voice message (Ogg/Opus with
duration and waveform, the same ``send_voice_message`` path as "reply as a
voice message") replying to that text.

A model answer plus piper synthesis takes longer than Discord's 3 s for a
first response, so the interaction is deferred at once ("Clara is thinking…",
public) and the answer replaces that placeholder.  The job runs in the
channel's queue like any other answer, so it waits its turn and "@Clara stop"
stops it.  Interaction messages cannot carry the voice-message flag, so the
voice message itself is a normal channel message.

Without the voice extra (or with a PIPER_MODEL that isn't there) the command
answers at once, only to the caller, with what the operator has to install.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from clara_core.voice import missing_for_speaking
from clara_core.voice.errors import VoiceBusy, VoiceError
from tools.ports import FILE_POSTER_KEY
from tools.registry import REPLY_FILES_KEY, ToolContext

from .file_poster import DiscordFilePoster
from .pacing import Priority
from .queue import QueuedJob
from .splitting import split_message
from .streaming import fit_files, upload_limit
from .voice_messages import SPOKEN_NOTE, send_voice_message, speakable

if TYPE_CHECKING:
    from clara_core.config import Settings
    from clara_core.pipeline.events import Done
    from clara_core.pipeline.turn import TurnInput

    from .conversation import ConversationHandler
    from .runner import ClaraDiscordClient

log = logging.getLogger(__name__)

#: Longest prompt accepted (Discord allows 6000 characters in all options).
PROMPT_MAX = 2000
STARTING = "I'm still starting up; try `/clara say` again in a moment."
NOT_HERE = "I don't answer in this channel, so I can't speak here either."
NO_TEXT = "-# There was nothing in my answer to read aloud (only code or links)."
BUSY = "-# I'm busy with other voice work, so this answer is text only; try again in a minute."
NO_VOICE = "-# I couldn't record my voice here, so this answer is text only."


def speech_problem(settings: Settings) -> str | None:
    """Why Clara can't speak on this installation (for the caller), or None.

    Checked before deferring, so a missing extra costs the user one ephemeral
    line instead of a public "thinking…" that ends in an apology."""
    missing = missing_for_speaking(custom_voice=bool(settings.piper_model))
    if missing:
        return (
            "I can't speak on this server yet: my voice isn't installed. (For the bot's "
            f"operator: install Clara's voice extra, pip install '.[voice]'; missing: "
            f"{', '.join(missing)}. `doctor` lists what voice needs.)"
        )
    if settings.piper_model:
        from pathlib import Path

        voice = Path(settings.piper_model)
        if not voice.is_file() or not Path(f"{voice}.json").is_file():
            return (
                "I can't speak on this server right now: my voice file is missing. (For the "
                f"bot's operator: PIPER_MODEL={voice} needs the .onnx file and its .onnx.json "
                "beside it; leave PIPER_MODEL empty for the bundled voice.)"
            )
    return None


def allowed_here(settings: Settings, interaction: discord.Interaction) -> bool:
    """The gates a mention passes (``ConversationHandler.allowed``), for an interaction."""
    from .conversation import passes_gates

    return passes_gates(
        settings,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        parent_id=getattr(interaction.channel, "parent_id", None),
        user=interaction.user,
    )


class SayCommand:
    def __init__(self, client: ClaraDiscordClient) -> None:
        self.client = client

    def register(self, group: app_commands.Group) -> None:
        @group.command(
            name="say", description="Clara answers out loud: her reply as text and a voice message"
        )
        @app_commands.describe(prompt="What to ask or tell Clara")
        async def say(
            interaction: discord.Interaction,
            prompt: app_commands.Range[str, 1, PROMPT_MAX],
        ) -> None:
            await self._say(interaction, prompt)

        say.extras["handler"] = self

    async def _say(self, interaction: discord.Interaction, prompt: str) -> None:
        conversation = self.client.conversation
        settings = self.client.settings
        if conversation is None or settings is None:
            await interaction.response.send_message(STARTING, ephemeral=True)
            return
        if not allowed_here(settings, interaction):
            await interaction.response.send_message(NOT_HERE, ephemeral=True)
            return
        problem = speech_problem(settings)
        if problem is not None:
            await interaction.response.send_message(problem, ephemeral=True)
            return
        # Public "Clara is thinking…": the answer and the recording take seconds.
        await interaction.response.defer(thinking=True)
        channel_id = interaction.channel_id or interaction.user.id
        ahead = conversation.queue.submit(
            channel_id,
            QueuedJob(
                run=lambda: self._answer(conversation, interaction, prompt),
                label=f"say:{interaction.id}",
            ),
        )
        if ahead:
            await self._edit(
                interaction, f"-# You're #{ahead + 1} in line; I'll get to you right after."
            )

    async def _edit(self, interaction: discord.Interaction, content: str, **kw: object) -> bool:
        try:
            await interaction.edit_original_response(content=content, **kw)  # type: ignore[arg-type]
        except discord.HTTPException as exc:  # the token expired (15 min) or the message is gone
            log.warning("could not edit the /clara say answer: %s", exc)
            return False
        return True

    async def _followup(self, interaction: discord.Interaction, content: str) -> None:
        try:
            await interaction.followup.send(
                content, allowed_mentions=discord.AllowedMentions.none()
            )
        except discord.HTTPException as exc:
            log.warning("could not send a /clara say follow-up: %s", exc)

    async def _turn(
        self,
        conversation: ConversationHandler,
        interaction: discord.Interaction,
        prompt: str,
        anchor: discord.Message,
    ) -> TurnInput:
        user = interaction.user
        in_guild = interaction.guild_id is not None
        from clara_core.pipeline.turn import TurnInput

        from .conversation import is_admin, member_roles

        turn = TurnInput(
            text=prompt,
            context=ToolContext(
                user_id=str(user.id),
                channel_id=str(anchor.channel.id),
                is_admin=is_admin(user),
                roles=member_roles(user),
                platform="discord",
                extras={
                    # Files a tool posts go below the answer, like in a conversation.
                    FILE_POSTER_KEY: DiscordFilePoster(anchor, conversation.pacer),
                    REPLY_FILES_KEY: upload_limit(anchor),
                },
            ),
            speaker=user.display_name if in_guild else None,
            default_tier=await self._default_tier(str(user.id)),  # type: ignore[arg-type]
        )
        me = self.client.user
        if me is not None:
            section = await conversation.channel_context.section(anchor, me.id, exclude={anchor.id})
            if section:
                turn.context_notes.append(section)
        turn.context_notes.append(SPOKEN_NOTE)
        return turn

    async def _default_tier(self, user_id: str) -> str | None:
        preferences = self.client.preferences
        if preferences is None:
            return None
        try:
            return await preferences.default_tier(user_id)
        except Exception as exc:  # the database being down must not stop the answer
            log.warning("could not read preferences: %s", exc)
            return None

    def _context_id(self, interaction: discord.Interaction) -> str:
        # The same conversation id a mention in this place is filed under.
        if interaction.guild_id is None:
            return f"discord:dm:{interaction.user.id}"
        return f"discord:{interaction.channel_id}"

    async def _answer(
        self, conversation: ConversationHandler, interaction: discord.Interaction, prompt: str
    ) -> None:
        from clara_core.pipeline.events import Done, Failed

        try:
            anchor = await interaction.original_response()
        except discord.HTTPException as exc:
            log.warning("/clara say: the deferred answer is gone (%s); not answering", exc)
            return
        user_id = str(interaction.user.id)
        history = conversation.history
        session = (
            await history.begin(user_id, self._context_id(interaction))
            if history is not None
            else None
        )
        turn = await self._turn(conversation, interaction, prompt, anchor)
        if session is not None and session.started_new and session.snapshot:
            turn.context_notes.append(
                f"Summary of your previous conversation here:\n{session.snapshot}"
            )
        done: Done | None = None
        started = time.monotonic()
        try:
            async for event in conversation.runner.run(turn):
                if isinstance(event, Done):
                    done = event
                    self._record(conversation, interaction, event.model, started, ok=True)
                elif isinstance(event, Failed):
                    self._record(conversation, interaction, "-", started, ok=False)
                    await self._edit(interaction, f"⚠️ {event.message}")
                    return
        except asyncio.CancelledError:  # "@Clara stop"
            await self._edit(interaction, "⏹ stopped")
            raise
        if done is None:
            return
        if not await self._show(interaction, anchor, done):
            return
        if history is not None:
            await history.record(
                session,
                user_id,
                self._context_id(interaction),
                [
                    ("user", user_id, prompt, None),
                    ("assistant", "clara", done.text, str(anchor.id)),
                ],
            )
        await self._speak(conversation, interaction, anchor, done.text)

    def _record(
        self,
        conversation: ConversationHandler,
        interaction: discord.Interaction,
        model: str,
        started: float,
        *,
        ok: bool,
    ) -> None:
        """One line in the monitor's activity list, like an answered mention."""
        sink = conversation.activity_sink
        if sink is None:
            return
        from clara_core.monitor import Activity

        where = f"#{interaction.channel} /say" if interaction.guild_id is not None else "DM /say"
        sink(
            Activity(
                time.time(),
                where,
                interaction.user.display_name,
                model,
                time.monotonic() - started,
                ok,
            )
        )

    async def _show(
        self, interaction: discord.Interaction, anchor: discord.Message, done: Done
    ) -> bool:
        """The answer replaces "thinking…"; a long one continues in follow-ups."""
        chunks = split_message(done.text or "…")
        files, _left = fit_files(list(done.attachments), max_bytes=upload_limit(anchor))
        attachments = [discord.File(io.BytesIO(f.data), filename=f.filename) for f in files]
        if not await self._edit(
            interaction,
            chunks[0],
            attachments=attachments,
            allowed_mentions=discord.AllowedMentions.none(),
        ):
            return False
        for chunk in chunks[1:]:
            await self._followup(interaction, chunk)
        return True

    async def _speak(
        self,
        conversation: ConversationHandler,
        interaction: discord.Interaction,
        anchor: discord.Message,
        answer: str,
    ) -> None:
        text = speakable(answer)
        if not text:
            await self._followup(interaction, NO_TEXT)
            return
        try:
            clip = await conversation.voice.record(text)
            async with conversation.pacer.slot(anchor.channel.id, Priority.FIRST_MESSAGE):
                await send_voice_message(self.client, anchor, clip)
        except VoiceBusy:
            await self._followup(interaction, BUSY)
        except VoiceError as exc:
            log.warning("/clara say: no voice message: %s", exc)
            await self._followup(interaction, NO_VOICE)
        except discord.HTTPException as exc:
            log.warning("/clara say: could not post the voice message: %s", exc)
            # A follow-up needs no channel permission, unlike the voice message.
            await self._followup(
                interaction,
                "-# Discord didn't take my voice message"
                + (
                    " (a server admin can give me the Send Messages and Attach Files permissions here)"
                    if exc.status == 403
                    else ""
                )
                + ", so this answer is text only.",
            )
