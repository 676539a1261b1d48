"""Tunable limits of the fake server.  Defaults are Discord's; tests shorten them.

Every field can also be passed to :class:`~.server.FakeDiscord` as a keyword, and
``fake.config`` may be changed while the server runs (new rate-limit windows use
the new numbers).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal


class Intents(enum.IntFlag):
    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_MODERATION = 1 << 2
    GUILD_EXPRESSIONS = 1 << 3
    GUILD_INTEGRATIONS = 1 << 4
    GUILD_WEBHOOKS = 1 << 5
    GUILD_INVITES = 1 << 6
    GUILD_VOICE_STATES = 1 << 7
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    GUILD_MESSAGE_REACTIONS = 1 << 10
    GUILD_MESSAGE_TYPING = 1 << 11
    DIRECT_MESSAGES = 1 << 12
    DIRECT_MESSAGE_REACTIONS = 1 << 13
    DIRECT_MESSAGE_TYPING = 1 << 14
    MESSAGE_CONTENT = 1 << 15
    GUILD_SCHEDULED_EVENTS = 1 << 16
    AUTO_MODERATION_CONFIGURATION = 1 << 20
    AUTO_MODERATION_EXECUTION = 1 << 21
    GUILD_MESSAGE_POLLS = 1 << 24
    DIRECT_MESSAGE_POLLS = 1 << 25


ALL_INTENTS = 0
for _intent in Intents:
    ALL_INTENTS |= int(_intent)
PRIVILEGED_INTENTS = Intents.GUILD_MEMBERS | Intents.GUILD_PRESENCES | Intents.MESSAGE_CONTENT

# Application flags that say which privileged intents the developer portal enabled.
APP_FLAG_GATEWAY_PRESENCE = 1 << 12
APP_FLAG_GATEWAY_GUILD_MEMBERS = 1 << 14
APP_FLAG_GATEWAY_MESSAGE_CONTENT = 1 << 18


@dataclass
class FakeDiscordConfig:
    # --- gateway
    heartbeat_interval_ms: int = 41_250
    #: Close a connection with 4009 when no heartbeat arrived for
    #: ``heartbeat_interval * factor``.  None (default) disables the check: the
    #: fake shares the test's event loop, so a busy test would trip it spuriously.
    heartbeat_timeout_factor: float | None = None
    #: Discord allows 120 gateway sends per 60 s per connection, then closes 4008.
    gateway_send_limit: int = 120
    gateway_send_window: float = 60.0
    #: ``auto`` honours ``compress=zlib-stream`` (and ``zstd-stream`` when the
    #: ``zstandard`` module exists, else falls back to text frames); ``none``
    #: always sends uncompressed text frames.
    gateway_compression: Literal["auto", "none"] = "auto"
    #: How many dispatches a session keeps for RESUME.
    resume_buffer_size: int = 1000
    #: Privileged intents "enabled in the developer portal"; IDENTIFY asking
    #: for others is closed with 4014.
    privileged_intents: int = int(PRIVILEGED_INTENTS)
    #: Sharding.  When set, Discord *requires* exactly this many shards: IDENTIFY
    #: without ``shard`` is closed with 4011 (sharding required), with another count
    #: with 4010 (invalid shard); ``GET /gateway/bot`` recommends it.  None (default):
    #: any valid ``[id, count]`` is accepted, and no ``shard`` gets every guild.
    shard_count: int | None = None
    #: ``GET /gateway/bot``'s ``shards`` when ``shard_count`` is not set.
    recommended_shards: int = 1
    #: ``session_start_limit.max_concurrency``: IDENTIFYs Discord allows per 5 s
    #: (one per bucket ``shard_id % max_concurrency``; large bots get 16 or more).
    identify_max_concurrency: int = 1

    # --- REST rules
    max_content_length: int = 2000
    max_embeds: int = 10
    max_attachments: int = 10
    #: Total upload size per request; more gives 413 / 40005.
    attachment_size_limit: int = 10 * 1024 * 1024
    #: Per-channel bucket shared by message create and message edit.
    message_rate_limit: int = 5
    message_rate_window: float = 5.0
    #: Per-channel bucket for message delete.
    delete_rate_limit: int = 5
    delete_rate_window: float = 1.0
    #: Requests per second across all routes (Discord: 50); None disables it.
    global_rate_limit: int | None = 50
    #: How long an interaction may stay unanswered before its callback 404s (10062).
    interaction_ack_timeout: float = 3.0
    #: Interaction tokens (follow-ups, @original edits) expire after this.
    interaction_token_lifetime: float = 15 * 60.0
    #: Nonces with ``enforce_nonce`` are deduplicated for this long.
    nonce_window: float = 120.0

    @property
    def gateway_bot_shards(self) -> int:
        """The shard count ``GET /gateway/bot`` recommends."""
        return self.shard_count or self.recommended_shards

    @property
    def application_flags(self) -> int:
        flags = 0
        if self.privileged_intents & Intents.GUILD_PRESENCES:
            flags |= APP_FLAG_GATEWAY_PRESENCE
        if self.privileged_intents & Intents.GUILD_MEMBERS:
            flags |= APP_FLAG_GATEWAY_GUILD_MEMBERS
        if self.privileged_intents & Intents.MESSAGE_CONTENT:
            flags |= APP_FLAG_GATEWAY_MESSAGE_CONTENT
        return flags
