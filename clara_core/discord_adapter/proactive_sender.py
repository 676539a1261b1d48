"""The Discord side of ORS's ``ProactiveSender`` port: post a proactive message
to the user's DM, or to the channel they last talked to Clara in (addressed to
them, pinging nobody else)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import discord

log = logging.getLogger(__name__)


class DiscordProactiveSender:
    """``client``: the client, or a callable that finds the current one at send time
    (the Discord runner replaces its client when it reconnects)."""

    def __init__(self, client: discord.Client | Callable[[], discord.Client | None]) -> None:
        self._client = client

    @property
    def client(self) -> discord.Client | None:
        c = self._client
        return c if isinstance(c, discord.Client) else c()

    async def send(self, user_id: str, channel_id: str | None, text: str) -> bool:
        client = self.client
        if client is None or client.is_closed():
            log.info("ors: not connected to Discord; not sent to %s", user_id)
            return False
        try:
            if channel_id is None:
                uid = int(user_id)
                user = client.get_user(uid) or await client.fetch_user(uid)
                await user.send(text, allowed_mentions=discord.AllowedMentions.none())
            else:
                cid = int(channel_id)
                channel = client.get_channel(cid) or await client.fetch_channel(cid)
                if not isinstance(channel, discord.abc.Messageable):
                    log.info("ors: channel %s cannot take messages", channel_id)
                    return False
                await channel.send(
                    f"<@{int(user_id)}> {text}",
                    allowed_mentions=discord.AllowedMentions(
                        everyone=False, roles=False, users=[discord.Object(int(user_id))]
                    ),
                )
        except ValueError:  # not a Discord id (a console user): nothing to post to
            log.info("ors: %s is not a Discord user; not sent", user_id)
            return False
        except discord.HTTPException as exc:  # DMs closed, channel gone, no permission
            log.info("ors: could not post to %s (%s)", user_id, exc)
            return False
        return True
