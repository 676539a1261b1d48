"""The Discord side of ORS's ``ProactiveSender`` port: post a proactive message
to the user's DM, or to the channel they last talked to Clara in (addressed to
them, pinging nobody else).

A message that went out is also written to the user's conversation session of
that DM or channel (through the conversation's ``SessionLog``, which queues it
on disk while PostgreSQL is down), as Clara's turn: when the user answers, the
session the answer joins holds what Clara asked, so its summary, the next
session's snapshot and ORS's own conversation summary all know she asked it.
"""

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
                sent = await user.send(text, allowed_mentions=discord.AllowedMentions.none())
            else:
                cid = int(channel_id)
                channel = client.get_channel(cid) or await client.fetch_channel(cid)
                if not isinstance(channel, discord.abc.Messageable):
                    log.info("ors: channel %s cannot take messages", channel_id)
                    return False
                sent = await channel.send(
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
        await self._remember(client, user_id, channel_id, text, sent.id)
        return True

    async def _remember(
        self,
        client: discord.Client,
        user_id: str,
        channel_id: str | None,
        text: str,
        message_id: int,
    ) -> None:
        """Clara's proactive message as her turn in the user's session there."""
        conversation = getattr(client, "conversation", None)
        history = getattr(conversation, "history", None)
        if history is None:  # no sessions in this deployment
            return
        context_id = context_id_for(user_id, channel_id)
        try:
            session = await history.begin(user_id, context_id)
            await history.record(
                session, user_id, context_id, [("assistant", "clara", text, str(message_id))]
            )
        except Exception as exc:  # the message is out; only its record is missing
            log.warning(
                "ors: could not add the proactive message to %s's session (%s)", user_id, exc
            )


def context_id_for(user_id: str, channel_id: str | None) -> str:
    """The session context a conversation with ``user_id`` there has: the same ids
    ``ConversationHandler._context_id`` gives a user's message in that DM or channel."""
    return f"discord:dm:{user_id}" if channel_id is None else f"discord:{channel_id}"
