"""Point discord.py at Discord itself or at a Discord-compatible server.

discord.py reads its REST base from ``discord.http.Route.BASE`` and its first
gateway address from ``DiscordWebSocket.DEFAULT_GATEWAY`` (resumes then use the
``resume_gateway_url`` the server sent in READY).  Both are plain class
attributes meant to be overridden, which is how self-hosted Discord-compatible
servers and Clara's loopback test server are reached.
"""

from __future__ import annotations

import logging

import discord.http
import yarl
from discord.gateway import DiscordWebSocket

log = logging.getLogger(__name__)

DISCORD_API_BASE = "https://discord.com/api/v10"
DISCORD_GATEWAY_URL = "wss://gateway.discord.gg/"


def configure_discord_endpoints(
    api_base: str = DISCORD_API_BASE, gateway_url: str = DISCORD_GATEWAY_URL
) -> None:
    """Set the REST base and gateway URL discord.py uses for this process."""
    api_base = api_base.rstrip("/")
    discord.http.Route.BASE = api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    if api_base != DISCORD_API_BASE or gateway_url != DISCORD_GATEWAY_URL:
        log.info("Discord endpoints: REST %s, gateway %s", api_base, gateway_url)
