"""Keep a discord.py client connected for as long as Clara runs.

discord.py reconnects by itself once connected; what it does not do is
survive the *first* connection failing (Discord down, DNS hiccup, a proxy in
the way).  The runner retries with capped exponential backoff and jitter,
says plainly in the log what is wrong, and treats a rejected token as a
configuration error instead of retrying it forever.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import aiohttp
import discord

from clara_core.config import Settings, secret_values
from clara_core.errors import ConfigError
from clara_core.logging_setup import Redactor
from clara_core.pipeline.turn import TurnRunner
from storage.channel_summaries import ChannelSummaryStore
from storage.local_files import LocalFileStore
from storage.preferences import Preferences
from storage.sessions import SessionStore

from .commands import build_command_tree
from .conversation import ConversationHandler
from .endpoints import configure_discord_endpoints
from .logmirror import LogMirror
from .memory_commands import MemoryCommands
from .pacing import ChannelPacer
from .project_commands import ProjectCommands

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from clara_core.cortex.manager import MemoryManager

log = logging.getLogger(__name__)


def default_intents() -> discord.Intents:
    intents = discord.Intents.default()
    intents.message_content = True  # privileged: enable it in the Developer Portal
    return intents


class ClaraDiscordClient(discord.Client):
    """discord.py client; messages go to the ConversationHandler when one is attached."""

    def __init__(
        self,
        *,
        on_connected: Callable[[], None] | None = None,
        runner: TurnRunner | None = None,
        settings: Settings | None = None,
        preferences: Preferences | None = None,
        sessions: SessionStore | None = None,
        channel_summaries: ChannelSummaryStore | None = None,
        memory: MemoryManager | None = None,
        engine: AsyncEngine | None = None,
        forget_confirm_timeout: float = 60.0,
        **kwargs,
    ) -> None:
        super().__init__(intents=default_intents(), **kwargs)
        self._on_connected = on_connected
        self.settings = settings
        self.preferences = preferences
        # What /clara memory and /clara forget read and clear (None: not configured).
        self.memory = memory
        self.engine = engine
        self.started_at = time.time()
        self.conversation: ConversationHandler | None = None
        if runner is not None and settings is not None:
            self.conversation = ConversationHandler(
                self,
                runner,
                settings,
                preferences=preferences,
                sessions=sessions,
                channel_summaries=channel_summaries,
            )
        self.files: LocalFileStore | None = None
        if self.conversation is not None:
            self.files = self.conversation.files
        elif settings is not None:
            self.files = LocalFileStore(
                settings.clara_files_dir, max_size=settings.clara_max_file_size
            )
        self.memory_commands = MemoryCommands(self, confirm_timeout=forget_confirm_timeout)
        self.project_commands = ProjectCommands(self)
        self.tree = build_command_tree(self)
        self.log_mirror: LogMirror | None = None
        if settings is not None and settings.discord_log_channel_id is not None:
            pacer = (
                self.conversation.pacer
                if self.conversation is not None
                else ChannelPacer(settings.discord_edit_interval_seconds)
            )
            self.log_mirror = LogMirror(
                self, settings.discord_log_channel_id, pacer, Redactor(secret_values(settings))
            )

    async def setup_hook(self) -> None:
        # Overwrites the global command list; idempotent, so safe on every start.
        try:
            await self.tree.sync()
        except discord.HTTPException as exc:
            log.warning("could not register slash commands: %s", exc)

    async def on_message(self, message: discord.Message) -> None:
        if self.conversation is not None:
            await self.conversation.on_message(message)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        # Slash commands go to self.tree; our buttons are answered by custom_id.
        if interaction.type is discord.InteractionType.component:
            await self.memory_commands.on_component(interaction)

    async def close(self) -> None:
        if self.log_mirror is not None and self.log_mirror.started and not self.is_closed():
            self.log_mirror.event("stopping")
            await self.log_mirror.flush()
            await self.log_mirror.stop()
        if self.conversation is not None:
            await self.conversation.close()
        await super().close()

    async def on_ready(self) -> None:
        assert self.user is not None
        log.info(
            "connected to Discord as %s (id %s) in %d server(s)",
            self.user,
            self.user.id,
            len(self.guilds),
        )
        if self.log_mirror is not None:
            if not self.log_mirror.started:
                self.log_mirror.start()
                self.log_mirror.event("started")
            else:
                self.log_mirror.event("resumed")
        if self._on_connected is not None:
            self._on_connected()

    async def on_resumed(self) -> None:
        log.info("Discord session resumed")
        if self.log_mirror is not None:
            self.log_mirror.event("resumed")

    async def on_disconnect(self) -> None:
        if not self.is_closed():
            log.warning("disconnected from Discord; reconnecting")
            if self.log_mirror is not None:
                self.log_mirror.event("disconnected")


class DiscordRunner:
    def __init__(
        self,
        settings: Settings,
        *,
        runner: TurnRunner | None = None,
        preferences: Preferences | None = None,
        sessions: SessionStore | None = None,
        channel_summaries: ChannelSummaryStore | None = None,
        memory: MemoryManager | None = None,
        engine: AsyncEngine | None = None,
        forget_confirm_timeout: float = 60.0,
        client_factory: Callable[..., ClaraDiscordClient] | None = None,
        max_backoff: float = 60.0,
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.preferences = preferences
        self.sessions = sessions
        self.channel_summaries = channel_summaries
        self.memory = memory
        self.engine = engine
        self.forget_confirm_timeout = forget_confirm_timeout
        self.activity_sink: Callable[..., None] | None = None  # the monitor's, when it runs
        self.client_factory = client_factory or ClaraDiscordClient
        self.max_backoff = max_backoff
        self.client: ClaraDiscordClient | None = None
        self.connected = asyncio.Event()
        self.attempts = 0
        self._stopping = False

    async def run(self) -> None:
        """Connect, and reconnect after failures, until ``close()`` is called."""
        token = self.settings.discord_bot_token
        assert token is not None, "checked by Settings.missing_for_discord()"
        configure_discord_endpoints(
            self.settings.discord_api_base, self.settings.discord_gateway_url
        )
        delay = 1.0
        while not self._stopping:
            self.attempts += 1
            self.client = self.client_factory(
                on_connected=self.connected.set,
                runner=self.runner,
                settings=self.settings,
                preferences=self.preferences,
                sessions=self.sessions,
                channel_summaries=self.channel_summaries,
                memory=self.memory,
                engine=self.engine,
                forget_confirm_timeout=self.forget_confirm_timeout,
            )
            if self.client.conversation is not None:
                self.client.conversation.activity_sink = self.activity_sink
            try:
                await self.client.login(token.get_secret_value())
                await self.client.connect(reconnect=True)
            except discord.LoginFailure:
                raise ConfigError(
                    [
                        "DISCORD_BOT_TOKEN was rejected by Discord (401 Unauthorized): reset the "
                        "token in the Developer Portal (Bot > Reset Token) and set it again."
                    ],
                    headline="Clara could not log in to Discord:",
                ) from None
            except discord.PrivilegedIntentsRequired:
                raise ConfigError(
                    [
                        "the bot needs the Message Content intent: enable it in the Developer "
                        "Portal (Bot > Privileged Gateway Intents)."
                    ],
                    headline="Clara could not log in to Discord:",
                ) from None
            except (OSError, aiohttp.ClientError, discord.DiscordException, TimeoutError) as exc:
                if self._stopping:
                    break
                wait = min(delay, self.max_backoff) * random.uniform(0.8, 1.2)
                log.warning(
                    "cannot reach Discord (%s: %s); retrying in %.0fs",
                    type(exc).__name__,
                    exc,
                    wait,
                )
                await self._close_client()
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.max_backoff)
                continue
            else:
                # connect() returned: close() was called.
                break
            finally:
                if self._stopping:
                    await self._close_client()

    async def _close_client(self) -> None:
        if self.client is not None and not self.client.is_closed():
            await self.client.close()

    async def close(self) -> None:
        self._stopping = True
        await self._close_client()
