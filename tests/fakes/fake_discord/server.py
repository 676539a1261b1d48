"""``FakeDiscord``: a loopback Discord (REST + gateway) for end-to-end tests.

The real, unmodified discord.py client connects to it once
``configure_discord_endpoints(fake.api_base, fake.gateway_url)`` has pointed
discord.py at it.  Tests then play the human side (``send_message``,
``send_slash_command``, ...) and inspect what the bot did (``requests``,
``messages_in``, ``message_history``, ``rate_limited_count``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiohttp import web

from . import payloads
from .config import FakeDiscordConfig, Intents
from .errors import BASE_HEADERS, DiscordAPIError
from .gateway import Gateway, GatewayConnection, GatewaySession, shard_for_guild
from .interactions import interaction_payload
from .models import (
    ChannelType,
    FakeAttachment,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    InteractionType,
    MessageFlags,
)
from .ratelimit import RateLimiter, RateLimitStats
from .rest import Malformed, RecordedRequest, RestApi
from .routes import ROUTE_KINDS, ROUTES
from .snowflake import iso_timestamp
from .state import FakeState, FakeVoiceState
from .voice_gateway import FakeVoice, voice_state_payload

#: ``(filename, data)``, ``(filename, data, content_type)``, or with a fourth item, a
#: dict of attachment fields such as a voice message's ``duration_secs`` / ``waveform``.
AttachmentSpec = tuple[str, bytes] | tuple[str, bytes, str] | tuple[str, bytes, str, dict[str, Any]]


class FakeDiscord:
    """A Discord API v10 server on 127.0.0.1 for discord.py to talk to.

    ``config`` or keyword overrides (any :class:`FakeDiscordConfig` field) tune
    the limits, e.g. ``FakeDiscord(heartbeat_interval_ms=500, message_rate_window=1.0)``.
    """

    def __init__(
        self,
        *,
        bot_username: str = "Clara",
        bot_id: int | None = None,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        config: FakeDiscordConfig | None = None,
        **config_overrides: Any,
    ) -> None:
        self.config = dataclasses.replace(config) if config else FakeDiscordConfig()
        for name, value in config_overrides.items():
            if not hasattr(self.config, name):
                raise TypeError(f"unknown FakeDiscord option {name!r}")
            setattr(self.config, name, value)
        self.state = FakeState(bot_username=bot_username, bot_id=bot_id, token=token)
        self.limiter = RateLimiter(self.config)
        self.gateway = Gateway(self.state, self.config)
        #: The voice server (voice gateway on its own TLS port + UDP), see voice_gateway.py.
        self.voice = FakeVoice(host)
        self.gateway.on_voice_state_update = self._bot_voice_state_update
        self.rest = RestApi(self, ROUTES)
        #: ``(channel_id, time.monotonic())`` for every typing request the bot made.
        self.typing_events: list[tuple[int, float]] = []
        self._nonces: dict[tuple[int, str], tuple[int, float]] = {}
        self._sharded_ids = 0
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> FakeDiscord:
        if self._runner is not None:
            raise RuntimeError("FakeDiscord already started")
        app = web.Application(client_max_size=self.config.attachment_size_limit * 4 + (8 << 20))
        self.rest.install(app)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/gateway-resume", self.gateway.handle)
        app.router.add_get(
            "/attachments/{channel_id}/{attachment_id}/{filename}", self._serve_attachment
        )
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._requested_port)
        await site.start()
        self._runner = runner
        self._port = runner.addresses[0][1]
        self.gateway.resume_gateway_url = f"ws://{self._host}:{self._port}/gateway-resume"
        await self.voice.start()
        return self

    async def stop(self) -> None:
        if self._runner is None:
            return
        await self.gateway.close()
        await self.voice.stop()
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (attachments are served under it)."""
        return f"http://{self._host}:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self._host}:{self.port}/gateway"

    # ---------------------------------------------------------------- model

    @property
    def bot(self) -> FakeUser:
        return self.state.bot

    @property
    def token(self) -> str:
        return self.state.token

    @property
    def application_id(self) -> int:
        return self.state.application_id

    @property
    def guilds(self) -> dict[int, FakeGuild]:
        return self.state.guilds

    @property
    def users(self) -> dict[int, FakeUser]:
        return self.state.users

    def add_user(
        self,
        username: str,
        *,
        global_name: str | None = None,
        bot: bool = False,
        user_id: int | None = None,
        dms_open: bool = True,
    ) -> FakeUser:
        return self.state.add_user(
            username, global_name=global_name, bot=bot, user_id=user_id, dms_open=dms_open
        )

    def add_guild(
        self,
        name: str = "Test Guild",
        *,
        owner_id: int | None = None,
        guild_id: int | None = None,
        channels: Iterable[str] = ("general",),
        members: Iterable[int] = (),
    ) -> FakeGuild:
        """A guild with @everyone, the bot (as a member with its managed role), the
        owner, ``members`` and a text channel per name in ``channels``.  Connected
        sessions get GUILD_CREATE."""
        guild = self.state.add_guild(name, owner_id=owner_id, guild_id=guild_id, channels=channels)
        for user_id in members:
            if user_id not in guild.members:
                self.state.add_member(guild.id, user_id)
        self.gateway.dispatch(
            "GUILD_CREATE",
            lambda session: self.gateway.guild_create_payload(session, guild.id),
            intent=Intents.GUILDS,
            guild_id=guild.id,
        )
        return guild

    shard_for_guild = staticmethod(shard_for_guild)

    def guild_id_for_shard(self, shard_id: int, shard_count: int) -> int:
        """A fresh guild id (a snowflake of about now) that shard ``shard_id`` of
        ``shard_count`` owns; pass it to ``add_guild(guild_id=...)``."""
        if not 0 <= shard_id < shard_count:
            raise ValueError(f"shard {shard_id} is not in 0..{shard_count - 1}")
        stamp = self.state.new_id() >> 22
        stamp += (shard_id - stamp) % shard_count
        self._sharded_ids += 1
        # Worker/process 31 never collide with the generator's own ids (worker 1).
        return (stamp << 22) | (31 << 17) | (31 << 12) | (self._sharded_ids & 0xFFF)

    def sessions_on_shard(self, shard_id: int | None) -> list[GatewaySession]:
        """Live gateway sessions IDENTIFYed as ``shard_id`` (None: unsharded)."""
        return [
            s
            for s in self.gateway.live_sessions()
            if (s.shard[0] if s.shard is not None else None) == shard_id
        ]

    def add_channel(
        self,
        guild_id: int,
        name: str,
        *,
        type: ChannelType = ChannelType.GUILD_TEXT,
        topic: str | None = None,
        parent_id: int | None = None,
        nsfw: bool = False,
    ) -> FakeChannel:
        channel = self.state.add_channel(
            guild_id, name, type=type, topic=topic, parent_id=parent_id, nsfw=nsfw
        )
        self.gateway.dispatch(
            "CHANNEL_CREATE",
            payloads.channel_payload(self.state, channel),
            intent=Intents.GUILDS,
            guild_id=guild_id,
        )
        return channel

    def add_role(
        self,
        guild_id: int,
        name: str,
        *,
        permissions: int = 0,
        color: int = 0,
        hoist: bool = False,
        mentionable: bool = False,
    ) -> FakeRole:
        role = self.state.add_role(
            guild_id,
            name,
            permissions=permissions,
            color=color,
            hoist=hoist,
            mentionable=mentionable,
        )
        self.gateway.dispatch(
            "GUILD_ROLE_CREATE",
            {"guild_id": str(guild_id), "role": payloads.role_payload(role)},
            intent=Intents.GUILDS,
            guild_id=guild_id,
        )
        return role

    def add_member(
        self,
        guild_id: int,
        user_id: int,
        *,
        roles: Iterable[int] = (),
        nick: str | None = None,
    ) -> FakeMember:
        member = self.state.add_member(guild_id, user_id, roles=roles, nick=nick)
        self.gateway.dispatch(
            "GUILD_MEMBER_ADD",
            {**payloads.member_payload(self.state, member), "guild_id": str(guild_id)},
            intent=Intents.GUILD_MEMBERS,
            guild_id=guild_id,
        )
        return member

    def create_thread(
        self,
        channel_id: int,
        name: str,
        *,
        starter_message_id: int | None = None,
        owner_id: int | None = None,
        auto_archive_duration: int = 1440,
    ) -> FakeChannel:
        """A user starts a public thread under a text channel.

        From a message (``starter_message_id``), the thread's id is that message's
        id and the message gets ``HAS_THREAD`` plus a ``thread`` field, as on
        Discord; no message is posted inside the thread.  Dispatches THREAD_CREATE
        (``newly_created``) and, for a starter message, its MESSAGE_UPDATE.  Post in
        the thread with ``send_message(thread.id, ...)``."""
        thread = self.state.add_thread(
            channel_id,
            name,
            starter_message_id=starter_message_id,
            owner_id=owner_id,
            auto_archive_duration=auto_archive_duration,
        )
        self.dispatch_thread_create(thread)
        return thread

    def dispatch_thread_create(self, thread: FakeChannel) -> None:
        self.gateway.dispatch(
            "THREAD_CREATE",
            {**payloads.thread_payload(thread), "newly_created": True},
            intent=Intents.GUILDS,
            guild_id=thread.guild_id,
        )
        if thread.starter_message_id is not None:
            self.dispatch_message("MESSAGE_UPDATE", self.state.messages[thread.starter_message_id])

    def add_dm_channel(self, user_id: int) -> FakeChannel:
        """The bot's DM channel with ``user_id`` (Discord sends no event for it)."""
        return self.state.add_dm_channel(user_id)

    # ------------------------------------------------------------------ voice

    def add_voice_channel(self, guild_id: int, name: str = "Lounge") -> FakeChannel:
        """A guild voice channel (type 2); connected sessions get CHANNEL_CREATE."""
        return self.add_channel(guild_id, name, type=ChannelType.GUILD_VOICE)

    def join_voice(
        self, channel_id: int, user_id: int, *, self_mute: bool = False, self_deaf: bool = False
    ) -> FakeVoiceState:
        """A user joins (or moves to) a voice channel: dispatch VOICE_STATE_UPDATE."""
        channel = self.state.channel(channel_id)
        assert channel.guild_id is not None
        voice = self.state.set_voice_state(
            channel.guild_id, user_id, channel.id, self_mute=self_mute, self_deaf=self_deaf
        )
        assert voice is not None
        self._dispatch_voice_state(channel.guild_id, user_id, voice)
        return voice

    def leave_voice(self, guild_id: int, user_id: int) -> None:
        """A user leaves voice: dispatch VOICE_STATE_UPDATE with ``channel_id`` null."""
        previous = self.state.voice_states.get(guild_id, {}).get(user_id)
        self.state.set_voice_state(guild_id, user_id, None)
        self._dispatch_voice_state(
            guild_id, user_id, None, session_id=previous.session_id if previous else None
        )

    def voice_members(self, channel_id: int) -> list[int]:
        """Who is in a voice channel now (user ids, the bot included)."""
        return self.state.voice_members(channel_id)

    def bot_voice_channel(self, guild_id: int) -> int | None:
        voice = self.state.voice_states.get(guild_id, {}).get(self.state.bot.id)
        return voice.channel_id if voice is not None else None

    def _dispatch_voice_state(
        self,
        guild_id: int,
        user_id: int,
        voice: FakeVoiceState | None,
        *,
        session_id: str | None = None,
    ) -> None:
        self.gateway.dispatch(
            "VOICE_STATE_UPDATE",
            voice_state_payload(self.state, guild_id, user_id, voice, session_id=session_id),
            intent=Intents.GUILD_VOICE_STATES,
            guild_id=guild_id,
        )

    def _bot_voice_state_update(self, session: GatewaySession, data: dict[str, Any]) -> None:
        """Op 4 from the bot: join, move or leave, as Discord answers it.

        Joining gets VOICE_STATE_UPDATE (everyone with the intent; the voice
        ``session_id`` is the gateway session's) and VOICE_SERVER_UPDATE (this
        session only: a fresh token and the voice server's endpoint).  Leaving
        (``channel_id`` null) gets VOICE_STATE_UPDATE with ``channel_id`` null."""
        bot_id = self.state.bot.id
        try:
            guild_id = int(data["guild_id"])
            self.state.guild(guild_id)
        except (KeyError, TypeError, ValueError, DiscordAPIError):
            self.voice.protocol_errors.append(f"op 4 for an unknown guild: {data!r}")
            return
        if not session.handles_guild(guild_id):
            # Discord takes op 4 only on the shard that owns the guild.
            self.voice.protocol_errors.append(
                f"op 4 for guild {guild_id} on shard {session.shard}, which does not own it"
            )
            return
        channel_id = data.get("channel_id")
        if channel_id is None:
            previous = self.state.voice_states.get(guild_id, {}).get(bot_id)
            self.state.set_voice_state(guild_id, bot_id, None)
            self.voice.revoke(guild_id, bot_id)
            self._dispatch_voice_state(
                guild_id, bot_id, None, session_id=previous.session_id if previous else session.id
            )
            return
        try:
            voice = self.state.set_voice_state(
                guild_id,
                bot_id,
                int(channel_id),
                session_id=session.id,
                self_mute=bool(data.get("self_mute")),
                self_deaf=bool(data.get("self_deaf")),
            )
        except (TypeError, ValueError, DiscordAPIError):
            self.voice.protocol_errors.append(f"op 4 for a channel that is not voice: {data!r}")
            return
        assert voice is not None
        self._dispatch_voice_state(guild_id, bot_id, voice)
        grant = self.voice.grant(guild_id, bot_id, voice.channel_id, voice.session_id)
        session.push(
            "VOICE_SERVER_UPDATE",
            {"token": grant.token, "guild_id": str(guild_id), "endpoint": self.voice.endpoint},
        )

    # ------------------------------------------------- messages (human side)

    async def send_message(
        self,
        channel_id: int,
        author_id: int,
        content: str = "",
        *,
        reference_message_id: int | None = None,
        mentions: Iterable[int | FakeUser] | None = None,
        attachments: Sequence[AttachmentSpec] | None = None,
        embeds: list[dict[str, Any]] | None = None,
        mention_author: bool = True,
        flags: int = 0,
    ) -> FakeMessage:
        """A user posts a message: store it and dispatch MESSAGE_CREATE.

        ``mentions`` adds to the ``<@id>`` mentions parsed from ``content``; a reply
        (``reference_message_id``) also mentions the replied-to author unless
        ``mention_author=False``, like the Discord client's reply ping.
        """
        channel = self.state.channel(channel_id)
        author = self.state.user(author_id)
        if (
            channel.guild_id is not None
            and author.id not in self.state.guilds[channel.guild_id].members
        ):
            raise ValueError(f"user {author.id} is not a member of guild {channel.guild_id}")
        if channel.is_dm and author.id not in channel.recipient_ids:
            raise ValueError(f"user {author.id} is not a recipient of DM channel {channel.id}")

        user_ids, role_ids, everyone = self.state.mentions_in(content)
        for extra in mentions or ():
            user_ids.append(extra.id if isinstance(extra, FakeUser) else int(extra))
        reference = None
        if reference_message_id is not None:
            referenced = self.state.message(channel.id, reference_message_id)
            reference = self.state.reference_for(channel, referenced.id)
            if mention_author and referenced.author_id != author.id:
                user_ids.append(referenced.author_id)
        stored: list[FakeAttachment] = []
        for spec in attachments or ():
            filename, data = spec[0], spec[1]
            content_type = spec[2] if len(spec) > 2 else None  # type: ignore[misc]
            attachment = self.state.store_attachment(
                channel.id, filename, data, base_url=self.base_url, content_type=content_type
            )
            # Voice-message metadata (duration_secs, waveform), as the Discord client sets it.
            for key, value in (spec[3] if len(spec) > 3 else {}).items():  # type: ignore[misc]
                setattr(attachment, key, value)
            stored.append(attachment)
        message = self.state.store_message(
            channel,
            author.id,
            content,
            embeds=embeds,
            attachments=stored,
            mention_ids=user_ids,
            mention_role_ids=role_ids,
            mention_everyone=everyone,
            reference=reference,
            flags=flags,
        )
        self.dispatch_message("MESSAGE_CREATE", message)
        return message

    async def send_voice_message(
        self,
        channel_id: int,
        author_id: int,
        ogg: bytes,
        *,
        duration_secs: float,
        waveform: str,
        reference_message_id: int | None = None,
    ) -> FakeMessage:
        """A user records a voice message: no text, one Ogg/Opus attachment carrying
        ``duration_secs`` and ``waveform``, and the IS_VOICE_MESSAGE flag, as the
        Discord client sends it."""
        return await self.send_message(
            channel_id,
            author_id,
            "",
            reference_message_id=reference_message_id,
            attachments=[
                (
                    "voice-message.ogg",
                    ogg,
                    "audio/ogg",
                    {"duration_secs": duration_secs, "waveform": waveform},
                )
            ],
            flags=int(MessageFlags.IS_VOICE_MESSAGE),
        )

    async def edit_user_message(self, message_id: int, content: str) -> FakeMessage:
        """A user edits their message: dispatch MESSAGE_UPDATE."""
        message = self.get_message(message_id)
        message.content = content
        message.mention_ids, message.mention_role_ids, message.mention_everyone = (
            self.state.mentions_in(content)
        )
        message.edited_timestamp = iso_timestamp()
        message.record_revision()
        self.dispatch_message("MESSAGE_UPDATE", message)
        return message

    async def delete_user_message(self, message_id: int) -> None:
        """Someone deletes a message: dispatch MESSAGE_DELETE."""
        self.delete_stored_message(self.get_message(message_id))

    async def send_typing(self, channel_id: int, user_id: int) -> None:
        """A user starts typing: dispatch TYPING_START."""
        channel = self.state.channel(channel_id)
        data: dict[str, Any] = {
            "channel_id": str(channel.id),
            "user_id": str(user_id),
            "timestamp": int(time.time()),
        }
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
            member = self.state.member(channel.guild_id, user_id)
            data["member"] = payloads.member_payload(self.state, member)
        self.gateway.dispatch(
            "TYPING_START",
            data,
            intent=Intents.GUILD_MESSAGE_TYPING
            if channel.guild_id
            else Intents.DIRECT_MESSAGE_TYPING,
            guild_id=channel.guild_id,
        )

    # --------------------------------------------------------- interactions

    async def send_slash_command(
        self,
        channel_id: int,
        user_id: int,
        name: str,
        options: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> FakeInteraction:
        """A user runs ``/name``: dispatch INTERACTION_CREATE.  The command must have
        been registered (e.g. ``tree.sync()``), as on Discord.  ``options`` is
        ``{"name": value}`` (type inferred) or raw option dicts."""
        channel = self.state.channel(channel_id)
        candidates = [
            c
            for c in self.state.commands.values()
            if c.name == name
            and c.data.get("type", 1) == 1
            and c.guild_id in (None, channel.guild_id)
        ]
        if not candidates:
            raise LookupError(f"slash command /{name} is not registered with the fake")
        command = sorted(candidates, key=lambda c: c.guild_id is None)[0]
        data: dict[str, Any] = {
            "id": str(command.id),
            "name": name,
            "type": 1,
            "options": _option_payloads(options),
        }
        if command.guild_id is not None:
            data["guild_id"] = str(command.guild_id)
        return self._create_interaction(InteractionType.APPLICATION_COMMAND, channel, user_id, data)

    async def click_component(
        self,
        message_id: int,
        custom_id: str,
        user_id: int,
        *,
        component_type: int = 2,
        values: list[str] | None = None,
    ) -> FakeInteraction:
        """A user clicks a button (or picks ``values`` in a select) on a message."""
        message = self.get_message(message_id)
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = values
        return self._create_interaction(
            InteractionType.MESSAGE_COMPONENT,
            self.state.channel(message.channel_id),
            user_id,
            data,
            message_id=message.id,
        )

    def _create_interaction(
        self,
        type: InteractionType,
        channel: FakeChannel,
        user_id: int,
        data: dict[str, Any],
        *,
        message_id: int | None = None,
    ) -> FakeInteraction:
        interaction = FakeInteraction(
            id=self.state.new_id(),
            token=f"aW50ZXJhY3Rpb24.{secrets.token_urlsafe(48)}",
            type=type,
            application_id=self.state.application_id,
            channel_id=channel.id,
            user_id=self.state.user(user_id).id,
            data=data,
            guild_id=channel.guild_id,
            message_id=message_id,
        )
        self.state.interactions[interaction.id] = interaction
        self.gateway.dispatch(
            "INTERACTION_CREATE",
            interaction_payload(self, interaction),
            guild_id=channel.guild_id,
        )
        return interaction

    # ------------------------------------------------------------- dispatch

    def _session_can_read(self, session: GatewaySession, message: FakeMessage) -> bool:
        """The MESSAGE_CONTENT rule: without the intent, content is blank except in
        DMs, the bot's own messages and messages mentioning the bot."""
        return session.has_intent(Intents.MESSAGE_CONTENT) or self._content_exempt(message)

    def _content_exempt(self, message: FakeMessage) -> bool:
        return (
            message.guild_id is None
            or message.author_id == self.state.bot.id
            or self.state.bot.id in message.mention_ids
        )

    def rest_can_read(self, message: FakeMessage) -> bool:
        """REST reads follow the application's (portal) message-content setting."""
        return bool(
            self.config.privileged_intents & Intents.MESSAGE_CONTENT
        ) or self._content_exempt(message)

    def dispatch_message(self, event: str, message: FakeMessage) -> int:
        """Dispatch MESSAGE_CREATE / MESSAGE_UPDATE (ephemeral messages are not)."""
        if message.is_ephemeral:
            return 0

        def data_for(session: GatewaySession) -> dict[str, Any]:
            return payloads.message_payload(
                self.state,
                message,
                gateway=True,
                strip_content=not self._session_can_read(session, message),
            )

        return self.gateway.dispatch(
            event,
            data_for,
            intent=Intents.GUILD_MESSAGES if message.guild_id else Intents.DIRECT_MESSAGES,
            guild_id=message.guild_id,
        )

    def delete_stored_message(self, message: FakeMessage) -> None:
        """Mark deleted (kept for inspection) and dispatch MESSAGE_DELETE."""
        message.deleted = True
        message.deleted_at = time.monotonic()
        if message.is_ephemeral:
            return
        data: dict[str, Any] = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        self.gateway.dispatch(
            "MESSAGE_DELETE",
            data,
            intent=Intents.GUILD_MESSAGES if message.guild_id else Intents.DIRECT_MESSAGES,
            guild_id=message.guild_id,
        )

    def find_recent_nonce(self, channel_id: int, nonce: Any) -> FakeMessage | None:
        found = self._nonces.get((channel_id, str(nonce)))
        if found is None or time.monotonic() - found[1] > self.config.nonce_window:
            return None
        message = self.state.messages.get(found[0])
        return None if message is None or message.deleted else message

    def note_nonce(self, message: FakeMessage) -> None:
        if message.nonce is not None:
            self._nonces[(message.channel_id, str(message.nonce))] = (message.id, time.monotonic())

    async def _serve_attachment(self, request: web.Request) -> web.StreamResponse:
        try:
            attachment = self.state.attachments[int(request.match_info["attachment_id"])]
        except (KeyError, ValueError):
            raise web.HTTPNotFound() from None
        if str(attachment.channel_id) != request.match_info["channel_id"]:
            raise web.HTTPNotFound()
        return web.Response(
            body=attachment.data,
            content_type=attachment.content_type or "application/octet-stream",
            headers=dict(BASE_HEADERS),
        )

    # ------------------------------------------------------ gateway control

    @property
    def gateway_connections(self) -> list[GatewayConnection]:
        """Every websocket so far, open or closed, oldest first."""
        return list(self.gateway.connections)

    @property
    def identify_count(self) -> int:
        return self.gateway.identify_count

    @property
    def resume_count(self) -> int:
        return self.gateway.resume_count

    @property
    def heartbeat_count(self) -> int:
        return self.gateway.heartbeat_count

    async def disconnect_all(self, code: int = 4000, reason: str = "") -> int:
        """Close every gateway websocket with ``code``.  4000 (default) keeps the
        sessions resumable, so discord.py RESUMEs; 1000/4004/4007/4009-4014 end them."""
        return await self.gateway.disconnect_all(code, reason)

    def drop_connections(self) -> int:
        """Abort every gateway TCP connection without a close frame."""
        return self.gateway.drop_all()

    def send_reconnect(self) -> int:
        """Send op 7 RECONNECT to every connection."""
        return self.gateway.send_reconnect()

    def invalidate_sessions(self, *, resumable: bool = False) -> int:
        """Send op 9 INVALID_SESSION (``resumable`` is its ``d``)."""
        return self.gateway.invalidate_sessions(resumable=resumable)

    async def flush(self) -> None:
        """Wait until every queued gateway frame has been written to its socket."""
        await self.gateway.flush()

    def refuse_gateway(self, refuse: bool = True, *, status: int = 503) -> None:
        """Gateway down (REST still up): new websocket upgrades get HTTP ``status``
        until ``refuse_gateway(False)``.  Open connections stay; drop them with
        :meth:`drop_connections` to cut an established session too."""
        self.gateway.refuse(status if refuse else None)

    # ---------------------------------------------------- malformed payloads

    def send_malformed_message_update(self, channel_id: int) -> int:
        """Dispatch a MESSAGE_UPDATE whose body is the wrong shape: ``reactions`` and
        ``mentions`` are numbers, ``author`` a string (discord.py 2.7's parser raises
        TypeError on ``reactions``).  Returns how many sessions got it."""
        channel = self.state.channel(channel_id)
        data: dict[str, Any] = {
            "id": str(self.state.new_id()),
            "channel_id": str(channel.id),
            "type": 0,
            "author": "not-a-user-object",
            "content": "edited",
            "reactions": 5,
            "mentions": 7,
            "attachments": [],
            "embeds": [],
            "edited_timestamp": iso_timestamp(),
        }
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
        return self.gateway.dispatch_raw("MESSAGE_UPDATE", data)

    def send_malformed_channel_update(self, guild_id: int) -> int:
        """Dispatch a CHANNEL_UPDATE without the channel's ``id`` (discord.py's
        parser raises KeyError).  Returns how many sessions got it."""
        data = {"guild_id": str(guild_id), "type": 0, "name": "renamed"}
        return self.gateway.dispatch_raw("CHANNEL_UPDATE", data)

    @property
    def gateway_refused_count(self) -> int:
        """Websocket upgrades refused by :meth:`refuse_gateway`."""
        return self.gateway.refused_count

    # ------------------------------------------------------ fault injection

    def inject_429(
        self,
        route_kind: str | None = None,
        count: int = 1,
        retry_after: float = 0.1,
        *,
        is_global: bool = False,
        channel_id: int | None = None,
    ) -> None:
        """Answer the next ``count`` requests of ``route_kind`` (None: any) with 429."""
        _check_kind(route_kind)
        self.limiter.inject_429(
            route_kind, count, retry_after, is_global=is_global, channel_id=channel_id
        )

    def inject_error(
        self,
        status: int,
        route_kind: str | None = None,
        count: int = 1,
        *,
        code: int = 0,
        message: str | None = None,
        channel_id: int | None = None,
    ) -> None:
        """Answer the next ``count`` requests of ``route_kind`` with ``status``.
        discord.py retries 500/502/504 (sleeping 1 s, 3 s, ...) and raises on others."""
        _check_kind(route_kind)
        self.limiter.inject_error(
            status, route_kind, count, code=code, message=message, channel_id=channel_id
        )

    def inject_malformed(
        self,
        route_kind: str | None,
        count: int = 1,
        *,
        drop: Sequence[str],
        channel_id: int | None = None,
    ) -> None:
        """Serve the next ``count`` successful ``route_kind`` requests normally, then
        strip the ``drop`` keys from the JSON answer (from every object of a list
        answer).  discord.py 2.7 raises KeyError for a message without ``content``,
        ``type`` or ``id``; one without ``author`` parses into a Message that has no
        ``.author`` (AttributeError on first use).  The server-side effect stays (an
        edit is applied), as when a parse error happens on the client."""
        _check_kind(route_kind)
        self.rest.malformed.append(Malformed(route_kind, count, tuple(drop), channel_id))

    # ------------------------------------------------------------ recording

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.rest.requests

    @property
    def unknown_routes(self) -> list[RecordedRequest]:
        return self.rest.unknown_routes

    @property
    def internal_errors(self) -> list[str]:
        return self.rest.internal_errors

    @property
    def rate_limited_count(self) -> RateLimitStats:
        """429s served: ``.injected``, ``.earned``, ``.earned_global``, ``.total``."""
        return self.limiter.stats

    def requests_for(self, route_kind: str, *, outcome: str | None = None) -> list[RecordedRequest]:
        _check_kind(route_kind)
        return [
            r
            for r in self.requests
            if r.route_kind == route_kind and (outcome is None or r.outcome == outcome)
        ]

    def get_message(self, message_id: int) -> FakeMessage:
        """Any stored message, deleted ones included."""
        try:
            return self.state.messages[int(message_id)]
        except KeyError:
            raise KeyError(f"no message {message_id}") from None

    def message_history(self, message_id: int) -> list[str]:
        """Every content the message had, in order (original first)."""
        return [r.content for r in self.get_message(message_id).revisions]

    def messages_in(self, channel_id: int, *, include_deleted: bool = False) -> list[FakeMessage]:
        """Messages of a channel, oldest first."""
        return [
            m
            for m in (
                self.state.messages[i] for i in self.state.channel_messages.get(channel_id, [])
            )
            if include_deleted or not m.deleted
        ]

    def bot_messages(self, channel_id: int, *, include_deleted: bool = False) -> list[FakeMessage]:
        return [
            m
            for m in self.messages_in(channel_id, include_deleted=include_deleted)
            if m.author_id == self.state.bot.id
        ]

    def assert_clean(self) -> None:
        """Fail if the bot called an unknown route or the fake itself crashed."""
        problems = [f"unknown route: {r.method} {r.path}" for r in self.unknown_routes]
        problems += [f"fake Discord internal error: {e}" for e in self.internal_errors]
        problems += [f"voice: {e}" for e in self.voice.protocol_errors + self.voice.udp_errors]
        if problems:
            raise AssertionError("\n".join(problems))

    async def wait_until(
        self,
        predicate: Callable[[], object],
        timeout: float = 5.0,
        *,
        interval: float = 0.01,
        what: str = "condition",
    ) -> None:
        """Poll ``predicate`` until truthy; ``TimeoutError`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake Discord: timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(interval)


def _check_kind(route_kind: str | None) -> None:
    if route_kind is not None and route_kind not in ROUTE_KINDS:
        raise ValueError(f"unknown route kind {route_kind!r}; known: {sorted(ROUTE_KINDS)}")


def _option_payloads(options: dict[str, Any] | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if options is None:
        return []
    if isinstance(options, list):
        return options
    result = []
    for name, value in options.items():
        if isinstance(value, bool):
            kind = 5
        elif isinstance(value, int):
            kind = 4
        elif isinstance(value, float):
            kind = 10
        else:
            kind, value = 3, str(value)
        result.append({"name": name, "type": kind, "value": value})
    return result
