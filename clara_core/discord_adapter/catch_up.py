"""Mentions and DMs that reached Clara while a shard was away, answered when it is back.

Discord sends a shard no MESSAGE_CREATE while it is disconnected.  Within one
process discord.py RESUMEs and Discord replays what was missed, but a new process
(a restart, a crashed shard process started again) has no session to resume, and
Discord sometimes refuses a RESUME (INVALID_SESSION): both IDENTIFY anew, and
whatever was said to Clara in between would go unanswered for good.

So on every READY of a shard (discord.py's ``shard_ready``, once its guilds have
arrived) Clara reads back DISCORD_CATCHUP_MINUTES of the shard's channels that had
messages since then (GUILD_CREATE carries each channel's ``last_message_id``, so
quiet channels cost no request), and on shard 0 the DMs of the users she talked to
lately.  A message is answered again through the normal path (gates, queue, reply)
when all of these hold:

- it is addressed to her (a mention, a reply to her, a DM), from a person, and it
  came before this session's READY (later ones arrive live);
- she has no reply to it: a message of hers that references it and is not one of
  her ``-#`` notices (the "you're #2 in line" notice is not an answer);
- no stop request addressed to her came after it in that channel ("@Clara stop"
  cancels what waited, and it must stay cancelled across a restart);
- this process did not see it live (a re-IDENTIFY inside one process).

Discord itself is the record of what was answered, so nothing new is stored and
two processes never disagree: a guild's events go to exactly one shard, and one
process runs that shard at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING

import discord

from .pacing import Priority, request_priority
from .stop_words import StopRequest

if TYPE_CHECKING:
    from storage.sessions import SessionStore

    from .runner import ClaraClient

log = logging.getLogger(__name__)

#: The most recent messages read back per channel (one REST request).
HISTORY_PER_CHANNEL = 100
#: Channels read back per READY, the most recently active first: a restart of a
#: shard with thousands of busy channels must not spend minutes of the global
#: request budget before answering anyone live.
MAX_CHANNELS = 200
#: DM partners looked up on shard 0 (one request each to open the DM channel),
#: the most recently active first, among those active in the last DM_PARTNER_DAYS.
MAX_DM_PARTNERS = 100
DM_PARTNER_DAYS = 30
#: A reply of Clara's that only says where a request stands ("-# You're #2 in line").
NOTICE_PREFIX = "-# "
DM_CONTEXT_PREFIX = "discord:dm:"


class SeenMessages:
    """The ids of the last ``size`` messages this process received live (bounded)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._ids: OrderedDict[int, None] = OrderedDict()

    def add(self, message_id: int) -> None:
        self._ids[message_id] = None
        self._ids.move_to_end(message_id)
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._ids


def unanswered(
    messages: Iterable[discord.Message],
    *,
    me: int,
    addressed: Callable[[discord.Message], bool],
    stop_kind: Callable[[discord.Message], StopRequest],
) -> list[discord.Message]:
    """The messages addressed to Clara (``addressed(m)``) with no answer from her and
    no stop request after them, oldest first.  ``messages`` is one channel's."""
    ordered = sorted(messages, key=lambda m: m.id)
    answered = {
        m.reference.message_id
        for m in ordered
        if m.author.id == me
        and m.reference is not None
        and m.reference.message_id is not None
        and not (m.content.startswith(NOTICE_PREFIX) and not m.attachments)
    }
    waiting: list[discord.Message] = []
    for m in ordered:
        if m.author.id == me or m.author.bot or not addressed(m):
            continue
        kind = stop_kind(m)
        if kind is not StopRequest.NONE:
            waiting.clear()  # a stop cancels everything asked before it
            if kind is StopRequest.STOP:
                continue  # "nevermind, ..." asks anew: answered like any other
        if m.id not in answered:
            waiting.append(m)
    return waiting


class CatchUp:
    """Reads back what a shard missed and hands it to the conversation."""

    def __init__(
        self,
        client: ClaraClient,
        *,
        minutes: float,
        sessions: SessionStore | None = None,
    ) -> None:
        self.client = client
        self.minutes = minutes
        self.sessions = sessions
        #: The snowflake of each shard's last READY: what came after arrives live.
        self._connected_at: dict[int, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def shard_connected(self, shard_id: int) -> None:
        """READY arrived (``shard_connect``): note when, before its guilds arrive."""
        self._connected_at[shard_id] = discord.utils.time_snowflake(discord.utils.utcnow())

    def shard_ready(self, shard_id: int) -> None:
        """The shard's guilds are in: read back what it missed, beside the live events."""
        if self.minutes <= 0:
            return
        until = self._connected_at.get(shard_id)
        if until is None:  # no READY seen (cannot happen with discord.py's order)
            until = discord.utils.time_snowflake(discord.utils.utcnow())
        task = asyncio.create_task(self.sweep(shard_id, until), name=f"catch-up-{shard_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self) -> None:
        """Until the sweeps started so far have handed over what they found (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def sweep(self, shard_id: int, until: int) -> None:
        since_time = discord.utils.utcnow() - datetime.timedelta(minutes=self.minutes)
        since = discord.utils.time_snowflake(since_time)
        # A shard may be ready before the conversation pipeline is (a cold start).
        if not await self.client.wait_for_pipeline():
            return
        try:
            # The sweep waits behind anything a person is waiting for right now.
            with request_priority(Priority.TYPING):
                channels = self._guild_channels(shard_id, since)
                channels.sort(key=lambda c: c.last_message_id or 0, reverse=True)
                found = 0
                for channel in channels[:MAX_CHANNELS]:
                    # The newest messages of the window: a busy channel's are the ones
                    # someone is still waiting on.
                    found += await self._catch_up(
                        channel,
                        channel.history(
                            limit=HISTORY_PER_CHANNEL,
                            before=discord.Object(until),
                            after=discord.Object(since),
                            oldest_first=False,
                        ),
                    )
                for dm in await self._dm_channels() if shard_id == 0 else ():
                    # Only what came after ``since`` is sent: usually nothing.
                    history = dm.history(limit=HISTORY_PER_CHANNEL, after=discord.Object(since))
                    found += await self._catch_up(dm, history, until=until)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed read-back must never touch live answers
            log.warning("could not read back what shard %d missed: %s", shard_id, exc)
            return
        if found:
            log.info("shard %d: answering %d message(s) sent while it was away", shard_id, found)

    def _guild_channels(self, shard_id: int, since: int) -> list[discord.abc.Messageable]:
        out: list[discord.abc.Messageable] = []
        for guild in self.client.guilds:
            if guild.shard_id != shard_id or guild.me is None:
                continue
            for channel in (*guild.text_channels, *guild.threads):
                if (channel.last_message_id or 0) <= since:
                    continue
                perms = channel.permissions_for(guild.me)
                if perms.read_messages and perms.read_message_history:
                    out.append(channel)
        return out

    async def _dm_channels(self) -> list[discord.DMChannel]:
        """The DM channels of her recent partners."""
        if self.sessions is None:
            return []
        try:
            users = await self.sessions.recent_context_owners(
                DM_CONTEXT_PREFIX,
                since=discord.utils.utcnow() - datetime.timedelta(days=DM_PARTNER_DAYS),
                limit=MAX_DM_PARTNERS,
            )
        except Exception as exc:  # PostgreSQL down: guild channels are still read back
            log.warning("could not list recent DM partners for the read-back: %s", exc)
            return []
        channels: list[discord.DMChannel] = []
        for user_id in users:
            # A DM channel carries no last_message_id, so each recent partner's DM
            # is read (only its messages after ``since``: usually none).
            with contextlib.suppress(ValueError, discord.HTTPException):
                channels.append(await self.client.create_dm(discord.Object(int(user_id))))
        return channels

    async def _catch_up(
        self,
        channel: discord.abc.Messageable,
        messages: AsyncIterator[discord.Message],
        *,
        until: int | None = None,
    ) -> int:
        try:
            history = [m async for m in messages if until is None or m.id < until]
        except discord.HTTPException as exc:
            log.warning("could not read back channel %s: %s", getattr(channel, "id", "?"), exc)
            return 0
        me = self.client.user
        conversation = self.client.conversation
        assert me is not None and conversation is not None
        missed = unanswered(
            history,
            me=me.id,
            addressed=lambda m: conversation.allowed(m) and conversation.triggered(m),
            stop_kind=lambda m: conversation.stop_kind(conversation.addressed_text(m), m),
        )
        count = 0
        for message in missed:
            if message.id in conversation.seen:
                continue
            count += 1
            await conversation.on_missed(message)
        return count
