"""The fake server's data model: plain dataclasses, serialised by :mod:`.payloads`.

Objects are mutable on purpose: tests may tweak them (rename a channel, close a
user's DMs) and the next payload reflects it.  Ids are ints; payloads carry them as
strings like Discord.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any


class ChannelType(enum.IntEnum):
    GUILD_TEXT = 0
    DM = 1
    GUILD_VOICE = 2
    GROUP_DM = 3
    GUILD_CATEGORY = 4
    GUILD_ANNOUNCEMENT = 5
    ANNOUNCEMENT_THREAD = 10
    PUBLIC_THREAD = 11
    PRIVATE_THREAD = 12
    GUILD_FORUM = 15


THREAD_TYPES = frozenset(
    {ChannelType.ANNOUNCEMENT_THREAD, ChannelType.PUBLIC_THREAD, ChannelType.PRIVATE_THREAD}
)


class MessageType(enum.IntEnum):
    DEFAULT = 0
    REPLY = 19
    CHAT_INPUT_COMMAND = 20


class Permissions(enum.IntFlag):
    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CHANGE_NICKNAME = 1 << 26
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38


ALL_PERMISSIONS = (1 << 53) - 1

#: What a fresh guild's @everyone role gets.
DEFAULT_EVERYONE_PERMISSIONS = int(
    Permissions.CREATE_INSTANT_INVITE
    | Permissions.ADD_REACTIONS
    | Permissions.VIEW_CHANNEL
    | Permissions.SEND_MESSAGES
    | Permissions.EMBED_LINKS
    | Permissions.ATTACH_FILES
    | Permissions.READ_MESSAGE_HISTORY
    | Permissions.MENTION_EVERYONE
    | Permissions.USE_EXTERNAL_EMOJIS
    | Permissions.CHANGE_NICKNAME
    | Permissions.USE_APPLICATION_COMMANDS
    | Permissions.SEND_MESSAGES_IN_THREADS
)

#: The managed role Discord gives a bot when it joins with these permissions.
DEFAULT_BOT_PERMISSIONS = DEFAULT_EVERYONE_PERMISSIONS | int(Permissions.MANAGE_MESSAGES)


class MessageFlags(enum.IntFlag):
    SUPPRESS_EMBEDS = 1 << 2
    #: The message started a thread (whose id is the message's id).
    HAS_THREAD = 1 << 5
    EPHEMERAL = 1 << 6
    LOADING = 1 << 7
    SUPPRESS_NOTIFICATIONS = 1 << 12
    IS_VOICE_MESSAGE = 1 << 13


@dataclass
class FakeUser:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    avatar: str | None = None
    #: False makes the bot's DMs to this user fail with 403 / 50007.
    dms_open: bool = True

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass
class FakeRole:
    id: int
    guild_id: int
    name: str
    permissions: int = 0
    position: int = 0
    color: int = 0
    hoist: bool = False
    mentionable: bool = False
    managed: bool = False
    #: ``{"bot_id": ...}`` for a bot's managed role.
    tags: dict[str, Any] | None = None

    @property
    def mention(self) -> str:
        return f"<@&{self.id}>"


@dataclass
class FakeMember:
    user_id: int
    guild_id: int
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = ""


@dataclass
class FakeChannel:
    id: int
    type: ChannelType
    name: str | None = None
    guild_id: int | None = None
    position: int = 0
    topic: str | None = None
    parent_id: int | None = None
    nsfw: bool = False
    rate_limit_per_user: int = 0
    #: DM channels: the other user(s).
    recipient_ids: list[int] = field(default_factory=list)
    last_message_id: int | None = None
    # ------------------------------------------------------------ threads only
    #: Who created the thread.
    owner_id: int | None = None
    archived: bool = False
    locked: bool = False
    auto_archive_duration: int = 1440
    #: ISO timestamps: creation, and the last change of ``archived``.
    create_timestamp: str | None = None
    archive_timestamp: str | None = None
    #: Messages sent in the thread (Discord does not count the starter message).
    message_count: int = 0
    total_message_sent: int = 0
    #: Users who joined the thread: its creator and everyone who posted in it.
    member_ids: list[int] = field(default_factory=list)
    #: The message in the parent channel the thread was started from (same id as
    #: the thread), or None for a thread started without one.
    starter_message_id: int | None = None

    @property
    def is_dm(self) -> bool:
        return self.type in (ChannelType.DM, ChannelType.GROUP_DM)

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    @property
    def member_count(self) -> int:
        """Discord stops counting thread members at 50."""
        return min(len(self.member_ids), 50)

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"


@dataclass
class FakeGuild:
    id: int
    name: str
    owner_id: int
    channels: dict[int, FakeChannel] = field(default_factory=dict)
    #: Threads live apart from ``channels``, as in GUILD_CREATE (``threads``).
    threads: dict[int, FakeChannel] = field(default_factory=dict)
    roles: dict[int, FakeRole] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    joined_at: str = ""

    @property
    def everyone_role(self) -> FakeRole:
        return self.roles[self.id]

    @property
    def text_channels(self) -> list[FakeChannel]:
        return [c for c in self.channels.values() if c.type == ChannelType.GUILD_TEXT]

    def channel_named(self, name: str) -> FakeChannel:
        for channel in self.channels.values():
            if channel.name == name:
                return channel
        raise KeyError(name)

    @property
    def active_threads(self) -> list[FakeChannel]:
        return [t for t in self.threads.values() if not t.archived]


@dataclass
class FakeAttachment:
    id: int
    channel_id: int
    filename: str
    data: bytes
    url: str
    content_type: str | None = None
    description: str | None = None
    #: Voice messages only: length in seconds and base64 amplitudes.
    duration_secs: float | None = None
    waveform: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class MessageRevision:
    """One version of a message: the original or an edit."""

    content: str
    embeds: tuple[dict[str, Any], ...]
    #: ``time.monotonic()`` when the fake stored this version.
    at: float


@dataclass
class FakeMessage:
    id: int
    channel_id: int
    author_id: int
    content: str = ""
    guild_id: int | None = None
    type: MessageType = MessageType.DEFAULT
    embeds: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[FakeAttachment] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    mention_ids: list[int] = field(default_factory=list)
    mention_role_ids: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    #: ``{"message_id", "channel_id", "guild_id"}`` for replies.
    reference: dict[str, Any] | None = None
    timestamp: str = ""
    edited_timestamp: str | None = None
    nonce: str | int | None = None
    tts: bool = False
    flags: int = 0
    pinned: bool = False
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    #: The thread started from this message (its id equals the message's id).
    thread_id: int | None = None
    deleted: bool = False
    deleted_at: float | None = None
    #: Every version in order; ``revisions[0]`` is what was first sent.
    revisions: list[MessageRevision] = field(default_factory=list)

    @property
    def referenced_message_id(self) -> int | None:
        if self.reference is None or self.reference.get("message_id") is None:
            return None
        return int(self.reference["message_id"])

    @property
    def sent_at(self) -> float:
        """``time.monotonic()`` of the original send."""
        return self.revisions[0].at

    @property
    def last_edited_at(self) -> float | None:
        """``time.monotonic()`` of the last edit, or None if never edited."""
        return self.revisions[-1].at if len(self.revisions) > 1 else None

    @property
    def edit_count(self) -> int:
        return len(self.revisions) - 1

    @property
    def is_ephemeral(self) -> bool:
        return bool(self.flags & MessageFlags.EPHEMERAL)

    def record_revision(self) -> None:
        self.revisions.append(MessageRevision(self.content, tuple(self.embeds), time.monotonic()))


@dataclass
class FakeCommand:
    """An application command registered through the REST API."""

    id: int
    application_id: int
    name: str
    data: dict[str, Any]
    guild_id: int | None = None
    version: int = 0


class InteractionType(enum.IntEnum):
    PING = 1
    APPLICATION_COMMAND = 2
    MESSAGE_COMPONENT = 3
    APPLICATION_COMMAND_AUTOCOMPLETE = 4
    MODAL_SUBMIT = 5


class InteractionCallbackType(enum.IntEnum):
    PONG = 1
    CHANNEL_MESSAGE_WITH_SOURCE = 4
    DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
    DEFERRED_UPDATE_MESSAGE = 6
    UPDATE_MESSAGE = 7
    APPLICATION_COMMAND_AUTOCOMPLETE_RESULT = 8
    MODAL = 9


@dataclass
class InteractionCallback:
    """One ``POST /interactions/{id}/{token}/callback`` the bot made."""

    type: InteractionCallbackType
    data: dict[str, Any] | None
    at: float


@dataclass
class FakeInteraction:
    """An interaction the fake dispatched (INTERACTION_CREATE) and what the bot did with it."""

    id: int
    token: str
    type: InteractionType
    application_id: int
    channel_id: int
    user_id: int
    data: dict[str, Any]
    guild_id: int | None = None
    #: For component interactions: the message the component is on.
    message_id: int | None = None
    created_at: float = field(default_factory=time.monotonic)
    callback: InteractionCallback | None = None
    original_message_id: int | None = None
    followup_message_ids: list[int] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return self.callback is not None
