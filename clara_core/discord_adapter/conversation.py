"""From a Discord message to a streamed reply.

Triggers: a mention of Clara, any DM, or a reply to one of Clara's messages;
bots (and Clara herself) are ignored.  DISCORD_ALLOWED_SERVERS (which
supersedes channels), DISCORD_ALLOWED_CHANNELS and DISCORD_ALLOWED_ROLES
gate where and for whom she answers.  A message addressed to her that is a
stop word ("@Clara stop", "nevermind") or starts with one of
DISCORD_STOP_PHRASES cancels the channel's running answer and clears its
queue.  Turns are stored in sessions through ``SessionLog``, which queues
them on disk while PostgreSQL is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

import discord

from clara_core.config import Settings
from clara_core.monitor import Activity
from clara_core.pipeline.events import (
    Done,
    Failed,
    TextDelta,
    TierChosen,
    ToolFinished,
    ToolStarted,
)
from clara_core.pipeline.session_log import OUTBOX_DIR as SESSION_OUTBOX_DIR
from clara_core.pipeline.session_log import SessionLog
from clara_core.pipeline.turn import TurnInput, TurnRunner
from storage.channel_summaries import ChannelSummaryStore
from storage.local_files import LocalFileStore
from storage.preferences import Preferences
from storage.sessions import SessionInfo, SessionStore
from tools.ports import FILE_POSTER_KEY
from tools.registry import PROGRESS_KEY, REPLY_FILES_KEY, ToolContext

from .attachments import prepare_attachments
from .catch_up import SeenMessages
from .chains import History, MessageCache, build_history, strip_mention, to_llm_message
from .channel_context import ChannelContext
from .file_poster import DiscordFilePoster
from .pacing import ChannelPacer, GlobalBudget, Priority
from .queue import ChannelQueue, QueuedJob
from .stop_words import StopRequest, stop_request
from .streaming import StreamingReply, upload_limit
from .voice_messages import SPOKEN_NOTE, VoiceMessages

log = logging.getLogger(__name__)

ADMIN_ROLE = "Clara-Admin"


class ReplyListener(Protocol):
    """Follows one reply as it streams (e.g. to speak it in a voice channel).
    Calls are synchronous and must not block: schedule the work."""

    def on_delta(self, text: str) -> None: ...
    def on_done(self, text: str) -> None: ...
    def on_stop(self) -> None: ...


class ReplyObserver(Protocol):
    """Registered in ``ConversationHandler.reply_observers`` (voice channels are one)."""

    def reply_started(self, message: discord.Message) -> ReplyListener | None: ...
    async def channel_stopped(self, channel_id: int) -> bool: ...
    async def close(self) -> None: ...


def late_note(message: discord.Message) -> str:
    """What the model is told about a message it answers late (read back after
    Clara was away, catch_up.py), so the answer can say so instead of acting as
    if no time had passed."""
    minutes = max(0, round((discord.utils.utcnow() - message.created_at).total_seconds() / 60))
    ago = "less than a minute" if minutes < 1 else f"{minutes} minute{'s' if minutes != 1 else ''}"
    return (
        f"This message was sent {ago} ago, while you were offline; you are answering it "
        "only now that you are back."
    )


class _TurnFacts:
    """What a turn's events say about it, for the monitor's record of the turn."""

    def __init__(self) -> None:
        self.tier: str | None = None
        self.ttft_s: float | None = None
        self.tools: list[str] = []
        self.failed_tools: list[str] = []

    def note(self, event: object, started: float) -> None:
        if isinstance(event, TierChosen):
            self.tier = event.tier or "base"
        elif isinstance(event, TextDelta) and self.ttft_s is None and event.text:
            self.ttft_s = time.monotonic() - started
        elif isinstance(event, ToolFinished):
            self.tools.append(event.name)
            if not event.ok:
                self.failed_tools.append(event.name)


def _tell(listeners: list[ReplyListener], event: str, *args: str) -> None:
    """A listener's failure must never cost the user the text reply."""
    for listener in listeners:
        try:
            getattr(listener, event)(*args)
        except Exception:
            log.exception("reply listener %s failed", event)


def is_admin(member: discord.abc.User) -> bool:
    if not isinstance(member, discord.Member):
        return False
    perms = member.guild_permissions
    return (
        perms.administrator
        or perms.manage_channels
        or any(r.name == ADMIN_ROLE for r in member.roles)
    )


def member_roles(member: discord.abc.User) -> frozenset[str]:
    """The member's roles as casefolded names and IDs (``ToolContext.roles``); none in DMs."""
    if not isinstance(member, discord.Member):
        return frozenset()
    return frozenset(x for r in member.roles for x in (r.name.casefold(), str(r.id)))


def passes_gates(
    settings: Settings,
    *,
    guild_id: int | None,
    channel_id: int | None,
    parent_id: int | None,
    user: object,
) -> bool:
    """DISCORD_ALLOWED_SERVERS (which supersedes _CHANNELS), _CHANNELS (the channel or
    its parent thread's channel) and _ROLES; outside a server everything passes here
    (a DM's _ROLES check needs Discord: ConversationHandler.dm_allowed).
    One rule for mentions and for slash commands such as /clara say."""
    if guild_id is None:
        return True
    s = settings
    if s.discord_allowed_servers:
        if guild_id not in s.discord_allowed_servers:
            return False
    elif s.discord_allowed_channels:
        ids = {channel_id, parent_id}
        if not ids & set(s.discord_allowed_channels):
            return False
    return not (
        s.discord_allowed_roles
        and isinstance(user, discord.Member)
        and not {r.id for r in user.roles} & set(s.discord_allowed_roles)
    )


#: How long a DM's role check (DISCORD_ALLOWED_ROLES) is trusted: a role granted
#: or taken away takes effect within this time.
DM_ROLE_TTL_S = 300.0


class ConversationHandler:
    def __init__(
        self,
        client: discord.Client,
        runner: TurnRunner,
        settings: Settings,
        *,
        preferences: Preferences | None = None,
        sessions: SessionStore | None = None,
        channel_summaries: ChannelSummaryStore | None = None,
        budget: GlobalBudget | None = None,
    ) -> None:
        self.client = client
        self.runner = runner
        self.settings = settings
        self.preferences = preferences
        self.sessions = sessions
        # Set by the app when the monitor runs: one entry per answered message.
        self.activity_sink: Callable[[Activity], None] | None = None
        # Replies streaming now (the monitor's "streams in flight").
        self.in_flight = 0
        # The client's budget (runner.py hooks it into every request it sends);
        # without one, a budget of our own still gates the optional history fetch.
        if budget is None:
            budget = GlobalBudget(settings.discord_global_requests_per_second)
        self.channel_context = ChannelContext(
            limit=settings.discord_channel_history_limit,
            summary_age_minutes=settings.discord_summary_age_minutes,
            store=channel_summaries,
            llm=runner.llm,
            budget=budget,
        )
        # Voice messages and audio attachments -> words (the model loads on first use).
        self.voice = VoiceMessages(settings)
        self.files = LocalFileStore(
            settings.clara_files_dir,
            max_size=settings.clara_max_file_size,
            quota=settings.clara_files_quota,
        )
        self.pacer = ChannelPacer(settings.discord_edit_interval_seconds, budget=budget)
        self.queue = ChannelQueue()
        self.cache = MessageCache()
        #: Messages received live; a read-back after a new session skips them (catch_up.py).
        self.seen = SeenMessages()
        #: user id -> (may DM Clara, until): the DISCORD_ALLOWED_ROLES check of a DM.
        self._dm_verdicts: dict[int, tuple[bool, float]] = {}
        #: Followers of every reply (voice channels speak them); see ReplyObserver.
        self.reply_observers: list[ReplyObserver] = []
        # Conversation history, queued on disk while PostgreSQL is down.
        self.history = (
            SessionLog(
                sessions,
                settings.clara_data_dir / SESSION_OUTBOX_DIR,
                project=settings.default_project,
                idle_minutes=settings.session_idle_minutes,
            )
            if sessions is not None
            else None
        )
        self._history_start: asyncio.Task[None] | None = None
        if self.history is not None:
            # Turns queued before a restart are replayed as soon as Clara can answer
            # (the handler is built inside the running app; without a loop, on the
            # first turn that finds the queue).
            with contextlib.suppress(RuntimeError):
                self._history_start = asyncio.get_running_loop().create_task(
                    self.history.start(), name="session-log-start"
                )

    # -- gates ---------------------------------------------------------------

    def allowed(self, message: discord.Message) -> bool:
        return passes_gates(
            self.settings,
            guild_id=message.guild.id if message.guild is not None else None,
            channel_id=message.channel.id,
            parent_id=getattr(message.channel, "parent_id", None),
            user=message.author,
        )

    async def dm_allowed(self, user: discord.abc.User) -> bool:
        """DISCORD_ALLOWED_ROLES reaches DMs too: who lacks every allowed role in the
        servers that have one may not use Clara in a DM either (else the role gate
        is one DM away).  Checked in those servers (the cache, else one REST
        lookup per server) and remembered for DM_ROLE_TTL_S.  Without allowed roles
        a DM passes, as before; the server and channel lists are about where Clara
        talks in servers and leave DMs alone."""
        roles = set(self.settings.discord_allowed_roles)
        if not roles:
            return True
        now = time.monotonic()
        known = self._dm_verdicts.get(user.id)
        if known is not None and known[1] > now:
            return known[0]
        verdict = False
        for guild in self.client.guilds:
            if not any(guild.get_role(r) for r in roles):
                continue
            member = guild.get_member(user.id)
            if member is None:
                try:
                    member = await guild.fetch_member(user.id)
                except discord.NotFound:
                    continue
                except discord.HTTPException as exc:
                    # Not cached as a verdict: Discord's trouble, not the user's.
                    log.warning("could not check %s's roles in %s: %s", user.id, guild.id, exc)
                    return False
            if roles & {r.id for r in member.roles}:
                verdict = True
                break
        if len(self._dm_verdicts) > 10_000:
            self._dm_verdicts.clear()
        self._dm_verdicts[user.id] = (verdict, now + DM_ROLE_TTL_S)
        if not verdict:
            log.info(
                "DM from %s ignored: none of DISCORD_ALLOWED_ROLES in a shared server", user.id
            )
        return verdict

    def triggered(self, message: discord.Message) -> bool:
        me = self.client.user
        assert me is not None
        if message.guild is None:
            return True
        if me in message.mentions:
            return True
        ref = message.reference
        if ref is not None and isinstance(ref.resolved, discord.Message):
            return ref.resolved.author.id == me.id
        return False

    def addressed_text(self, message: discord.Message) -> str:
        """The message's words to Clara: her mention taken out."""
        me = self.client.user
        assert me is not None
        return strip_mention(message.content, me.id)

    def stop_kind(self, text: str, message: discord.Message | None = None) -> StopRequest:
        """What ``text`` (an addressed message, her mention already removed) asks of
        the channel's work.  Her name may be added ("clara stop", "stop, Clara!")."""
        names = {"clara"}
        me = self.client.user
        if me is not None:
            names |= {me.name.lower(), me.display_name.lower()}
        member = message.guild.me if message is not None and message.guild is not None else None
        if member is not None:
            names.add(member.display_name.lower())  # her nickname in this server
        return stop_request(text, names, self.settings.discord_stop_phrases)

    # -- events --------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        await self._receive(message)

    async def on_missed(self, message: discord.Message) -> None:
        """A message read back after Clara was away (catch_up.py): answered like a
        live one, without the "#2 in line" notices (they would only be noise for
        a backlog handed over at once)."""
        await self._receive(message, quiet=True)

    async def _receive(self, message: discord.Message, *, quiet: bool = False) -> None:
        me = self.client.user
        if me is None:
            return
        if message.author.id == me.id:
            self.cache.put(message)
            self.channel_context.observe(message)
            return
        self.seen.add(message.id)
        if not self.allowed(message):
            return
        if message.guild is None and not await self.dm_allowed(message.author):
            return
        self.channel_context.observe(message)
        if message.author.bot or not self.triggered(message):
            return
        self.cache.put(message)
        text = self.addressed_text(message)
        kind = self.stop_kind(text, message)
        if kind is StopRequest.STOP:
            await self._stop(message)
            return
        if kind is StopRequest.STOP_THEN_ASK:
            # Cancel what runs and what waits, then answer this one (the model sees
            # the whole message, "nevermind" included).
            await self._stop(message, say_nothing_to_stop=False)
        ahead = self.queue.submit(
            message.channel.id,
            QueuedJob(
                run=lambda: self._answer(message, text, late=quiet),
                on_start=(lambda: self._announce_start(message))
                if self.queue.busy(message.channel.id) and not quiet
                else None,
                label=str(message.id),
            ),
        )
        if ahead and not quiet:
            await self._notice(
                message, f"-# You're #{ahead + 1} in line; I'll get to you right after."
            )

    async def _notice(self, message: discord.Message, text: str) -> None:
        try:
            async with self.pacer.slot(message.channel.id, Priority.FIRST_MESSAGE):
                await message.reply(text, mention_author=False)
        except discord.HTTPException as exc:
            log.warning("could not send notice: %s", exc)

    async def _announce_start(self, message: discord.Message) -> None:
        await self._notice(message, "-# Your turn — working on it now.")

    async def _stop(self, message: discord.Message, *, say_nothing_to_stop: bool = True) -> None:
        # Speech first: cancelling the answer may wait on its final (paced) edit.
        hushed = False
        for observer in self.reply_observers:
            hushed = await observer.channel_stopped(message.channel.id) or hushed
        result = await self.queue.stop(message.channel.id)
        if result.cancelled_active or result.cleared or hushed:
            parts = ["Stopped."]
            if result.cleared:
                parts.append(
                    f"Cleared {result.cleared} queued request{'s' if result.cleared != 1 else ''}."
                )
            await self._notice(message, " ".join(parts))
        elif say_nothing_to_stop:
            await self._notice(message, "-# Nothing to stop.")

    async def _history(self, message: discord.Message, bot_id: int) -> History:
        """The reply chain, or the exchange a back-to-back mention continues."""
        limit = self.settings.discord_max_messages
        history = await build_history(message, bot_id, max_messages=limit, cache=self.cache)
        # In a thread the chain may hold just the starter message (whose id is
        # the thread's id); that still counts as "no exchange yet".
        if (history.ids - {message.channel.id}) or message.guild is None or message.reference:
            return history
        parent = self.channel_context.back_to_back_parent(message, bot_id)
        if parent is None:
            return history
        above = await build_history(parent, bot_id, max_messages=limit - 1, cache=self.cache)
        return History(
            [*above.messages, to_llm_message(parent, bot_id, group=True)],
            above.cut,
            {*above.ids, parent.id},
        )

    async def _default_tier(self, user_id: str) -> str | None:
        if self.preferences is None:
            return None
        try:
            return await self.preferences.default_tier(user_id)
        except Exception as exc:  # the database being down must not stop a reply
            log.warning("could not read preferences: %s", exc)
            return None

    async def _prepare(
        self, message: discord.Message, text: str, bot_id: int
    ) -> tuple[TurnInput, History, SessionInfo | None, str]:
        history = await self._history(message, bot_id)
        prepared = await prepare_attachments(
            message.attachments, user_id=str(message.author.id), store=self.files
        )
        extra = prepared.as_text()
        turn = TurnInput(
            text=f"{text}\n\n{extra}" if extra else text,
            images=prepared.images,
            context=ToolContext(
                user_id=str(message.author.id),
                channel_id=str(message.channel.id),
                is_admin=is_admin(message.author),
                roles=member_roles(message.author),
                platform="discord",
                extras={
                    FILE_POSTER_KEY: DiscordFilePoster(message, self.pacer),
                    # Files the tools make (a plot) are attached to the reply.
                    REPLY_FILES_KEY: upload_limit(message),
                },
            ),
            history=history.messages,
            speaker=message.author.display_name if message.guild is not None else None,
            default_tier=await self._default_tier(str(message.author.id)),  # type: ignore[arg-type]
        )
        section = await self.channel_context.section(
            message, bot_id, exclude={*history.ids, message.id}
        )
        if section:
            turn.context_notes.append(section)
        session = await self._session(message)
        if session is not None and session.started_new and session.snapshot:
            turn.context_notes.append(
                f"Summary of your previous conversation here:\n{session.snapshot}"
            )
        return turn, history, session, prepared.user_notice()

    async def _answer(self, message: discord.Message, text: str, *, late: bool = False) -> None:
        me = self.client.user
        assert me is not None
        heard = await self.voice.hear(message)
        if heard is not None:
            if not heard.words and not text.strip():  # nothing heard, nothing typed
                await self._notice(message, heard.notice().strip())
                return
            text = heard.text_for(text)  # the transcript is the user's words
        turn, history, session, notice = await self._prepare(message, text, me.id)
        if late:
            turn.context_notes.append(late_note(message))
        if heard is not None:
            notice = heard.notice() + notice  # "> 🎙️ what she heard" tops the reply
        spoken = self.voice.spoken_reply(message, text)  # also answer with a voice message?
        if spoken is not None:
            turn.context_notes.append(SPOKEN_NOTE)
        cut_note = "earlier messages in this thread are unavailable" if history.cut else None
        badge: str | None = None
        started = time.monotonic()
        # What the monitor's turn record shows (tier, time to first text, tools).
        seen = _TurnFacts()
        reply = StreamingReply(message, self.pacer)
        listeners = [x for o in self.reply_observers if (x := o.reply_started(message))]
        reply.start()  # from here on, cancellation must go through reply.abort()
        # A slow tool's own steps ("pip install mcp-server-time") in the status line.
        turn.context.extras[PROGRESS_KEY] = lambda line: reply.set_status(f"⚙️ {line}…")
        if notice:  # e.g. an attachment over the user's quota: shown first, kept to the end
            reply.append(notice)
        self.in_flight += 1  # undone in the finally below, whatever ends the turn
        try:
            async for event in self.runner.run(turn):
                seen.note(event, started)
                if isinstance(event, TierChosen) and (event.explicit or event.auto):
                    how = "auto" if event.auto else "tier"
                    badge = f"{how}: {event.tier or 'base'}"
                elif isinstance(event, TextDelta):
                    reply.append(event.text)
                    _tell(listeners, "on_delta", event.text)
                elif isinstance(event, ToolStarted):
                    reply.set_status(f"⚙️ {event.activity or f'running {event.name}'}…")
                elif isinstance(event, ToolFinished):
                    mark = "✅" if event.ok else "⚠️"
                    reply.set_status(f"{mark} {event.name} ({event.duration_s:.1f}s)")
                elif isinstance(event, Done):
                    if badge is not None:
                        # Name the model that actually answered, known only now.
                        badge += f" · {event.model}"
                        if event.tool_model:
                            badge += f" (tools: {event.tool_model})"
                    footer = " · ".join(x for x in (badge, cut_note) if x) or None
                    _tell(listeners, "on_done", event.text)  # before the (paced) final edit
                    await reply.finish(notice + event.text, footer=footer, files=event.attachments)
                    for m in reply.messages:
                        self.cache.put(m)
                    await self._store(session, message, text, event.text, reply)
                    self.channel_context.after_reply(message.channel.id)
                    self._record(message, event.model, started, seen, ok=True)
                    if spoken is not None:
                        await spoken.send(self.client, event.text, self.pacer)
                elif isinstance(event, Failed):
                    _tell(listeners, "on_stop")
                    await reply.finish(
                        reply.text + ("\n\n" if reply.text else "") + f"⚠️ {event.message}"
                    )
                    self._record(message, "-", started, seen, ok=False)
        except asyncio.CancelledError:
            _tell(listeners, "on_stop")
            await reply.abort("⏹ stopped")
            raise
        except Exception:
            _tell(listeners, "on_stop")  # (a no-op for a reply that is done)
            raise
        finally:
            self.in_flight -= 1

    def _record(
        self,
        message: discord.Message,
        model: str,
        started: float,
        seen: _TurnFacts,
        *,
        ok: bool,
    ) -> None:
        if self.activity_sink is not None:
            where = f"#{message.channel}" if message.guild is not None else "DM"
            self.activity_sink(
                Activity(
                    time.time(),
                    where,
                    message.author.display_name,
                    model,
                    time.monotonic() - started,
                    ok,
                    channel_id=message.channel.id,
                    tier=seen.tier,
                    ttft_s=seen.ttft_s,
                    tools=tuple(seen.tools),
                    failed_tools=tuple(seen.failed_tools),
                )
            )

    def _context_id(self, message: discord.Message) -> str:
        if message.guild is None:
            return f"discord:dm:{message.author.id}"
        return f"discord:{message.channel.id}"

    async def _session(self, message: discord.Message) -> SessionInfo | None:
        if self.history is None:
            return None
        # None during a PostgreSQL outage: the reply goes on, and _store queues the turn.
        return await self.history.begin(str(message.author.id), self._context_id(message))

    async def _store(
        self,
        session: SessionInfo | None,
        message: discord.Message,
        text: str,
        answer: str,
        reply: StreamingReply,
    ) -> None:
        if self.history is None:
            return
        await self.history.record(
            session,
            str(message.author.id),
            self._context_id(message),
            [
                ("user", str(message.author.id), text, str(message.id)),
                (
                    "assistant",
                    "clara",
                    answer,
                    str(reply.messages[0].id) if reply.messages else None,
                ),
            ],
        )

    async def close(self) -> None:
        await self.queue.close()
        for observer in self.reply_observers:
            await observer.close()
        self.voice.close()
        await self.channel_context.close()
        if self._history_start is not None:
            self._history_start.cancel()
            await asyncio.gather(self._history_start, return_exceptions=True)
        if self.history is not None:
            await self.history.close()
