"""What has been said in a server channel, for context beyond the reply chain.

Clara sees every message in the channels she is in (gateway events), so the
recent history is kept in memory per channel (DISCORD_CHANNEL_HISTORY_LIMIT)
and fetched over REST only once, when a channel's history is cold (after a
restart).  Messages older than DISCORD_SUMMARY_AGE_MINUTES are folded into a
rolling per-channel summary by the low tier, in the background after a reply,
so nothing is dropped and no answer waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import discord

from clara_core.llm.errors import LLMError
from clara_core.llm.service import ChatRequest, LLMService
from clara_core.llm.types import Message
from storage.channel_summaries import ChannelSummaryStore

from .chains import strip_footer, strip_mention
from .pacing import GlobalBudget

log = logging.getLogger(__name__)

FOLD_SYSTEM = """\
You keep a rolling summary of a Discord channel for Clara. Merge the previous
summary with the older messages below into one updated summary of at most 12
short bullet points: topics, who said what that matters, decisions, open
questions. Drop small talk. Plain facts, no preamble."""


def _line(msg: discord.Message, bot_id: int) -> str:
    name = "Clara" if msg.author.id == bot_id else msg.author.display_name
    text = (
        strip_footer(msg.content) if msg.author.id == bot_id else strip_mention(msg.content, bot_id)
    )
    return f"{name}: {text[:500]}"


def _usable(msg: discord.Message) -> bool:
    """Has what the context needs?  discord.py leaves attributes it found no data
    for unset, e.g. ``author`` for a message object without one."""
    try:
        return msg.author.id is not None and msg.created_at is not None and msg.content is not None
    except AttributeError:
        return False


class ChannelContext:
    def __init__(
        self,
        *,
        limit: int,
        summary_age_minutes: float,
        store: ChannelSummaryStore | None = None,
        llm: LLMService | None = None,
        budget: GlobalBudget | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.limit = limit
        self.budget = budget
        self.age = timedelta(minutes=summary_age_minutes)
        self.store = store
        self.llm = llm
        self.clock = clock
        self._recent: dict[int, deque[discord.Message]] = {}
        self._warm: set[int] = set()
        self._folding: dict[int, asyncio.Task[None]] = {}
        self._pending: dict[int, tuple[list[discord.Message], int]] = {}

    def observe(self, message: discord.Message) -> None:
        """Every message Clara sees in a server channel (hers included)."""
        if message.guild is None or self.limit == 0:
            return
        self._recent.setdefault(message.channel.id, deque(maxlen=self.limit)).append(message)

    async def _history(self, message: discord.Message) -> list[discord.Message]:
        channel_id = message.channel.id
        # The REST fetch counts against Discord's global limit.  When the budget is
        # already spoken for (hundreds of conversations at once), answering quickly
        # with the messages the gateway delivered beats a complete history: the
        # channel stays cold and is fetched on a quieter message.
        if channel_id not in self._warm and (
            self.budget is None or self.budget.has_room(headroom=self.budget.limit // 2)
        ):
            self._warm.add(channel_id)
            try:
                fetched = [
                    m async for m in message.channel.history(limit=self.limit, before=message)
                ]
            except discord.HTTPException as exc:
                log.warning("could not read channel history: %s", exc)
                fetched = []
            except Exception as exc:
                # Optional context: an answer discord.py cannot parse (a KeyError or
                # TypeError from its Message constructor) must not cost the reply.
                log.warning(
                    "could not read channel history (%s: %s); answering without it",
                    type(exc).__name__,
                    exc,
                )
                fetched = []
            usable = [m for m in fetched if _usable(m)]
            if len(usable) < len(fetched):
                # Kept, they would break this and every later turn in the channel.
                log.warning(
                    "could not read channel history: skipped %d message(s) discord.py "
                    "could not parse",
                    len(fetched) - len(usable),
                )
            fetched = usable
            by_id = {m.id: m for m in fetched}
            by_id.update({m.id: m for m in self._recent.get(channel_id, ())})
            self._recent[channel_id] = deque((by_id[i] for i in sorted(by_id)), maxlen=self.limit)
        return [m for m in self._recent.get(channel_id, ()) if m.id < message.id]

    def back_to_back_parent(self, message: discord.Message, bot_id: int) -> discord.Message | None:
        """Clara's last answer to this author, when nobody else spoke since.

        Lets "@Clara and what about X?" right after her answer continue that
        exchange as if it were a reply, the way people talk in a channel.
        """
        window = [m for m in self._recent.get(message.channel.id, ()) if m.id < message.id]
        for previous in reversed(window):
            if previous.author.id == message.author.id:
                continue  # the same person, still talking
            if previous.author.id != bot_id or previous.reference is None:
                return None
            answered = previous.reference.resolved
            answered_author = getattr(getattr(answered, "author", None), "id", None)
            if answered_author is None and previous.reference.message_id is not None:
                found = next((m for m in window if m.id == previous.reference.message_id), None)
                answered_author = found.author.id if found is not None else None
            return previous if answered_author == message.author.id else None
        return None

    async def section(self, message: discord.Message, bot_id: int, exclude: set[int]) -> str | None:
        """Prompt text: the channel summary plus the recent messages not in the chain.

        Optional context: whatever goes wrong here costs the context, never the reply."""
        if message.guild is None or self.limit == 0:
            return None
        try:
            return await self._section(message, bot_id, exclude)
        except Exception as exc:
            log.warning(
                "channel context unavailable (%s: %s); answering without it",
                type(exc).__name__,
                exc,
            )
            return None

    async def _section(
        self, message: discord.Message, bot_id: int, exclude: set[int]
    ) -> str | None:
        history = await self._history(message)
        cutoff = self.clock() - self.age
        recent = [
            m for m in history if m.created_at >= cutoff and m.id not in exclude and m.content
        ]
        parts = []
        summary = await self._summary(message.channel.id)
        if summary:
            parts.append(f"Summary of earlier conversation in #{message.channel}:\n{summary}")
        if recent:
            lines = "\n".join(_line(m, bot_id) for m in recent)
            parts.append(f"Recent messages in #{message.channel} (oldest first):\n{lines}")
        older = [m for m in history if m.created_at < cutoff]
        if older:
            self._pending[message.channel.id] = (older, bot_id)
        return "\n\n".join(parts) or None

    def after_reply(self, channel_id: int) -> None:
        """Fold what aged out, now that the user has their answer."""
        pending = self._pending.pop(channel_id, None)
        if pending is not None:
            self._schedule_fold(channel_id, *pending)

    async def _summary(self, channel_id: int) -> str | None:
        if self.store is None:
            return None
        try:
            found = await self.store.get(str(channel_id))
        except Exception as exc:
            log.warning("could not read the channel summary: %s", exc)
            return None
        return found.text if found and found.text else None

    def _schedule_fold(self, channel_id: int, older: list[discord.Message], bot_id: int) -> None:
        if not older or self.store is None or self.llm is None:
            return
        running = self._folding.get(channel_id)
        if running is not None and not running.done():
            return
        self._folding[channel_id] = asyncio.create_task(
            self._fold(channel_id, older, bot_id), name=f"fold:{channel_id}"
        )

    async def _fold(self, channel_id: int, older: list[discord.Message], bot_id: int) -> None:
        """Fold messages that aged out into the rolling summary (never drops them)."""
        assert self.store is not None and self.llm is not None
        try:
            previous = await self.store.get(str(channel_id))
            fresh = [
                m
                for m in older
                if previous is None or previous.cutoff is None or m.created_at > previous.cutoff
            ]
            if not fresh:
                return
            transcript = "\n".join(_line(m, bot_id) for m in fresh if m.content)
            prompt = f"Previous summary:\n{previous.text if previous else '(none)'}\n\nOlder messages:\n{transcript}"
            completion = await self.llm.complete(
                ChatRequest(
                    messages=[Message.text("user", prompt)], system=FOLD_SYSTEM, max_tokens=600
                ),
                tier="low",
            )
            if completion.text.strip():
                await self.store.put(str(channel_id), completion.text.strip(), fresh[-1].created_at)
                # Folded messages leave the in-memory window.
                window = self._recent.get(channel_id)
                if window is not None:
                    folded = {m.id for m in fresh}
                    self._recent[channel_id] = deque(
                        (m for m in window if m.id not in folded), maxlen=self.limit
                    )
        except LLMError as exc:
            log.warning("channel summary not updated (%s); will retry later", exc)
        except Exception:
            log.exception("channel summary update failed")

    async def close(self) -> None:
        for task in self._folding.values():
            task.cancel()
        await asyncio.gather(*self._folding.values(), return_exceptions=True)
