"""Everything the fake Discord knows: users, guilds, channels, messages, commands.

:class:`FakeState` only stores and looks things up; it never talks to a socket.
The server (:mod:`.server`) mutates it and then dispatches gateway events.
"""

from __future__ import annotations

import base64
import mimetypes
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import errors
from .models import (
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    ChannelType,
    FakeAttachment,
    FakeChannel,
    FakeCommand,
    FakeGuild,
    FakeInteraction,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    MessageFlags,
    MessageType,
)
from .snowflake import SnowflakeGenerator, iso_timestamp

USER_MENTION_RE = re.compile(r"<@!?(\d{15,21})>")
ROLE_MENTION_RE = re.compile(r"<@&(\d{15,21})>")
EVERYONE_RE = re.compile(r"@(everyone|here)\b")


#: CONNECT, SPEAK and USE_VAD: part of a new server's @everyone role on Discord.
VOICE_PERMISSIONS = (1 << 20) | (1 << 21) | (1 << 25)


@dataclass
class FakeVoiceState:
    """Someone in a guild voice channel (``FakeState.voice_states``)."""

    guild_id: int
    channel_id: int
    user_id: int
    session_id: str
    self_mute: bool = False
    self_deaf: bool = False


def make_bot_token(bot_id: int) -> str:
    """A token shaped like Discord's: ``base64(id).timestamp.hmac``."""
    head = base64.urlsafe_b64encode(str(bot_id).encode()).decode().rstrip("=")
    return f"{head}.FAKE00.{secrets.token_urlsafe(27)}"


class FakeState:
    def __init__(
        self,
        *,
        bot_username: str = "Clara",
        bot_id: int | None = None,
        token: str | None = None,
        application_name: str | None = None,
    ) -> None:
        self.snowflakes = SnowflakeGenerator()
        self.users: dict[int, FakeUser] = {}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, FakeMessage] = {}
        #: channel id -> message ids in creation order (deleted ones included).
        self.channel_messages: dict[int, list[int]] = {}
        self.attachments: dict[int, FakeAttachment] = {}
        self.commands: dict[int, FakeCommand] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self._dm_by_user: dict[int, int] = {}
        #: guild id -> user id -> where that user is in voice.
        self.voice_states: dict[int, dict[int, FakeVoiceState]] = {}

        bot_id = bot_id or self.snowflakes.next()
        self.bot = FakeUser(id=bot_id, username=bot_username, bot=True)
        self.users[bot_id] = self.bot
        self.token = token or make_bot_token(bot_id)
        #: Modern applications share their bot user's id.
        self.application_id = bot_id
        self.application_name = application_name or bot_username
        #: The owner of the application (a human, not part of any guild by default).
        self.app_owner = self.add_user("app-owner")

    # ---------------------------------------------------------------- creation

    def new_id(self) -> int:
        return self.snowflakes.next()

    def add_user(
        self,
        username: str,
        *,
        global_name: str | None = None,
        bot: bool = False,
        user_id: int | None = None,
        dms_open: bool = True,
    ) -> FakeUser:
        user = FakeUser(
            id=user_id or self.new_id(),
            username=username,
            global_name=global_name,
            bot=bot,
            dms_open=dms_open,
        )
        self.users[user.id] = user
        return user

    def add_guild(
        self,
        name: str,
        *,
        owner_id: int | None = None,
        guild_id: int | None = None,
        channels: Iterable[str] = ("general",),
    ) -> FakeGuild:
        guild_id = guild_id or self.new_id()
        guild = FakeGuild(
            id=guild_id,
            name=name,
            owner_id=owner_id or self.app_owner.id,
            joined_at=iso_timestamp(),
        )
        self.guilds[guild_id] = guild
        # @everyone shares the guild's id.
        guild.roles[guild_id] = FakeRole(
            id=guild_id,
            guild_id=guild_id,
            name="@everyone",
            permissions=DEFAULT_EVERYONE_PERMISSIONS | VOICE_PERMISSIONS,
        )
        bot_role = self.add_role(
            guild_id,
            self.bot.username,
            permissions=DEFAULT_BOT_PERMISSIONS,
            managed=True,
            tags={"bot_id": str(self.bot.id)},
        )
        self.add_member(guild_id, self.bot.id, roles=[bot_role.id])
        if guild.owner_id != self.bot.id:
            self.add_member(guild_id, guild.owner_id)
        for channel_name in channels:
            self.add_channel(guild_id, channel_name)
        return guild

    def add_role(
        self,
        guild_id: int,
        name: str,
        *,
        permissions: int = 0,
        color: int = 0,
        hoist: bool = False,
        mentionable: bool = False,
        managed: bool = False,
        tags: dict[str, Any] | None = None,
    ) -> FakeRole:
        guild = self.guild(guild_id)
        role = FakeRole(
            id=self.new_id(),
            guild_id=guild_id,
            name=name,
            permissions=permissions,
            position=len(guild.roles),
            color=color,
            hoist=hoist,
            mentionable=mentionable,
            managed=managed,
            tags=tags,
        )
        guild.roles[role.id] = role
        return role

    def add_member(
        self,
        guild_id: int,
        user_id: int,
        *,
        roles: Iterable[int] = (),
        nick: str | None = None,
    ) -> FakeMember:
        guild = self.guild(guild_id)
        self.user(user_id)
        member = FakeMember(
            user_id=user_id,
            guild_id=guild_id,
            roles=list(roles),
            nick=nick,
            joined_at=iso_timestamp(),
        )
        guild.members[user_id] = member
        return member

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
        guild = self.guild(guild_id)
        channel = FakeChannel(
            id=self.new_id(),
            type=ChannelType(type),
            name=name,
            guild_id=guild_id,
            position=len(guild.channels),
            topic=topic,
            parent_id=parent_id,
            nsfw=nsfw,
        )
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        self.channel_messages[channel.id] = []
        return channel

    def add_thread(
        self,
        channel_id: int,
        name: str,
        *,
        starter_message_id: int | None = None,
        owner_id: int | None = None,
        auto_archive_duration: int = 1440,
    ) -> FakeChannel:
        """A public thread under a text (or announcement) channel.

        Started from a message, the thread takes that message's id, as on Discord,
        and the message gets ``HAS_THREAD`` and a ``thread`` field.  The owner
        defaults to the starter message's author, else the guild's owner.
        """
        parent = self.channel(channel_id)
        if parent.type == ChannelType.GUILD_TEXT:
            thread_type = ChannelType.PUBLIC_THREAD
        elif parent.type == ChannelType.GUILD_ANNOUNCEMENT:
            thread_type = ChannelType.ANNOUNCEMENT_THREAD
        else:
            raise errors.DiscordAPIError(
                400, errors.INVALID_CHANNEL_TYPE, "Cannot execute action on this channel type"
            )
        assert parent.guild_id is not None
        guild = self.guild(parent.guild_id)
        if auto_archive_duration not in (60, 1440, 4320, 10080):
            raise errors.invalid_form_body(
                {
                    "auto_archive_duration": errors.field_error(
                        "BASE_TYPE_CHOICES", "Value must be one of {60, 1440, 4320, 10080}."
                    )
                }
            )
        starter: FakeMessage | None = None
        if starter_message_id is not None:
            starter = self.message(parent.id, starter_message_id)
            if starter.thread_id is not None:
                raise errors.DiscordAPIError(
                    400,
                    errors.THREAD_ALREADY_CREATED,
                    "A thread has already been created for this message",
                )
        if owner_id is None:
            owner_id = starter.author_id if starter is not None else guild.owner_id
        if owner_id not in guild.members:
            raise ValueError(f"user {owner_id} is not a member of guild {guild.id}")
        now = iso_timestamp()
        thread = FakeChannel(
            id=starter.id if starter is not None else self.new_id(),
            type=thread_type,
            name=name,
            guild_id=guild.id,
            parent_id=parent.id,
            owner_id=owner_id,
            auto_archive_duration=auto_archive_duration,
            create_timestamp=now,
            archive_timestamp=now,
            member_ids=[owner_id],
            starter_message_id=starter.id if starter is not None else None,
        )
        guild.threads[thread.id] = thread
        self.channels[thread.id] = thread
        self.channel_messages[thread.id] = []
        if starter is not None:
            starter.thread_id = thread.id
            starter.flags |= int(MessageFlags.HAS_THREAD)
        return thread

    def dm_channel_for(self, user_id: int) -> FakeChannel | None:
        channel_id = self._dm_by_user.get(user_id)
        return None if channel_id is None else self.channels[channel_id]

    def add_dm_channel(self, user_id: int) -> FakeChannel:
        """The DM channel between the bot and ``user_id`` (created once, then reused)."""
        existing = self.dm_channel_for(user_id)
        if existing is not None:
            return existing
        self.user(user_id)
        channel = FakeChannel(id=self.new_id(), type=ChannelType.DM, recipient_ids=[user_id])
        self.channels[channel.id] = channel
        self.channel_messages[channel.id] = []
        self._dm_by_user[user_id] = channel.id
        return channel

    def set_voice_state(
        self,
        guild_id: int,
        user_id: int,
        channel_id: int | None,
        *,
        session_id: str | None = None,
        self_mute: bool = False,
        self_deaf: bool = False,
    ) -> FakeVoiceState | None:
        """Put ``user_id`` in voice channel ``channel_id`` (None: out of voice).

        The channel must be one of the guild's voice channels (type 2)."""
        guild = self.guild(guild_id)
        states = self.voice_states.setdefault(guild.id, {})
        if channel_id is None:
            states.pop(int(user_id), None)
            return None
        channel = guild.channels.get(int(channel_id))
        if channel is None or channel.type != ChannelType.GUILD_VOICE:
            raise errors.unknown(errors.UNKNOWN_CHANNEL, "Channel")
        if int(user_id) not in guild.members:
            raise errors.unknown(errors.UNKNOWN_MEMBER, "Member")
        state = FakeVoiceState(
            guild.id,
            channel.id,
            int(user_id),
            session_id or secrets.token_hex(16),
            self_mute=self_mute,
            self_deaf=self_deaf,
        )
        states[state.user_id] = state
        return state

    def voice_members(self, channel_id: int) -> list[int]:
        """User ids in a voice channel."""
        channel = self.channel(channel_id)
        states = self.voice_states.get(channel.guild_id or 0, {})
        return [s.user_id for s in states.values() if s.channel_id == channel.id]

    # ----------------------------------------------------------------- lookups

    def user(self, user_id: int) -> FakeUser:
        try:
            return self.users[int(user_id)]
        except (KeyError, ValueError):
            raise errors.unknown(errors.UNKNOWN_USER, "User") from None

    def guild(self, guild_id: int) -> FakeGuild:
        try:
            return self.guilds[int(guild_id)]
        except (KeyError, ValueError):
            raise errors.unknown(errors.UNKNOWN_GUILD, "Guild") from None

    def channel(self, channel_id: int) -> FakeChannel:
        try:
            return self.channels[int(channel_id)]
        except (KeyError, ValueError):
            raise errors.unknown(errors.UNKNOWN_CHANNEL, "Channel") from None

    def member(self, guild_id: int, user_id: int) -> FakeMember:
        try:
            return self.guild(guild_id).members[int(user_id)]
        except (KeyError, ValueError):
            raise errors.unknown(errors.UNKNOWN_MEMBER, "Member") from None

    def message(self, channel_id: int, message_id: int) -> FakeMessage:
        """A live, non-ephemeral message in ``channel_id``; 404 10008 otherwise."""
        try:
            message = self.messages[int(message_id)]
        except (KeyError, ValueError):
            raise errors.unknown(errors.UNKNOWN_MESSAGE, "Message") from None
        if message.channel_id != int(channel_id) or message.deleted or message.is_ephemeral:
            raise errors.unknown(errors.UNKNOWN_MESSAGE, "Message")
        return message

    def live_messages(self, channel_id: int) -> list[FakeMessage]:
        """Non-deleted, non-ephemeral messages of a channel, oldest first."""
        return [
            m
            for m in (self.messages[i] for i in self.channel_messages.get(channel_id, []))
            if not m.deleted and not m.is_ephemeral
        ]

    def member_permissions(self, guild_id: int, user_id: int) -> int:
        guild = self.guild(guild_id)
        if user_id == guild.owner_id:
            return (1 << 53) - 1
        perms = guild.everyone_role.permissions
        member = guild.members.get(user_id)
        for role_id in member.roles if member else []:
            role = guild.roles.get(role_id)
            if role is not None:
                perms |= role.permissions
        if perms & (1 << 3):  # ADMINISTRATOR
            return (1 << 53) - 1
        return perms

    # ---------------------------------------------------------------- messages

    def mentions_in(self, content: str) -> tuple[list[int], list[int], bool]:
        """User ids, role ids and @everyone/@here found in ``content`` (known ids only)."""
        users = [int(m) for m in USER_MENTION_RE.findall(content) if int(m) in self.users]
        roles = [int(m) for m in ROLE_MENTION_RE.findall(content)]
        return _dedupe(users), _dedupe(roles), bool(EVERYONE_RE.search(content))

    def store_message(
        self,
        channel: FakeChannel,
        author_id: int,
        content: str,
        *,
        embeds: list[dict[str, Any]] | None = None,
        attachments: list[FakeAttachment] | None = None,
        components: list[dict[str, Any]] | None = None,
        mention_ids: Iterable[int] = (),
        mention_role_ids: Iterable[int] = (),
        mention_everyone: bool = False,
        reference: dict[str, Any] | None = None,
        nonce: str | int | None = None,
        tts: bool = False,
        flags: int = 0,
        type: MessageType | None = None,
        webhook_id: int | None = None,
        application_id: int | None = None,
        interaction_metadata: dict[str, Any] | None = None,
    ) -> FakeMessage:
        message = FakeMessage(
            id=self.new_id(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author_id=author_id,
            content=content,
            type=type
            if type is not None
            else (MessageType.REPLY if reference else MessageType.DEFAULT),
            embeds=list(embeds or []),
            attachments=list(attachments or []),
            components=list(components or []),
            mention_ids=_dedupe(mention_ids),
            mention_role_ids=_dedupe(mention_role_ids),
            mention_everyone=mention_everyone,
            reference=reference,
            timestamp=iso_timestamp(),
            nonce=nonce,
            tts=tts,
            flags=flags,
            webhook_id=webhook_id,
            application_id=application_id,
            interaction_metadata=interaction_metadata,
        )
        message.record_revision()
        self.messages[message.id] = message
        self.channel_messages.setdefault(channel.id, []).append(message.id)
        if not message.is_ephemeral:
            channel.last_message_id = message.id
            if channel.is_thread:
                channel.message_count += 1
                channel.total_message_sent += 1
                if author_id not in channel.member_ids and webhook_id is None:
                    channel.member_ids.append(author_id)
        return message

    def store_attachment(
        self,
        channel_id: int,
        filename: str,
        data: bytes,
        *,
        base_url: str,
        content_type: str | None = None,
        description: str | None = None,
    ) -> FakeAttachment:
        attachment_id = self.new_id()
        attachment = FakeAttachment(
            id=attachment_id,
            channel_id=channel_id,
            filename=filename,
            data=data,
            url=f"{base_url}/attachments/{channel_id}/{attachment_id}/{filename}",
            content_type=content_type or mimetypes.guess_type(filename)[0],
            description=description,
        )
        self.attachments[attachment_id] = attachment
        return attachment

    def reference_for(self, channel: FakeChannel, message_id: int) -> dict[str, Any]:
        """A ``message_reference`` pointing at ``message_id`` in ``channel``."""
        ref: dict[str, Any] = {
            "type": 0,
            "message_id": str(message_id),
            "channel_id": str(channel.id),
        }
        if channel.guild_id is not None:
            ref["guild_id"] = str(channel.guild_id)
        return ref


def _dedupe(ids: Iterable[int]) -> list[int]:
    seen: dict[int, None] = {}
    for i in ids:
        seen[int(i)] = None
    return list(seen)
