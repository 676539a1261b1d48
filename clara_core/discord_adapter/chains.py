"""Conversation history from Discord: reply chains and DM continuity.

Reply chains follow ``message.reference`` upwards (up to DISCORD_MAX_MESSAGES),
using discord.py's resolved references and a bounded cache before fetching,
so chains keep working after a restart.  In a thread, the message the thread
was started from opens the chain.  In DMs, a message that replies to
nothing continues the recent exchange.  When a chain is cut (deleted message,
no access), the caller is told so it can say so.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from dataclasses import dataclass

import discord

from clara_core.llm.types import Message

log = logging.getLogger(__name__)

_FOOTER_RE = re.compile(r"(?:\n-# [^\n]*)+\s*$")


def strip_footer(text: str) -> str:
    """Drop Clara's status/badge lines from her own messages."""
    return _FOOTER_RE.sub("", text).rstrip()


def strip_mention(text: str, bot_id: int) -> str:
    return re.sub(rf"<@!?{bot_id}>", "", text).strip()


class MessageCache:
    """Bounded LRU of messages seen or fetched, to avoid refetching chains."""

    def __init__(self, capacity: int = 2000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[int, discord.Message] = OrderedDict()

    def put(self, message: discord.Message) -> None:
        self._items[message.id] = message
        self._items.move_to_end(message.id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, message_id: int) -> discord.Message | None:
        msg = self._items.get(message_id)
        if msg is not None:
            self._items.move_to_end(message_id)
        return msg


@dataclass
class History:
    messages: list[Message]
    cut: bool  # the chain was broken (deleted or inaccessible message)
    ids: set[int]  # Discord ids of the messages in the chain


def to_llm_message(msg: discord.Message, bot_id: int, *, group: bool) -> Message:
    if msg.author.id == bot_id:
        return Message.text("assistant", strip_footer(msg.content))
    text = strip_mention(msg.content, bot_id)
    name = msg.author.display_name
    return Message.text("user", f"{name}: {text}" if group else text, name=name)


async def _thread_starter(thread: discord.Thread, cache: MessageCache) -> discord.Message | None:
    """The message ``thread`` was started from (it has the thread's id), if any.

    A thread under a text channel keeps its starter in the parent channel; a
    forum post's starter is inside the thread itself.  Threads started without
    a message have none (404), and a starter may be deleted or unreadable: all
    of these just leave it out; the chain is not "cut" for it.
    """
    starter = cache.get(thread.id) or thread.starter_message
    if starter is None:
        parent = thread.parent
        source: discord.abc.Messageable | None
        if isinstance(parent, discord.ForumChannel):
            source = thread
        elif isinstance(parent, discord.abc.Messageable):
            source = parent
        else:
            source = None  # parent not cached: nothing to fetch from
        if source is None:
            return None
        try:
            starter = await source.fetch_message(thread.id)
        except (discord.NotFound, discord.Forbidden):
            return None
        except discord.HTTPException as exc:
            log.warning("could not fetch the starter message of thread %s: %s", thread.id, exc)
            return None
    cache.put(starter)
    return starter


async def build_history(
    message: discord.Message, bot_id: int, *, max_messages: int, cache: MessageCache
) -> History:
    group = message.guild is not None
    chain: list[discord.Message] = []
    cut = False
    current = message
    while current.reference is not None and len(chain) < max_messages:
        ref = current.reference
        # The cache first: it holds Clara's *final* text, while ``resolved`` is
        # a snapshot from when the user replied (maybe mid-stream). The channel
        # queue makes a reply to a streaming answer wait until it is complete.
        parent = cache.get(ref.message_id) if ref.message_id is not None else None
        if parent is None and isinstance(ref.resolved, discord.Message):
            parent = ref.resolved
        if parent is None and ref.message_id is not None:
            try:
                parent = await current.channel.fetch_message(ref.message_id)
            except (discord.NotFound, discord.Forbidden):
                cut = True
                break
        if parent is None:
            cut = True
            break
        cache.put(parent)
        chain.append(parent)
        current = parent
    if (
        not cut
        and current.reference is None
        and len(chain) < max_messages
        and isinstance(message.channel, discord.Thread)
    ):
        # The chain reached its root inside a thread: the message the thread was
        # started from comes first, as it usually says what the thread is about.
        starter = await _thread_starter(message.channel, cache)
        if (
            starter is not None
            and starter.id != message.id
            and all(m.id != starter.id for m in chain)
        ):
            chain.append(starter)
    if not chain and message.guild is None:
        # DMs: continue the recent exchange when the user didn't reply to anything.
        async for previous in message.channel.history(limit=max_messages, before=message):
            chain.append(previous)
    chain.reverse()
    return History(
        [to_llm_message(m, bot_id, group=group) for m in chain if m.content],
        cut,
        {m.id for m in chain},
    )
