"""Clara in a voice channel: she reads her replies aloud as they stream.

``/clara join`` (see ``voice_commands``) connects to the caller's voice channel
and links it to the text channel the command came from.  From then on every
reply Clara writes in that text channel is also spoken, sentence by sentence
while the model is still writing (``clara_core.voice.speech``), unless the
person she answers, or the server, turned speech off (``/clara speech``;
neither chose: she speaks, since someone asked her into the channel).  The
choices are stored in PostgreSQL (``storage.preferences``) and cached here
(``SpeechChoices``), so a reply's start costs no query once a person's choice
is known.  "@Clara stop" stops the speech along with the answer.  She leaves on ``/clara leave``, when everyone else has left
the voice channel for VOICE_CHANNEL_IDLE_SECONDS, and on shutdown.

Audio goes out through discord.py's voice client (PyNaCl for the transport
encryption, davey for DAVE) as ready-made Opus packets: the player thread
reads them from a ``PacketQueue`` every 20 ms.  Without the voice extra every
command answers with one plain sentence saying what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import discord

from clara_core.config import Settings
from clara_core.voice import CHANNEL_NEEDS, missing_for_speaking

if TYPE_CHECKING:
    from clara_core.voice.pool import VoicePool
    from clara_core.voice.speech import PacketQueue, Speaker, SpeechSynth, SpokenReply
    from storage.preferences import Preferences

log = logging.getLogger(__name__)

#: How long a connection attempt may take before the user is told it failed.
CONNECT_TIMEOUT_S = 20.0
LEAVE_TIMEOUT_S = 5.0
INSTALL = "pip install --require-hashes -r requirements-voice.lock"
#: A stored choice is read within this time or the reply goes on as if none was made
#: (speech only: the text reply never waits for it).
READ_TIMEOUT_S = 2.0
#: A toggle is saved within this time or the user is told it lasts until a restart
#: (the slash command must answer within Discord's 3 s).
WRITE_TIMEOUT_S = 2.0
#: After a failed read, stored choices are not asked for again for this long: each
#: reply must not wait on a database that is down.
RETRY_AFTER_S = 30.0
#: Most users' choices cached (a known "no choice" counts); a few bytes each.
MAX_CACHED_USERS = 20_000
#: A cached choice is read again after this long: a toggle or ``/clara forget`` in
#: another Clara process reaches this one within it, even when the forget signal
#: (storage/forget_signal.py) could not (Redis down).
CHOICE_TTL_S = 600.0


def missing_for_voice_channels(settings: Settings) -> list[str]:
    """What speaking in voice channels still needs here ([] when ready)."""
    missing = missing_for_speaking(custom_voice=bool(settings.piper_model))
    missing += [
        what for module, what in CHANNEL_NEEDS.items() if importlib.util.find_spec(module) is None
    ]
    if importlib.util.find_spec("av") is None:
        missing.append("av (PyAV, with libopus)")
    return missing


class QueueSource(discord.AudioSource):
    """discord.py's player reads ready Opus packets from a ``PacketQueue``."""

    def __init__(self, queue: PacketQueue) -> None:
        self.queue = queue

    def read(self) -> bytes:
        return self.queue.read()

    def is_opus(self) -> bool:
        return True


@dataclass
class VoiceLink:
    """One server's voice connection and the text channel whose replies it speaks."""

    guild_id: int
    voice_client: discord.VoiceClient
    text_channel_id: int
    speaker: Speaker
    watcher: asyncio.Task[None] | None = None
    joined_at: float = field(default_factory=time.monotonic)


class _Deferred:
    """A reply whose author's speech choice is still being read: its text is kept
    until the answer is known, then spoken from the start (or dropped)."""

    def __init__(
        self, channels: VoiceChannels, link: VoiceLink, guild_id: int, user_id: int
    ) -> None:
        self._parts: list[str] = []
        self._done: str | None = None
        self._stopped = False
        self._target: SpokenReply | None = None
        self._link = link
        # A stop phrase said while the choice is read must silence this reply too.
        self._generation = link.speaker.generation
        task = asyncio.get_running_loop().create_task(
            self._decide(channels, guild_id, user_id), name="voice-speech-choice"
        )
        channels._pending.add(task)
        task.add_done_callback(channels._pending.discard)

    async def _decide(self, channels: VoiceChannels, guild_id: int, user_id: int) -> None:
        try:
            speak = await channels.choices.decide(guild_id, user_id)
        except Exception:  # not an outage (those count as "not chosen"): a bug to see
            log.exception("could not read a speech choice; this reply stays text only")
            return
        link = self._link
        if (
            not speak
            or self._stopped
            or channels.links.get(guild_id) is not link
            or link.speaker.generation != self._generation
        ):
            return
        self._target = spoken = link.speaker.reply()
        if self._parts:
            spoken.on_delta("".join(self._parts))
            self._parts.clear()
        if self._done is not None:
            spoken.on_done(self._done)

    def on_delta(self, text: str) -> None:
        if self._target is not None:
            self._target.on_delta(text)
        elif not self._stopped:
            self._parts.append(text)

    def on_done(self, text: str) -> None:
        if self._target is not None:
            self._target.on_done(text)
        else:
            self._done = text

    def on_stop(self) -> None:
        self._stopped = True
        self._parts.clear()
        if self._target is not None:
            self._target.on_stop()


class SpeechChoices:
    """The ``/clara speech`` toggles: the user's own and the server's, stored in
    PostgreSQL through ``Preferences`` and cached here.

    The cache is filled once per person (``load``: everyone in the voice channel
    at once when Clara joins) and changed only by the toggles themselves and by
    ``/clara forget`` (``delete_user_data``), here or, through the forget signal,
    in another Clara process; an entry is read again after ``CHOICE_TTL_S`` (what
    another process changed reaches this one within that, even unsignalled), so
    deciding whether a reply is spoken costs at most one query per person per
    ``CHOICE_TTL_S``.  When PostgreSQL is unreachable a
    toggle still applies for this run (``set_*`` return False) and a read treats
    the person as not having chosen, without asking again for RETRY_AFTER_S."""

    def __init__(
        self, store: Callable[[], Preferences | None], *, ttl_s: float = CHOICE_TTL_S
    ) -> None:
        self._store = store
        self.ttl_s = ttl_s
        #: user id -> their choice (None: known not to have chosen)
        self.users: dict[int, bool | None] = {}
        #: guild id -> the server's choice (None: known not to have chosen)
        self.guilds: dict[int, bool | None] = {}
        # Choices set while the database was down: kept in memory (never evicted).
        self._unsaved: set[int] = set()
        self._retry_at = 0.0
        self._cached_at: dict[int, float] = {}  # user id -> monotonic time cached

    def _expire(self, user_id: int) -> None:
        at = self._cached_at.get(user_id)
        if at is not None and time.monotonic() - at > self.ttl_s and user_id not in self._unsaved:
            self.users.pop(user_id, None)
            self._cached_at.pop(user_id, None)

    @property
    def stored(self) -> bool:
        """Whether choices are stored at all (a database is configured)."""
        return self._store() is not None

    @staticmethod
    def effective(user: bool | None, server: bool | None) -> bool:
        """The user's choice, else the server's, else on: Clara is in a voice channel
        because someone asked her to join, and they expect to hear her."""
        if user is not None:
            return user
        if server is not None:
            return server
        return True

    def known(self, guild_id: int, user_id: int) -> bool | None:
        """The decision when the cache has what it needs, else None (``decide``)."""
        self._expire(user_id)
        user = self.users.get(user_id)
        if user is not None:
            return user
        if user_id not in self.users or guild_id not in self.guilds:
            return None
        return self.effective(None, self.guilds[guild_id])

    async def decide(self, guild_id: int, user_id: int) -> bool:
        known = self.known(guild_id, user_id)
        if known is not None:
            return known
        await self.load(guild_id, [user_id])
        return self.effective(self.users.get(user_id), self.guilds.get(guild_id))

    async def load(self, guild_id: int, user_ids: Iterable[int]) -> None:
        """Cache the server's choice and these users' (one query each, only for what
        isn't cached yet)."""
        store = self._store()
        user_ids = list(dict.fromkeys(user_ids))
        for user_id in user_ids:
            self._expire(user_id)
        missing = [u for u in user_ids if u not in self.users]
        need_guild = guild_id not in self.guilds
        if store is None:
            # No database configured: nobody chose anything beyond this run.
            for user_id in missing:
                self._remember(user_id, None)
            self.guilds.setdefault(guild_id, None)
            return
        if (not missing and not need_guild) or time.monotonic() < self._retry_at:
            return
        from storage.preferences import PreferencesUnavailable

        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                if need_guild:
                    server = await store.guild_speak_replies(str(guild_id))
                    self.guilds.setdefault(guild_id, server)
                if missing:
                    found = await store.speak_replies(str(u) for u in missing)
                    for user_id in missing:
                        if user_id not in self.users:  # a toggle meanwhile wins
                            self._remember(user_id, found.get(str(user_id)))
        except (PreferencesUnavailable, TimeoutError) as exc:
            self._retry_at = time.monotonic() + RETRY_AFTER_S
            log.warning(
                "speech choices unavailable (PostgreSQL unreachable: %s); "
                "treating them as not chosen for %.0fs",
                str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
                RETRY_AFTER_S,
            )

    def _remember(self, user_id: int, value: bool | None) -> None:
        self.users.pop(user_id, None)
        self.users[user_id] = value  # newest last: the oldest are evicted first
        self._cached_at[user_id] = time.monotonic()
        if len(self.users) > MAX_CACHED_USERS:
            for old in list(self.users)[: len(self.users) - MAX_CACHED_USERS]:
                if old not in self._unsaved:
                    del self.users[old]
                    self._cached_at.pop(old, None)

    async def set_user(self, user_id: int, value: bool | None) -> bool:
        """Applies at once; True when stored, False when it lasts until a restart."""
        self._remember(user_id, value)
        self._unsaved.add(user_id)
        store = self._store()
        if store is None:
            return False
        saved = await self._save(store.set_speak_replies(str(user_id), value))
        if saved:
            self._unsaved.discard(user_id)
        return saved

    async def set_guild(self, guild_id: int, value: bool | None) -> bool:
        self.guilds[guild_id] = value
        store = self._store()
        if store is None:
            return False
        return await self._save(store.set_guild_speak_replies(str(guild_id), value))

    async def _save(self, write: Any) -> bool:
        from storage.preferences import PreferencesUnavailable

        try:
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                await write
        except (PreferencesUnavailable, TimeoutError) as exc:
            # Reads would fail too: don't make the answer wait for them as well.
            self._retry_at = time.monotonic() + RETRY_AFTER_S
            log.warning("could not save a speech choice (PostgreSQL unreachable: %s)", exc)
            return False
        return True

    async def delete_user_data(self, user_id: str) -> int | None:
        """``/clara forget``: drop the cached choice (the stored one goes with the
        user's preferences row, ``storage.user_data``)."""
        try:
            key = int(user_id)
        except ValueError:
            return 0
        self._unsaved.discard(key)
        self.users.pop(key, None)
        self._cached_at.pop(key, None)
        return None


class VoiceChannels:
    """Every voice connection of this client (one per server), and the speech toggles.

    Registered as a reply observer on the conversation handler: ``reply_started``
    gives a listener for replies in a linked text channel, ``channel_stopped``
    is the stop phrase.  The toggles are ``choices`` (stored, cached)."""

    def __init__(
        self,
        client: discord.Client,
        settings: Settings,
        pool: VoicePool | None = None,
        preferences: Callable[[], Preferences | None] | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self._pool = pool
        self._own_pool = False  # a pool we made (no conversation to share one with)
        self.links: dict[int, VoiceLink] = {}
        self._synth: SpeechSynth | None = None
        # Looked up when used: the client gets its store with the pipeline.
        self.choices = SpeechChoices(preferences or (lambda: getattr(client, "preferences", None)))
        self._locks: dict[int, asyncio.Lock] = {}
        self._pending: set[asyncio.Task[None]] = set()

    # -- joining and leaving -----------------------------------------------------

    @property
    def pool(self) -> VoicePool:
        if self._pool is None:
            from clara_core.voice.pool import VoicePool

            self._pool = VoicePool(self.settings.voice_workers)
            self._own_pool = True
        return self._pool

    def _get_synth(self) -> SpeechSynth:
        if self._synth is None:
            from clara_core.voice.speech import SpeechSynth
            from clara_core.voice.tts import TextToSpeech

            self._synth = SpeechSynth(TextToSpeech(self.settings))
        return self._synth

    def unavailable(self) -> str | None:
        """A sentence for the user when voice channels can't work here, else None."""
        missing = missing_for_voice_channels(self.settings)
        if not missing:
            return None
        log.warning("/clara join needs: %s", ", ".join(missing))
        return (
            "I can't speak in voice channels here: the bot's voice extra isn't installed. "
            f"(For the bot's operator: it needs {', '.join(missing)}; {INSTALL}. `doctor` "
            "lists what is missing.)"
        )

    async def join(self, member: discord.Member, text_channel_id: int) -> str:
        """Join ``member``'s voice channel and speak replies in ``text_channel_id``;
        returns what to tell them."""
        problem = self.unavailable()
        if problem is not None:
            return problem
        voice = member.voice
        target = voice.channel if voice is not None else None
        if target is None:
            return "Join a voice channel first, then run `/clara join` again."
        guild = member.guild
        me = guild.me
        perms = target.permissions_for(me)
        if not perms.connect or not perms.speak:
            return (
                f"I'm not allowed to {'join' if not perms.connect else 'speak in'} "
                f"{target.mention}; a server admin can give me the Connect and Speak permissions."
            )
        async with self._locks.setdefault(guild.id, asyncio.Lock()):
            link = self.links.get(guild.id)
            if link is not None and link.voice_client.is_connected():
                link.text_channel_id = text_channel_id
                if link.voice_client.channel.id != target.id:
                    try:
                        await link.voice_client.move_to(target, timeout=CONNECT_TIMEOUT_S)
                    except TimeoutError:
                        return f"I couldn't move to {target.mention} in time; try again."
                return await self._joined_text(target, text_channel_id, member)
            if link is not None:
                await self._drop(link)
            try:
                voice_client = await target.connect(
                    timeout=CONNECT_TIMEOUT_S, reconnect=True, self_deaf=True
                )
            except TimeoutError:
                return (
                    f"I couldn't connect to {target.mention} in time (Discord's voice server "
                    "didn't answer); try again in a minute."
                )
            except discord.ClientException as exc:
                log.warning("voice connect refused: %s", exc)
                return "I'm already connecting to a voice channel here; give me a moment."
            except RuntimeError as exc:  # discord.py without PyNaCl or davey
                log.error("voice connect impossible: %s", exc)
                return self.unavailable() or "Voice channels aren't available here right now."
            except (discord.ConnectionClosed, OSError) as exc:
                log.warning("voice connect failed: %s", exc)
                return (
                    f"Discord's voice server closed the connection to {target.mention}; "
                    "try `/clara join` again in a minute."
                )
            self.links[guild.id] = self._link(guild.id, voice_client, text_channel_id)
        return await self._joined_text(target, text_channel_id, member)

    def _link(
        self, guild_id: int, voice_client: discord.VoiceClient, text_channel_id: int
    ) -> VoiceLink:
        from clara_core.voice.speech import Speaker

        synth = self._get_synth()
        speaker = Speaker(synth, self.pool, on_audio=lambda: self._play(guild_id))
        speaker.start()
        link = VoiceLink(guild_id, voice_client, text_channel_id, speaker)
        link.watcher = asyncio.get_running_loop().create_task(
            self._watch(link), name=f"voice-watch-{guild_id}"
        )
        # Load the voice now, so the first reply isn't held up by it.
        warm = asyncio.get_running_loop().create_task(self._warm(synth), name="voice-warm-up")
        warm.add_done_callback(lambda t: t.cancelled() or t.exception())
        return link

    async def _warm(self, synth: SpeechSynth) -> None:
        try:
            await self.pool.run(synth.load)
        except Exception as exc:
            log.warning("could not load the piper voice: %s", exc)

    async def _joined_text(
        self, target: discord.abc.Connectable, text_channel_id: int, member: discord.Member
    ) -> str:
        where = getattr(target, "mention", "the voice channel")
        # Everyone already in the channel: their choices in one query, so their
        # first replies start speaking without one.
        present = list(getattr(target, "voice_states", {}))
        await self.choices.load(member.guild.id, [member.id, *present])
        if await self.choices.decide(member.guild.id, member.id):
            how = (
                f"I'll read my replies in <#{text_channel_id}> aloud as I write them. "
                '`/clara speech off` turns that off for you; "@Clara stop" stops me mid-sentence.'
            )
        else:
            why = (
                "you turned speech off"
                if self.choices.users.get(member.id) is False
                else "speech is off on this server"
            )
            how = (
                f"My replies to you in <#{text_channel_id}> stay text only ({why}); "
                "`/clara speech on` has me read them aloud."
            )
        return f"🔊 Joined {where}. {how} `/clara leave` sends me away."

    async def leave(self, guild_id: int, *, reason: str = "asked") -> bool:
        """Leave the server's voice channel; False when Clara wasn't in one."""
        link = self.links.get(guild_id)
        if link is None:
            return False
        async with self._locks.setdefault(guild_id, asyncio.Lock()):
            if self.links.get(guild_id) is not link:
                return False
            log.info("leaving voice in guild %s (%s)", guild_id, reason)
            await self._drop(link)
        return True

    async def _drop(self, link: VoiceLink) -> None:
        self.links.pop(link.guild_id, None)
        if link.watcher is not None and link.watcher is not asyncio.current_task():
            link.watcher.cancel()
        await link.speaker.close()
        link.voice_client.stop()
        try:
            # discord.py waits for Discord to confirm; don't let a dead gateway hold us.
            await asyncio.wait_for(link.voice_client.disconnect(force=True), LEAVE_TIMEOUT_S)
        except Exception as exc:  # already gone (kicked, network): nothing to undo
            log.debug("voice disconnect: %s", exc)

    # -- speaking ----------------------------------------------------------------

    def _play(self, guild_id: int) -> None:
        """Packets are waiting: make sure a player reads them (on the event loop)."""
        link = self.links.get(guild_id)
        if link is None:
            return
        voice_client = link.voice_client
        queue = link.speaker.queue
        if not voice_client.is_connected():
            link.speaker.stop()
            return
        if voice_client.is_playing():
            if queue.ended:
                # That player read its last packet and is about to stop: start anew then.
                asyncio.get_running_loop().call_later(0.005, self._play, guild_id)
            return  # else it reads the new packets itself
        queue.restart()
        try:
            voice_client.play(QueueSource(queue))
        except discord.ClientException as exc:
            log.warning("could not start speaking: %s", exc)
            link.speaker.stop()

    def reply_started(self, message: discord.Message) -> SpokenReply | _Deferred | None:
        """A listener when this reply should be spoken, else None."""
        guild = message.guild
        if guild is None:
            return None
        link = self.links.get(guild.id)
        if link is None or link.text_channel_id != message.channel.id:
            return None
        if not link.voice_client.is_connected():
            return None
        speak = self.choices.known(guild.id, message.author.id)
        if speak is None:
            # Not cached yet (someone new to this run): look it up without holding
            # the reply; its first words wait in the listener meanwhile.
            return _Deferred(self, link, guild.id, message.author.id)
        # SpokenReply is itself a ReplyListener (on_delta, on_done, on_stop).
        return link.speaker.reply() if speak else None

    async def channel_stopped(self, channel_id: int) -> bool:
        """The stop phrase in ``channel_id``: hush its voice link; True if it was talking."""
        for link in self.links.values():
            if link.text_channel_id == channel_id:
                busy = link.speaker.stop()
                playing = link.voice_client.is_playing()
                link.voice_client.stop()
                return busy or playing
        return False

    # -- leaving an empty channel -------------------------------------------------

    def _alone(self, link: VoiceLink) -> bool:
        channel = link.voice_client.channel
        me = self.client.user
        for user_id in getattr(channel, "voice_states", {}):
            if me is not None and user_id == me.id:
                continue
            member = link.voice_client.guild.get_member(user_id)
            if member is None or not member.bot:
                return False
        return True

    async def _watch(self, link: VoiceLink) -> None:
        """Leave once nobody but bots has been in the channel for the idle time."""
        idle = self.settings.voice_channel_idle_seconds
        alone_since: float | None = None
        try:
            while self.links.get(link.guild_id) is link:
                if not link.voice_client.is_connected() and time.monotonic() - link.joined_at > (
                    CONNECT_TIMEOUT_S
                ):
                    # Disconnected for good (kicked, channel deleted): tidy up.
                    await self.leave(link.guild_id, reason="disconnected")
                    return
                if self._alone(link):
                    alone_since = alone_since or time.monotonic()
                    if time.monotonic() - alone_since >= idle:
                        await self.leave(link.guild_id, reason="the channel is empty")
                        return
                else:
                    alone_since = None
                wait = (
                    idle
                    if alone_since is None
                    else max(0.05, alone_since + idle - time.monotonic())
                )
                with contextlib.suppress(TimeoutError):
                    await self.client.wait_for(
                        "voice_state_update",
                        check=lambda m, *_: m.guild.id == link.guild_id,
                        timeout=min(wait, 30.0),
                    )
        except asyncio.CancelledError:
            pass

    async def close(self) -> None:
        """Shutdown: leave every voice channel."""
        for task in list(self._pending):
            task.cancel()
        for guild_id in list(self.links):
            await self.leave(guild_id, reason="shutting down")
        if self._pool is not None and self._own_pool:
            self._pool.close()  # a shared pool is closed by the conversation
