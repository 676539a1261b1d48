"""A loopback fake Discord that the real discord.py client talks to.

Typical use::

    async with FakeDiscord(heartbeat_interval_ms=1000) as fake:
        guild = fake.add_guild("Test Guild")          # with a #general channel
        alice = fake.add_user("alice")
        fake.add_member(guild.id, alice.id)
        with discord_py_pointed_at(fake):
            client = discord.Client(intents=intents, guild_ready_timeout=0.05)
            async with running_client(fake, client):
                await fake.send_message(guild.text_channels[0].id, alice.id, "hi")
                ...
        fake.assert_clean()

Modules: :mod:`.server` (the ``FakeDiscord`` facade), :mod:`.gateway` (websocket
protocol), :mod:`.rest` / :mod:`.routes` / :mod:`.messages` /
:mod:`.interactions` (REST API), :mod:`.ratelimit`, :mod:`.validation`,
:mod:`.state` / :mod:`.models` / :mod:`.payloads` (data), :mod:`.client`
(discord.py helpers).
"""

from .client import discord_py_pointed_at, running_client
from .config import FakeDiscordConfig, Intents
from .errors import DiscordAPIError
from .gateway import GatewayConnection, GatewayFrame, GatewaySession
from .models import (
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
    InteractionCallbackType,
    InteractionType,
    MessageFlags,
    MessageRevision,
    MessageType,
    Permissions,
)
from .ratelimit import RateLimitStats
from .rest import RecordedFile, RecordedRequest
from .routes import ROUTE_KINDS
from .server import FakeDiscord

__all__ = [
    "ROUTE_KINDS",
    "ChannelType",
    "DiscordAPIError",
    "FakeAttachment",
    "FakeChannel",
    "FakeCommand",
    "FakeDiscord",
    "FakeDiscordConfig",
    "FakeGuild",
    "FakeInteraction",
    "FakeMember",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "GatewayConnection",
    "GatewayFrame",
    "GatewaySession",
    "Intents",
    "InteractionCallbackType",
    "InteractionType",
    "MessageFlags",
    "MessageRevision",
    "MessageType",
    "Permissions",
    "RateLimitStats",
    "RecordedFile",
    "RecordedRequest",
    "discord_py_pointed_at",
    "running_client",
]
