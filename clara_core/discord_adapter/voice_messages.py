"""Voice messages and audio/video attachments -> the user's words.

A Discord voice message (message flag IS_VOICE_MESSAGE, one Ogg/Opus attachment
with ``duration_secs`` and ``waveform``) is transcribed and its transcript *is*
the user's message; an audio or video attachment's transcript is added below
what they typed.  Clara's reply starts with a quote line showing what she heard
("> 🎙️ …"), so a misheard word is visible at once.  Every failure (voice not
installed, a damaged or over-long file, a full queue) becomes one plain
sentence for the user; when a voice message is all they sent and it could not
be heard, that sentence is the whole reply and the model is not asked.

Spoken replies: when the user asks for one ("reply as a voice message") or sent
a voice message with CLARA_TTS_DEFAULT on, Clara's finished answer is also
posted as a Discord voice message (piper -> Ogg/Opus, with duration and
waveform), rendered on the same worker pool.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import discord

from clara_core.config import Settings
from clara_core.voice import missing_for_listening, missing_for_speaking
from clara_core.voice.errors import AudioTooLong, BadAudio, VoiceBusy, VoiceError, VoiceUnavailable
from clara_core.voice.pool import VoicePool
from storage.local_files import human_size

from .pacing import ChannelPacer, Priority

if TYPE_CHECKING:
    # numpy, PyAV & co. load with the first voice message, not with the adapter.
    from clara_core.voice.stt import Listener
    from clara_core.voice.tts import TextToSpeech, VoiceClip

log = logging.getLogger(__name__)

#: Discord's message flag for voice messages.
IS_VOICE_MESSAGE = 1 << 13
AUDIO_SUFFIXES = {
    ".ogg", ".oga", ".opus", ".mp3", ".wav", ".m4a", ".aac", ".flac", ".weba", ".webm",
    ".mp4", ".mov", ".mkv",
}  # fmt: skip
#: How much of a transcript the quote line shows; the model always gets all of it.
QUOTE_MAX_CHARS = 300
#: "reply as a voice message", "answer me with a voice note", "respond in a voice message".
ASKS_FOR_VOICE = re.compile(
    r"\b(?:reply|answer|respond|talk)\b[^.?!\n]{0,30}\bvoice (?:message|note)\b", re.IGNORECASE
)
#: Longest answer spoken (about a minute of speech); the text reply has the rest.
SPOKEN_MAX_CHARS = 1000
SPOKEN_NOTE = (
    "Your answer will also be read aloud as a voice message: keep it short and easy to "
    "listen to (no tables or code)."
)
_CODE_BLOCK = re.compile(r"```.*?(?:```|$)", re.DOTALL)
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)|<?https?://\S+>?")
_MARKUP = re.compile(r"[*_`~#>|]+")


def is_voice_message(message: discord.Message, att: discord.Attachment) -> bool:
    return bool(message.flags.value & IS_VOICE_MESSAGE) or att.is_voice_message()


def is_audio(att: discord.Attachment) -> bool:
    ctype = (att.content_type or "").split(";")[0]
    return (
        att.is_voice_message()
        or ctype.startswith(("audio/", "video/"))
        or PurePosixPath(att.filename.lower()).suffix in AUDIO_SUFFIXES
    )


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _quote(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > QUOTE_MAX_CHARS:
        text = text[: QUOTE_MAX_CHARS - 1].rstrip() + "…"
    # A transcript is the user's words, but it must not ping anyone through Clara.
    return discord.utils.escape_mentions(text)


@dataclass
class Heard:
    """What Clara heard in one message's audio."""

    #: Transcripts for the model, in attachment order.
    words: list[str] = field(default_factory=list)
    #: Quote lines shown at the top of the reply.
    quotes: list[str] = field(default_factory=list)
    #: Plain sentences for the user about audio that could not be heard.
    problems: list[str] = field(default_factory=list)

    def text_for(self, typed: str) -> str:
        """The turn's text: what they typed, then what they said."""
        return "\n\n".join(part for part in (typed.strip(), *self.words) if part)

    def notice(self) -> str:
        lines = [*self.quotes, *(f"⚠️ {p}" for p in self.problems)]
        return "".join(f"{line}\n" for line in lines) + ("\n" if lines else "")


def speakable(text: str) -> str:
    """What of a Markdown answer can be read aloud: no code, links or markup, at most
    SPOKEN_MAX_CHARS (cut at a sentence end)."""
    text = _CODE_BLOCK.sub(" (code is in the text reply) ", text)
    text = _LINK.sub(lambda m: m.group(1) or "", text)
    text = _MARKUP.sub("", discord.utils.remove_markdown(text, ignore_links=True))
    text = " ".join(text.split())
    if len(text) > SPOKEN_MAX_CHARS:
        cut = text[:SPOKEN_MAX_CHARS]
        end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
        text = (cut[: end + 1] if end > 0 else cut) + " The rest is in my text reply."
    return text


class VoiceMessageFile(discord.File):
    """An upload carrying a voice message's ``duration_secs`` and ``waveform``.

    discord.py's File has no such fields; Discord reads them from the message's
    ``attachments`` entry, which ``to_dict`` builds."""

    def __init__(self, clip: VoiceClip) -> None:
        super().__init__(io.BytesIO(clip.ogg), filename="voice-message.ogg")
        self.clip = clip

    def to_dict(self, index: int) -> dict[str, Any]:
        entry = super().to_dict(index)
        entry["duration_secs"] = round(self.clip.seconds, 2)
        entry["waveform"] = self.clip.waveform
        return entry


async def send_voice_message(
    client: discord.Client, reply_to: discord.Message, clip: VoiceClip
) -> int:
    """Post ``clip`` as a voice message replying to ``reply_to``; returns its id.

    ``Messageable.send`` cannot set the IS_VOICE_MESSAGE flag, so this builds the
    same multipart request with discord.py's own helper and HTTP client."""
    from discord.http import handle_message_parameters

    with handle_message_parameters(
        file=VoiceMessageFile(clip),
        flags=discord.MessageFlags(voice=True),
        message_reference=reply_to.to_reference(fail_if_not_exists=False).to_dict(),
        allowed_mentions=discord.AllowedMentions.none(),
    ) as params:
        data = await client.http.send_message(reply_to.channel.id, params=params)
    return int(data["id"])


@dataclass
class SpokenReply:
    """A voice message of the answer, to post once the text reply is done."""

    owner: VoiceMessages
    message: discord.Message

    async def send(self, client: discord.Client, answer: str, pacer: ChannelPacer) -> None:
        text = speakable(answer)
        if not text:
            return
        try:
            clip = await self.owner.record(text)
            async with pacer.slot(self.message.channel.id, Priority.FIRST_MESSAGE):
                await send_voice_message(client, self.message, clip)
        except VoiceBusy:
            problem = "I'm busy with other voice messages, so this answer is text only."
        except VoiceError as exc:
            log.warning("no spoken reply: %s", exc)
            problem = "I couldn't record a voice reply here, so this answer is text only."
        except discord.HTTPException as exc:
            log.warning("could not post a voice message: %s", exc)
            problem = (
                "Discord didn't take my voice message"
                + (" (I may not attach files here)" if exc.status == 403 else "")
                + ", so this answer is text only."
            )
        else:
            return
        try:
            async with pacer.slot(self.message.channel.id, Priority.FIRST_MESSAGE):
                await self.message.reply(f"-# {problem}", mention_author=False)
        except discord.HTTPException as exc:
            log.warning("could not send notice: %s", exc)


class VoiceMessages:
    """Transcribes a message's audio on the voice worker pool (never on the event loop)."""

    def __init__(self, settings: Settings, listener: Listener | None = None) -> None:
        self.settings = settings
        self._listener = listener
        self._pool: VoicePool | None = listener.pool if listener is not None else None
        self._tts: TextToSpeech | None = None
        self._missing = (
            missing_for_listening(custom_model=bool(settings.stt_model)) if listener is None else []
        )

    @property
    def listener(self) -> Listener | None:
        if self._listener is None and self.settings.voice_enabled and not self._missing:
            # Created lazily: the model itself loads on the first voice message.
            from clara_core.voice.stt import Listener

            self._listener = Listener(self.settings, self.pool)
        return self._listener

    @property
    def pool(self) -> VoicePool:
        # One pool for listening and speaking: together they never take more than
        # VOICE_WORKERS threads.
        if self._pool is None:
            self._pool = VoicePool(self.settings.voice_workers)
        return self._pool

    def spoken_reply(self, message: discord.Message, text: str) -> SpokenReply | None:
        """A voice message of the answer is wanted: asked for ("reply as a voice
        message"), or answering a voice message with CLARA_TTS_DEFAULT on."""
        voice_in = any(is_voice_message(message, a) for a in message.attachments)
        if ASKS_FOR_VOICE.search(text) or (voice_in and self.settings.clara_tts_default):
            return SpokenReply(self, message)
        return None

    async def record(self, text: str) -> VoiceClip:
        """Render ``text`` as a voice message (on the voice pool)."""
        if self._tts is None:
            missing = missing_for_speaking(custom_voice=bool(self.settings.piper_model))
            if missing:
                raise VoiceUnavailable(f"speech needs {', '.join(missing)}")
            from clara_core.voice.tts import TextToSpeech

            self._tts = TextToSpeech(self.settings)
        return await self.pool.run(self._tts.voice_clip, text)

    def _unavailable(self) -> str:
        if not self.settings.voice_enabled:
            return (
                "Voice messages are turned off here (VOICE_ENABLED), so please type your message."
            )
        log.warning("a voice message arrived but voice needs: %s", ", ".join(self._missing))
        return (
            "Voice isn't enabled here, so I can't listen to voice messages yet; please type your "
            "message. (For the bot's operator: install Clara's voice extra, pip install "
            "'.[voice]'; `doctor` lists what is missing.)"
        )

    async def hear(self, message: discord.Message) -> Heard | None:
        """Transcripts of the message's audio; None when it has none."""
        audio = [a for a in message.attachments if is_audio(a)]
        if not audio:
            return None
        heard = Heard()
        listener = self.listener
        if listener is None:
            if not any(is_voice_message(message, a) for a in audio):
                return None  # a song or a video: just an attachment, as without voice
            heard.problems.append(self._unavailable())
            return heard
        for att in audio:
            voice = is_voice_message(message, att)
            name = "that voice message" if voice else att.filename
            limit = self.settings.voice_max_bytes
            if att.size > limit:
                heard.problems.append(
                    f"{_cap(name)} is {human_size(att.size)}, more than the {human_size(limit)} "
                    "I can listen to; send a shorter recording or type it."
                )
                continue
            if att.duration is not None and att.duration > self.settings.voice_max_seconds + 1:
                heard.problems.append(self._too_long(name, att.duration))
                continue
            try:
                data = await att.read()
                transcript = await listener.transcribe(data)
            except discord.HTTPException as exc:
                heard.problems.append(
                    f"I couldn't download {name} ({exc.status}); please send it again."
                )
                continue
            except AudioTooLong as exc:
                heard.problems.append(self._too_long(name, exc.seconds))
                continue
            except BadAudio as exc:
                log.info("unreadable audio %s: %s", att.filename, exc)
                heard.problems.append(
                    f"I couldn't play {name}: the audio is damaged or in a format I can't read. "
                    "Try recording it again, or type your message."
                )
                continue
            except VoiceBusy:
                heard.problems.append(
                    f"I'm still listening to other voice messages; send {name} again in a minute."
                )
                continue
            except VoiceUnavailable as exc:
                log.error("voice is configured but unusable: %s", exc)
                heard.problems.append(
                    "Voice isn't working here right now, so please type your message. (For the "
                    "bot's operator: `doctor` says what voice needs.)"
                )
                continue
            except VoiceError as exc:
                heard.problems.append(f"I couldn't listen to {name}: {exc}.")
                continue
            log.info(
                "transcribed %s: %.1fs of audio in %.2fs",
                att.filename,
                transcript.seconds,
                transcript.elapsed,
            )
            if not transcript.text:
                heard.problems.append(f"I couldn't make out any words in {name}.")
                continue
            if voice:
                heard.words.append(transcript.text)
                heard.quotes.append(f"> 🎙️ {_quote(transcript.text)}")
            else:
                heard.words.append(
                    f"--- transcript of {att.filename} ---\n{transcript.text}\n"
                    f"--- end of transcript ---"
                )
                heard.quotes.append(f"> 🎙️ {att.filename}: {_quote(transcript.text)}")
        return heard

    def _too_long(self, name: str, seconds: float) -> str:
        limit = self.settings.voice_max_seconds
        return (
            f"{_cap(name)} runs {seconds:.0f} s; I listen to at most {limit:.0f} s at a time. "
            "Send a shorter clip, or type it."
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
