"""Keep a discord.py client connected for as long as Clara runs.

discord.py reconnects by itself once connected; what it does not do is
survive the *first* connection failing (Discord down, DNS hiccup, a proxy in
the way; its reconnect path then raises ``AttributeError`` on the missing
websocket), nor a payload its parsers cannot read (the parser's error escapes
``Client.connect()``).  The runner retries *anything* with capped exponential
backoff and jitter, says plainly in the log what is wrong, and treats a
rejected token or missing intent as a configuration error instead of retrying
it forever.  A stop request interrupts any wait at once.

The client is started before the conversation pipeline is ready (start-up
runs storage, the embedder and the gateway connect side by side); messages
that arrive in that window wait for :meth:`ClaraDiscordClient.attach`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.shard import Shard

from clara_core.config import Settings, secret_values
from clara_core.errors import ConfigError
from clara_core.logging_setup import Redactor

from .catch_up import CatchUp
from .endpoints import configure_discord_endpoints
from .logmirror import LogMirror
from .pacing import ChannelPacer, GlobalBudget

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from clara_core.cortex.manager import MemoryManager
    from clara_core.pipeline.turn import TurnRunner
    from storage.channel_summaries import ChannelSummaryStore
    from storage.preferences import Preferences
    from storage.sessions import SessionStore

    from .conversation import ConversationHandler
    from .memory_commands import MemoryCommands
    from .project_commands import ProjectCommands

log = logging.getLogger(__name__)

#: What Clara needs in a server: read and answer (threads too, files, embeds,
#: reactions for progress), and join voice channels to speak.
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    read_message_history=True,
    attach_files=True,
    embed_links=True,
    add_reactions=True,
    connect=True,
    speak=True,
)


def invite_url(client_id: int) -> str:
    """The OAuth2 link that adds Clara (bot + slash commands) with INVITE_PERMISSIONS."""
    return discord.utils.oauth_url(
        client_id, permissions=INVITE_PERMISSIONS, scopes=("bot", "applications.commands")
    )


#: discord.py waits this long after the last GUILD_CREATE before ``on_ready``.  Its
#: default (2 s) only delays the "connected" signal: messages are parsed and
#: handled as soon as the gateway delivers them, guilds that arrive later are
#: added when they do.
GUILD_READY_TIMEOUT = 0.2

#: How long ``close()`` lets discord.py finish on its own before cancelling it
#: (it may be sleeping in its own reconnect backoff).
CLOSE_GRACE_S = 3.0

#: Gateway close codes that no retry can fix (discord.py raises ConnectionClosed).
FATAL_CLOSE_CODES = {
    4004: "DISCORD_BOT_TOKEN was rejected by the Discord gateway (close code 4004): reset the "
    "token in the Developer Portal (Bot > Reset Token) and set it again.",
    4010: "Discord rejected the shard settings (close code 4010): DISCORD_SHARD_COUNT must be "
    "the same in every Clara process and one Discord accepts; leave it unset to use the count "
    "Discord recommends.",
    4011: "Discord requires this bot to use sharding (close code 4011): it is in too many "
    "servers for a single connection; leave DISCORD_SHARD_COUNT unset (Discord's recommended "
    "count) or raise it.",
    4012: "Discord rejected the gateway API version (close code 4012).",
    4013: "Discord rejected the requested gateway intents (close code 4013).",
    4014: "the bot needs the Message Content intent: enable it in the Developer Portal "
    "(Bot > Privileged Gateway Intents).",
}

#: Discord allows ``max_concurrency`` IDENTIFYs per this many seconds, one per
#: bucket ``shard_id % max_concurrency`` (the session_start_limit of /gateway/bot).
IDENTIFY_WINDOW_S = 5.0

#: How often the runner rewrites its shard status file (``--status`` reads it).
SHARD_STATUS_INTERVAL_S = 10.0

#: Errors that mean "Discord is not reachable right now" (logged in one line);
#: anything else is unexpected and logged with its traceback, then retried too.
NETWORK_ERRORS = (
    OSError,
    aiohttp.ClientError,
    TimeoutError,
    discord.GatewayNotFound,
    discord.HTTPException,
    discord.ConnectionClosed,
)

#: A session that lasted this long makes the next failure a new incident (backoff
#: starts over); shorter ones keep growing it, so a payload that breaks every new
#: session cannot make Clara re-IDENTIFY every second (Discord allows 1000 a day).
STABLE_SESSION_S = 60.0


class _NetworkRetryWithoutTraceback(logging.Filter):
    """discord.py logs each of its gateway reconnect attempts with a full traceback
    (``Attempting a reconnect in ...``).  For a network failure the traceback says
    nothing the one-line reason doesn't, and in the foreground it lands in the
    user's terminal: keep the line, drop the traceback.  Other errors keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Attempting a reconnect"):
            exc = record.exc_info[1]
            if exc is not None and isinstance(exc, NETWORK_ERRORS):
                record.msg = f"{record.getMessage()} after {_describe(exc)}"
                record.args = ()
                record.exc_info = None
                record.exc_text = None
        return True


_RETRY_FILTER = _NetworkRetryWithoutTraceback()


def default_intents() -> discord.Intents:
    intents = discord.Intents.default()
    intents.message_content = True  # privileged: enable it in the Developer Portal
    return intents


class ClaraDiscordClient(discord.AutoShardedClient):
    """discord.py client; messages go to the ConversationHandler once one is attached.

    With ``runner`` (and ``settings``) the handler is built at once.  With
    ``await_pipeline=True`` and no runner, the client may connect first:
    messages wait until :meth:`attach` gives it the pipeline.

    Sharded through discord.py's AutoShardedClient, one websocket per shard:
    DISCORD_SHARD_COUNT / DISCORD_SHARD_IDS pick this process's shards; unset,
    it runs every shard of the count Discord recommends (one for a small bot,
    which behaves as a plain Client).
    """

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
        await_pipeline: bool = False,
        user_data_stores: Mapping[str, Any] | None = None,
        request_budget: GlobalBudget | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("guild_ready_timeout", GUILD_READY_TIMEOUT)
        # Discord's global request limit, hooked into the HTTP session before login
        # (discord.py's http_trace), so every request the bot token signs passes it,
        # discord.py's own retries included.  The DiscordRunner passes its own, which
        # outlives this client (one Redis connection and one member of the shared
        # budget per process, however often it reconnects); a client built alone
        # makes and closes its own.
        self._owns_budget = request_budget is None
        if request_budget is None and settings is not None:
            request_budget = _request_budget(settings)
        self.request_budget = request_budget
        if self.request_budget is not None:
            kwargs.setdefault("http_trace", self.request_budget.trace_config())
        if settings is not None and settings.discord_shard_count is not None:
            kwargs.setdefault("shard_count", settings.discord_shard_count)
            if settings.discord_shard_ids:
                kwargs.setdefault("shard_ids", list(settings.discord_shard_ids))
        super().__init__(intents=default_intents(), **kwargs)
        #: IDENTIFYs Discord takes at once (/gateway/bot's max_concurrency), and when
        #: each bucket last identified while the shards launch.
        self._identify_concurrency = 1
        self._identified_at: dict[int, float] = {}
        self._launching = False
        self._on_connected = on_connected
        self.settings = settings
        self.preferences = preferences
        # What /clara memory and /clara forget read and clear (None: not configured).
        self.memory = memory
        self.engine = engine
        self.started_at = time.time()
        #: Further stores /clara forget clears (mood, sandbox), by their report label.
        self.user_data_stores: dict[str, Any] = dict(user_data_stores or {})
        self.conversation: ConversationHandler | None = None
        self.files: Any = None  # LocalFileStore: the conversation's, or one of our own
        self._pipeline_ready = asyncio.Event()
        self._await_pipeline = await_pipeline
        self.forget_confirm_timeout = forget_confirm_timeout
        # Built with the pipeline (their modules import storage): a client that
        # connects before the pipeline is ready must not wait for those imports.
        self.memory_commands: MemoryCommands | None = None
        self.project_commands: ProjectCommands | None = None
        self.tree: discord.app_commands.CommandTree | None = None
        self.log_mirror: LogMirror | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self.ready_since: float | None = None  # monotonic time of the first on_ready
        #: What a shard missed while away, read back on each new session (catch_up.py).
        self.catch_up: CatchUp | None = (
            CatchUp(self, minutes=settings.discord_catchup_minutes, sessions=sessions)
            if settings is not None
            else None
        )
        if runner is not None and settings is not None:
            self.attach(
                runner,
                preferences=preferences,
                sessions=sessions,
                channel_summaries=channel_summaries,
                memory=memory,
                engine=engine,
                user_data_stores=user_data_stores,
            )
        elif not await_pipeline:
            self._build_commands()
            if settings is not None:
                from storage.local_files import LocalFileStore

                self.files = LocalFileStore(
                    settings.clara_files_dir, max_size=settings.clara_max_file_size
                )
                self._build_log_mirror(ChannelPacer(settings.discord_edit_interval_seconds))

    def _build_commands(self) -> None:
        from .commands import build_command_tree
        from .memory_commands import MemoryCommands
        from .project_commands import ProjectCommands

        self.memory_commands = MemoryCommands(self, confirm_timeout=self.forget_confirm_timeout)
        self.project_commands = ProjectCommands(self)
        self.tree = build_command_tree(self)

    def attach(
        self,
        runner: TurnRunner,
        *,
        preferences: Preferences | None = None,
        sessions: SessionStore | None = None,
        channel_summaries: ChannelSummaryStore | None = None,
        memory: MemoryManager | None = None,
        engine: AsyncEngine | None = None,
        activity_sink: Callable[..., None] | None = None,
        user_data_stores: Mapping[str, Any] | None = None,
    ) -> None:
        """Give the client its pipeline; messages that waited for it are handled now."""
        from .conversation import ConversationHandler  # the pipeline's imports: not before

        assert self.settings is not None
        self.preferences = preferences
        self.memory = memory
        self.engine = engine
        if user_data_stores is not None:
            self.user_data_stores = dict(user_data_stores)
        self.conversation = ConversationHandler(
            self,
            runner,
            self.settings,
            preferences=preferences,
            sessions=sessions,
            channel_summaries=channel_summaries,
            budget=self.request_budget,
        )
        self.conversation.activity_sink = activity_sink
        if self.catch_up is not None:
            self.catch_up.sessions = sessions
        self.files = self.conversation.files
        # The log mirror shares the conversation's pacer: one global request budget.
        self._build_log_mirror(self.conversation.pacer)
        if self.tree is None:
            self._build_commands()
        self._pipeline_ready.set()
        if self.is_ready():
            self._start_log_mirror()

    def _build_log_mirror(self, pacer: ChannelPacer) -> None:
        s = self.settings
        if s is not None and s.discord_log_channel_id is not None and self.log_mirror is None:
            self.log_mirror = LogMirror(
                self, s.discord_log_channel_id, pacer, Redactor(secret_values(s))
            )

    def _start_log_mirror(self) -> None:
        if self.log_mirror is None:
            return
        if not self.log_mirror.started:
            self.log_mirror.start()
            self.log_mirror.event("started")
        else:
            self.log_mirror.event("resumed")

    # ------------------------------------------------------------------ shards

    async def launch_shards(self) -> None:
        """One GET /gateway/bot gives the recommended shard count (used when
        DISCORD_SHARD_COUNT is unset) and how many IDENTIFYs may run at once."""
        if self.is_closed():
            return
        recommended, _url, limits = await self.http.get_bot_gateway()
        if self.shard_count is None:
            self.shard_count = recommended
        self._identify_concurrency = max(1, int(limits.get("max_concurrency") or 1))
        log.info(
            "Discord shards: running %s of %d (Discord recommends %d)",
            ", ".join(map(str, self.shard_ids)) if self.shard_ids else "all",
            self.shard_count,
            recommended,
        )
        self._launching = True
        try:
            await super().launch_shards()
        finally:
            self._launching = False

    async def launch_shard(
        self, gateway: yarl.URL, shard_id: int, *, initial: bool = False
    ) -> None:
        """Connect one shard; a failure is raised, not retried here.

        discord.py's own ``launch_shard`` retries a failed connect every 5 s forever
        (a traceback each time), so a gateway that is down at start would never
        reach the runner, which owns retries: its backoff, a stop request at any
        moment, "not reachable yet" at start-up.  Otherwise the same steps: connect,
        then keep reading this shard while the next one connects.
        """
        coro = DiscordWebSocket.from_client(
            self, initial=initial, gateway=gateway, shard_id=shard_id
        )
        ws = await asyncio.wait_for(coro, timeout=self.shard_connect_timeout)
        # AutoShardedClient keeps its shards and event queue in private attributes
        # with no public setter; discord.py is pinned by the lock file.
        shard = Shard(ws, self, self._AutoShardedClient__queue.put_nowait)  # type: ignore[attr-defined]
        self._AutoShardedClient__shards[shard_id] = shard  # type: ignore[attr-defined]
        shard.launch()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """While the shards launch, wait only as long as Discord's IDENTIFY limit
        asks (one per bucket per 5 s); discord.py's default sleeps 5 s before every
        IDENTIFY but the first, so N shards would take 5·(N-1) s even where Discord
        takes 16 at once.  Later re-IDENTIFYs keep discord.py's pause."""
        if shard_id is None or not self._launching:
            await super().before_identify_hook(shard_id, initial=initial)
            return
        bucket = shard_id % self._identify_concurrency
        last = self._identified_at.get(bucket)
        if last is not None:
            wait = IDENTIFY_WINDOW_S - (time.monotonic() - last)
            if wait > 0:
                await asyncio.sleep(wait)
        self._identified_at[bucket] = time.monotonic()

    def shard_status(self) -> list[dict[str, Any]]:
        """This process's shards: id, open or not, heartbeat latency in ms (None
        before the first ACK), and how many guilds each holds."""
        guilds: dict[int, int] = {}
        for guild in self.guilds:
            guilds[guild.shard_id] = guilds.get(guild.shard_id, 0) + 1
        out = []
        for shard_id, info in sorted(self.shards.items()):
            latency = info.latency
            out.append(
                {
                    "id": shard_id,
                    "count": self.shard_count,
                    "open": not info.is_closed(),
                    # inf before the first heartbeat ACK, nan without a websocket
                    "latency_ms": round(latency * 1000) if math.isfinite(latency) else None,
                    "guilds": guilds.get(shard_id, 0),
                }
            )
        return out

    # ----------------------------------------------------------------- lifecycle

    async def setup_hook(self) -> None:
        # login() awaits this before the gateway connect: registering the slash
        # commands (a REST round trip) must not delay IDENTIFY, so it runs beside it.
        self._sync_task = asyncio.create_task(self._sync_commands(), name="discord-command-sync")

    async def _sync_commands(self) -> None:
        await self.wait_for_pipeline()  # the command tree is built with the pipeline
        if self.tree is None:
            return
        # Overwrites the global command list; idempotent, so safe on every start.
        try:
            await self.tree.sync()
        except discord.HTTPException as exc:
            log.warning("could not register slash commands: %s", exc)
        except (OSError, aiohttp.ClientError) as exc:
            log.warning("could not register slash commands (%s); they register on reconnect", exc)

    async def wait_for_pipeline(self) -> bool:
        """True once the conversation pipeline is attached (waits for it while starting)."""
        if self.conversation is None and self._await_pipeline:
            await self._pipeline_ready.wait()
        return self.conversation is not None

    async def on_message(self, message: discord.Message) -> None:
        if await self.wait_for_pipeline():
            assert self.conversation is not None
            await self.conversation.on_message(message)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        # Slash commands go to self.tree; our buttons are answered by custom_id.
        if self.tree is None:
            # Still starting (a second or two): there is no command tree to answer yet.
            with contextlib.suppress(discord.HTTPException):
                await interaction.response.send_message(
                    "Clara is still starting; try again in a moment.", ephemeral=True
                )
            return
        if (
            interaction.type is discord.InteractionType.component
            and self.memory_commands is not None
        ):
            await self.memory_commands.on_component(interaction)

    async def close(self) -> None:
        if self._sync_task is not None and not self._sync_task.done():
            self._sync_task.cancel()
        if self.log_mirror is not None and self.log_mirror.started and not self.is_closed():
            self.log_mirror.event("stopping")
            await self.log_mirror.flush()
            await self.log_mirror.stop()
        if self.catch_up is not None:
            await self.catch_up.close()
        if self.conversation is not None:
            await self.conversation.close()
        await super().close()
        if self.request_budget is not None and self._owns_budget:
            await self.request_budget.aclose()

    async def on_ready(self) -> None:
        assert self.user is not None
        first = self.ready_since is None
        if first:
            self.ready_since = time.monotonic()
        log.info(
            "connected to Discord as %s (id %s) in %d server(s)",
            self.user,
            self.user.id,
            len(self.guilds),
        )
        if first:
            # DISCORD_CLIENT_ID (spec: "for invite link generation"), else the
            # application Discord named in READY: the link to add Clara to a server.
            client_id = (
                self.settings.discord_client_id if self.settings is not None else None
            ) or self.application_id
            if client_id:
                log.info("invite link: %s", invite_url(client_id))
        if self.conversation is not None or not self._await_pipeline:
            self._start_log_mirror()
        if self._on_connected is not None:
            self._on_connected()

    async def on_shard_connect(self, shard_id: int) -> None:
        if self.catch_up is not None:
            self.catch_up.shard_connected(shard_id)

    async def on_shard_ready(self, shard_id: int) -> None:
        if self.catch_up is not None:
            self.catch_up.shard_ready(shard_id)

    async def on_resumed(self) -> None:
        log.info("Discord session resumed")
        if self.log_mirror is not None and self.log_mirror.started:
            self.log_mirror.event("resumed")

    async def on_disconnect(self) -> None:
        if not self.is_closed():
            log.warning("disconnected from Discord; reconnecting")
            if self.log_mirror is not None and self.log_mirror.started:
                self.log_mirror.event("disconnected")


class _Stopped(Exception):
    """close() was called while connecting or waiting."""


def _request_budget(settings: Settings) -> GlobalBudget:
    """The global request budget: shared by every process on the bot token through
    Redis when there is one (DISCORD_SHARED_BUDGET), else this process's own."""
    rate = settings.discord_global_requests_per_second
    token = settings.discord_bot_token
    if not (settings.discord_shared_budget and settings.redis_url and token):
        return GlobalBudget(rate)
    # Imported here: redis stays off the gateway connect path of a process with
    # no shared budget (tests/unit/test_startup_imports.py).
    from storage.rate_budget import RedisRateBudget, budget_key

    # Until the first heartbeat counts the processes, guess from the shard split
    # (each process runs the same number of shards): the fallback share if Redis
    # is down from the start.
    hint = 1
    if settings.discord_shard_count and settings.discord_shard_ids:
        hint = math.ceil(settings.discord_shard_count / len(settings.discord_shard_ids))
    shared = RedisRateBudget.from_url(
        settings.redis_url.get_secret_value(),
        timeout=settings.discord_shared_budget_timeout_ms / 1000,
    )
    return GlobalBudget(
        rate, shared=shared, key=budget_key(token.get_secret_value()), processes_hint=hint
    )


class DiscordRunner:
    """Owns the connection loop; ``run()`` returns after ``close()``, raises ConfigError
    for what no retry can fix (rejected token, missing intent)."""

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
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
        status_file: Path | None = None,
    ) -> None:
        self.settings = settings
        #: Where this process's shards and their latency are published for
        #: ``--status`` (None: not published).
        self.status_file = status_file
        self._status_now = asyncio.Event()
        self.runner = runner
        self.preferences = preferences
        self.sessions = sessions
        self.channel_summaries = channel_summaries
        self.memory = memory
        self.engine = engine
        self.forget_confirm_timeout = forget_confirm_timeout
        self.activity_sink: Callable[..., None] | None = None  # the monitor's, when it runs
        self.client_factory = client_factory or ClaraDiscordClient
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.client: ClaraDiscordClient | None = None
        self.connected = asyncio.Event()
        self.attempts = 0
        #: Resolved by the first outcome: None once the gateway session is up, or a
        #: sentence when Discord could not be reached yet (the runner keeps trying).
        #: A fatal error is raised by ``run()`` instead.
        self.first_outcome: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._pipeline_attached = runner is not None
        self.user_data_stores: Mapping[str, Any] | None = None
        #: Discord's global request budget for this process's lifetime, shared by
        #: every client ``run()`` builds: a reconnect must not open another Redis
        #: connection, nor join the shared budget as one more process (its
        #: heartbeat member would count for HEARTBEAT_TTL and shrink every
        #: process's fallback share).  Built by ``run()``, closed when it returns.
        self.request_budget: GlobalBudget | None = None

    @property
    def _stopping(self) -> bool:
        return self._stop.is_set()

    def attach(
        self,
        runner: TurnRunner,
        *,
        preferences: Preferences | None = None,
        sessions: SessionStore | None = None,
        channel_summaries: ChannelSummaryStore | None = None,
        memory: MemoryManager | None = None,
        engine: AsyncEngine | None = None,
        user_data_stores: Mapping[str, Any] | None = None,
    ) -> None:
        """The pipeline is ready: the current client and every later one handle messages."""
        self.runner = runner
        self.user_data_stores = user_data_stores
        self.preferences = preferences
        self.sessions = sessions
        self.channel_summaries = channel_summaries
        self.memory = memory
        self.engine = engine
        self._pipeline_attached = True
        if self.client is not None and not self.client.is_closed():
            self.client.attach(
                runner,
                preferences=preferences,
                sessions=sessions,
                channel_summaries=channel_summaries,
                memory=memory,
                engine=engine,
                activity_sink=self.activity_sink,
                user_data_stores=user_data_stores,
            )

    def _on_connected(self) -> None:
        self._status_now.set()
        self.connected.set()
        if not self.first_outcome.done():
            self.first_outcome.set_result(None)

    def _new_client(self) -> ClaraDiscordClient:
        attached = self._pipeline_attached
        client = self.client_factory(
            on_connected=self._on_connected,
            runner=self.runner if attached else None,
            settings=self.settings,
            preferences=self.preferences,
            sessions=self.sessions,
            channel_summaries=self.channel_summaries,
            memory=self.memory,
            engine=self.engine,
            forget_confirm_timeout=self.forget_confirm_timeout,
            await_pipeline=not attached,
            user_data_stores=self.user_data_stores,
            request_budget=self.request_budget,
        )
        if client.conversation is not None:
            client.conversation.activity_sink = self.activity_sink
        return client

    async def run(self) -> None:
        """Connect, and reconnect after failures, until ``close()`` is called."""
        token = self.settings.discord_bot_token
        assert token is not None, "checked by Settings.missing_for_discord()"
        configure_discord_endpoints(
            self.settings.discord_api_base, self.settings.discord_gateway_url
        )
        discord_client_log = logging.getLogger("discord.client")
        if _RETRY_FILTER not in discord_client_log.filters:
            discord_client_log.addFilter(_RETRY_FILTER)
        delay = self.initial_backoff
        if self.request_budget is None:
            self.request_budget = _request_budget(self.settings)
        publisher = (
            asyncio.create_task(self._publish_shard_status(), name="discord-shard-status")
            if self.status_file is not None
            else None
        )
        try:
            while not self._stopping:
                self.attempts += 1
                self.client = client = self._new_client()
                try:
                    await self._until_stopped(self._session(client, token.get_secret_value()))
                    break  # connect() returned: the client was closed
                except _Stopped:
                    break
                except Exception as exc:  # anything but a fatal error is retried
                    fatal = _fatal_problem(exc)
                    if fatal is not None:
                        self._fail(fatal)
                    if self._stopping:
                        break
                    if (
                        client.ready_since is not None
                        and time.monotonic() - client.ready_since >= STABLE_SESSION_S
                    ):
                        delay = self.initial_backoff  # it worked for a while: a new incident
                    wait = min(delay, self.max_backoff) * random.uniform(0.8, 1.2)
                    cause = _network_cause(exc)
                    self._log_retry(exc, cause, wait)
                    if not self.first_outcome.done():
                        self.first_outcome.set_result(
                            f"Discord is not reachable yet ({_describe(cause or exc)}); "
                            "Clara keeps retrying in the background"
                        )
                    await self._close_client()
                    if await self._wait_or_stop(wait):
                        break
                    delay = min(delay * 2, self.max_backoff)
        finally:
            if publisher is not None:
                publisher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await publisher
                await asyncio.to_thread(_remove_quietly, self.status_file)
            await self._close_client()
            if self.request_budget is not None:
                # After the client: its last requests release their places first.
                await self.request_budget.aclose()
                self.request_budget = None
            if not self.first_outcome.done():
                self.first_outcome.cancel()

    def shard_snapshot(self) -> dict[str, Any]:
        """This process's shards for ``--status`` and the monitor: the count, and per
        shard its id, whether its websocket is open, latency (ms) and server count."""
        client = self.client
        live = client is not None and client.is_ready() and not client.is_closed()
        return {
            "pid": os.getpid(),
            "at": time.time(),
            "shard_count": client.shard_count if client is not None else None,
            "shards": client.shard_status() if live and client is not None else [],
        }

    async def _publish_shard_status(self) -> None:
        assert self.status_file is not None
        while True:
            try:
                await asyncio.to_thread(_write_json, self.status_file, self.shard_snapshot())
            except OSError as exc:  # a full or read-only disk must not stop Discord
                log.debug("could not write %s: %s", self.status_file, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status_now.wait(), SHARD_STATUS_INTERVAL_S)
            self._status_now.clear()

    async def _session(self, client: ClaraDiscordClient, token: str) -> None:
        await client.login(token)
        await client.connect(reconnect=True)

    async def _until_stopped(self, coro) -> None:
        """Run ``coro``; on a stop request close the client and, if discord.py is
        still sleeping in its own backoff after a grace period, cancel it."""
        task = asyncio.ensure_future(coro)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            stop.cancel()
        if task.done():
            task.result()
            return
        await self._close_client()
        done, _ = await asyncio.wait({task}, timeout=CLOSE_GRACE_S)
        if not done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise _Stopped

    async def _wait_or_stop(self, seconds: float) -> bool:
        """Sleep ``seconds``; True if a stop request ended the wait early."""
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    def _fail(self, problem: str) -> None:
        error = ConfigError([problem], headline="Clara could not log in to Discord:")
        if not self.first_outcome.done():
            self.first_outcome.set_exception(error)
            self.first_outcome.exception()  # retrieved here: run() raises it too
        raise error from None

    def _log_retry(self, exc: BaseException, cause: BaseException | None, wait: float) -> None:
        if cause is not None:
            log.warning("cannot reach Discord (%s); retrying in %.0fs", _describe(cause), wait)
        else:
            log.warning(
                "Discord connection failed unexpectedly (%s); reconnecting in %.0fs",
                _describe(exc),
                wait,
                exc_info=exc,
            )

    async def _close_client(self) -> None:
        client = self.client
        if client is not None and not client.is_closed():
            try:
                await asyncio.wait_for(client.close(), timeout=CLOSE_GRACE_S)
            except Exception as exc:  # a broken client must not block shutdown
                log.debug("closing the Discord client failed: %s", exc)

    async def close(self) -> None:
        self._stop.set()
        await self._close_client()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _remove_quietly(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def _fatal_problem(exc: BaseException) -> str | None:
    """The user-facing problem for errors no retry can fix, else None."""
    if isinstance(exc, discord.LoginFailure):
        return (
            "DISCORD_BOT_TOKEN was rejected by Discord (401 Unauthorized): reset the "
            "token in the Developer Portal (Bot > Reset Token) and set it again."
        )
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return FATAL_CLOSE_CODES[4014]
    if isinstance(exc, discord.ConnectionClosed) and exc.code in FATAL_CLOSE_CODES:
        return FATAL_CLOSE_CODES[exc.code]
    return None


def _network_cause(exc: BaseException) -> BaseException | None:
    """The network failure behind ``exc``, if that is what it is.

    When the first gateway connection fails, discord.py catches the network error
    and its reconnect path then raises ``AttributeError`` (no websocket to resume):
    the real cause is the exception it was handling.
    """
    if isinstance(exc, NETWORK_ERRORS):
        return exc
    if isinstance(exc, AttributeError) and isinstance(exc.__context__, NETWORK_ERRORS):
        return exc.__context__
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
