"""Speaking a reply while it streams: sentences in, 20 ms Opus packets out.

The pieces, in the order text flows through them:

* ``SentenceSplitter`` cuts the model's text deltas into speakable sentences
  as soon as each one is complete, and a reply's opening clause ("Of
  course,") on its own (code blocks are skipped with a short
  note, Markdown is dropped), so the first sentence can be spoken while the
  model is still writing the second.
* ``SpeechSynth.render`` (blocking: run it on the voice pool) turns one
  sentence into audio with piper (22.05 kHz mono), resamples it to Discord's
  48 kHz stereo and encodes 20 ms Opus frames with PyAV's libopus, so no
  system libopus or ffmpeg program is needed and the player thread only
  hands over ready packets.
* ``PacketQueue`` is what the voice connection's audio player reads, one
  packet every 20 ms, from its own thread: audio when there is some, Opus
  silence while a reply is still being synthesised, and the end of stream
  once nothing more is coming.
* ``Speaker`` ties them together for one voice connection: sentences are
  rendered one at a time, in order, on the shared voice pool; ``stop()``
  drops what is queued and what is still being rendered.

Nothing here imports discord: the Discord adapter wraps ``PacketQueue`` in an
``AudioSource`` and starts the player (``on_audio``).

Listening in a voice channel is not built (discord.py cannot receive audio,
and Discord's end-to-end encryption, DAVE, would have to be decrypted on
receive).  ``ReceiveSource`` is the shape a receive path will have: it yields
who spoke and 16 kHz mono samples per utterance, which
``SpeechToText.transcribe_pcm`` already accepts, and the words then enter the
conversation like a voice message's transcript.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .errors import VoiceError

if TYPE_CHECKING:
    from .pool import VoicePool
    from .tts import TextToSpeech

log = logging.getLogger(__name__)

#: Discord voice: 48 kHz stereo Opus, one packet per 20 ms.
RATE = 48_000
FRAME_SAMPLES = RATE // 50
#: discord.py's (and Discord's) Opus silence frame.
OPUS_SILENCE = b"\xf8\xff\xfe"
#: Said once per reply in place of a code block.
CODE_NOTE = "The code is in my text reply."
#: Longest part of one reply that is spoken; the text reply has all of it.
MAX_SPOKEN_CHARS = 1500
REST_NOTE = "The rest is in my text reply."
#: A sentence with no end in sight is cut at a comma or space near this length,
#: so a long run-on sentence does not hold back the audio.
MAX_SENTENCE_CHARS = 240

# A sentence ends at . ! ? or … (closing quotes/brackets may follow) and then
# whitespace, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]*_]*(?=\s)|\n")
_ABBREVIATIONS = frozenset({"e.g", "i.e", "mr", "mrs", "ms", "dr", "st", "vs", "etc", "approx"})
#: An opening clause worth saying alone: at least two words and 8 characters, no
#: sentence end inside, then a comma, semicolon or colon and more text.
_OPENING_CLAUSE = re.compile(r"^\s*([^.!?…\n]{8,}?[,;:])\s+(?=\S)")
_BARE_MARKER = re.compile(r"^\s*(?:\d{1,3}|[a-zA-Z])[.)]\W*$")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"<?https?://\S+>?")
_MARKUP = re.compile(r"[*_`~#>|]+")
_MENTION = re.compile(r"<(?:@[!&]?|#)\d+>")
_CUSTOM_EMOJI = re.compile(r"<a?:(\w+):\d+>")
_SPEAKABLE = re.compile(r"\w")


def speakable(sentence: str) -> str:
    """One sentence of Markdown as plain words (empty when nothing is left to say)."""
    text = _LIST_MARKER.sub("", sentence)
    text = _LINK.sub(lambda m: m.group(1), text)
    text = _URL.sub("", text)
    text = _MENTION.sub("", text)
    text = _CUSTOM_EMOJI.sub(lambda m: m.group(1), text)
    text = _MARKUP.sub("", text)
    text = " ".join(text.split())
    return text if _SPEAKABLE.search(text) else ""


class SentenceSplitter:
    """Cut streamed text into sentences as soon as each is complete.

    ``feed`` returns the sentences a delta completed; ``flush`` the rest once
    the reply is done.  Output is already ``speakable`` (and capped at
    MAX_SPOKEN_CHARS per reply)."""

    def __init__(self, *, max_chars: int = MAX_SPOKEN_CHARS, clause_first: bool = True) -> None:
        self._buf = ""
        # The reply's opening clause goes out alone ("Of course," before the rest of
        # the sentence): piper renders it in a third of the time, so she starts
        # talking sooner, and the rest is ready before the clause has been said.
        self._clause_first = clause_first
        self._in_code = False
        self._said_code = False
        self._spoken = 0
        self._max_chars = max_chars
        self._capped = False

    def feed(self, delta: str) -> list[str]:
        self._buf += delta
        return self._take(final=False)

    def flush(self) -> list[str]:
        return self._take(final=True)

    def _take(self, *, final: bool) -> list[str]:
        out: list[str] = []
        while True:
            if self._in_code:
                end = self._buf.find("```")
                if end < 0:
                    if final:
                        self._buf = ""  # an unterminated block: nothing more to say
                    return self._cap(out)
                self._buf = self._buf[end + 3 :]
                self._in_code = False
                continue
            fence = self._buf.find("```")
            if self._clause_first and fence != 0:
                clause = _OPENING_CLAUSE.match(self._buf if fence < 0 else self._buf[:fence])
                if clause is not None and (said := speakable(clause.group(1))):
                    out.append(said)
                    self._buf = self._buf[clause.end() :]
                    self._clause_first = False
                    continue
            head = self._buf if fence < 0 else self._buf[:fence]
            sentences, rest = _split(head, final=final or fence >= 0)
            out += sentences
            if sentences or fence >= 0:
                self._clause_first = False
            if fence < 0:
                self._buf = rest
                return self._cap(out)
            if not self._said_code:
                self._said_code = True
                out.append(CODE_NOTE)
            self._buf = self._buf[fence + 3 :]
            self._in_code = True

    def _cap(self, sentences: list[str]) -> list[str]:
        kept: list[str] = []
        for sentence in sentences:
            if self._capped:
                break
            if self._spoken + len(sentence) > self._max_chars:
                self._capped = True
                kept.append(REST_NOTE)
                break
            self._spoken += len(sentence)
            kept.append(sentence)
        return kept


def _split(text: str, *, final: bool) -> tuple[list[str], str]:
    """Complete sentences of ``text`` (speakable) and the unfinished rest."""
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        candidate = text[start:end]
        word = re.search(r"([\w.]+)[.]\W*$", candidate.strip())
        if word and word.group(1).lower().rstrip(".") in _ABBREVIATIONS:
            continue  # "e.g. this" is one sentence
        if _BARE_MARKER.match(candidate) and match.group() != "\n":
            continue  # "1." alone is a list marker, not a sentence
        said = speakable(candidate)
        if said:
            out.append(said)
        start = end
    rest = text[start:]
    if final:
        said = speakable(rest)
        if said:
            out.append(said)
        return out, ""
    # A run-on sentence: cut at the last comma (else space) before the limit.
    while len(rest) > MAX_SENTENCE_CHARS:
        window = rest[:MAX_SENTENCE_CHARS]
        cut = max(window.rfind(", "), window.rfind("; "), window.rfind(": "))
        if cut < MAX_SENTENCE_CHARS // 3:
            cut = window.rfind(" ")
        if cut <= 0:
            cut = MAX_SENTENCE_CHARS
        said = speakable(rest[: cut + 1])
        if said:
            out.append(said)
        rest = rest[cut + 1 :]
    return out, rest


class OpusEncoder:
    """Mono float32 audio -> 20 ms, 48 kHz stereo Opus packets (PyAV's libopus).

    One encoder per voice connection keeps Opus's state across sentences (no
    clicks between them).  Each call pads its audio to whole 20 ms frames, so
    every packet it returns is complete.  Blocking; not thread-safe (the
    ``Speaker`` renders one sentence at a time)."""

    def __init__(self, *, bitrate: int = 64_000) -> None:
        import av

        self._av = av
        codec = av.CodecContext.create("libopus", "w")
        codec.sample_rate = RATE
        codec.layout = "stereo"
        codec.format = "s16"
        codec.bit_rate = bitrate
        codec.open()
        self._codec: Any = codec
        self._pts = 0

    def encode(self, samples: np.ndarray, rate: int) -> list[bytes]:
        av = self._av
        mono = np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(mono, format="flt", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=RATE)
        parts = [
            f.to_ndarray().reshape(-1)
            for f in (*resampler.resample(frame), *resampler.resample(None))
        ]
        pcm = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        stereo_frame = 2 * FRAME_SAMPLES
        pad = (-pcm.size) % stereo_frame
        if pad:
            pcm = np.concatenate([pcm, np.zeros(pad, dtype=np.int16)])
        packets: list[bytes] = []
        for start in range(0, pcm.size, stereo_frame):
            chunk = pcm[start : start + stereo_frame].reshape(1, -1)
            out = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
            out.sample_rate = RATE
            out.pts = self._pts
            out.time_base = Fraction(1, RATE)
            self._pts += FRAME_SAMPLES
            packets.extend(bytes(p) for p in self._codec.encode(out))
        return packets


class SpeechSynth:
    """Text -> Opus packets: piper, then ``OpusEncoder`` (blocking: use the voice pool)."""

    def __init__(self, tts: TextToSpeech) -> None:
        self.tts = tts
        self._encoder: OpusEncoder | None = None

    def load(self) -> None:
        """Load the voice and the encoder ahead of the first sentence."""
        self.tts.load()
        if self._encoder is None:
            self._encoder = OpusEncoder()

    def render(self, text: str) -> list[bytes]:
        self.load()
        assert self._encoder is not None
        samples = self.tts.synthesize(text)
        if samples.size == 0:
            return []
        return self._encoder.encode(samples, self.tts.sample_rate)


class PacketQueue:
    """Opus packets for an audio player thread that reads one every 20 ms.

    ``read`` gives the next packet; while more audio is expected (``hold``)
    but none is ready, Opus silence keeps the stream timed; once nothing is
    held and the queue is empty it returns ``b""``, which ends the player, and
    the queue counts as ``ended`` until the next player starts (``restart``)."""

    def __init__(self) -> None:
        self._packets: deque[bytes] = deque()
        self._lock = threading.Lock()
        self._holds = 0
        self.ended = True

    def hold(self) -> None:
        with self._lock:
            self._holds += 1

    def release(self) -> None:
        with self._lock:
            self._holds = max(0, self._holds - 1)

    def put(self, packets: list[bytes]) -> None:
        with self._lock:
            self._packets.extend(packets)

    def restart(self) -> None:
        """A new player starts reading."""
        with self._lock:
            self.ended = False

    def read(self) -> bytes:
        with self._lock:
            if self._packets:
                return self._packets.popleft()
            if self._holds > 0:
                return OPUS_SILENCE
            self.ended = True
            return b""

    def clear(self) -> None:
        with self._lock:
            self._packets.clear()
            self._holds = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._packets)


@dataclass
class _Job:
    text: str
    generation: int
    #: Release the reply's hold on the queue once this job is done.
    last: bool = False


class Speaker:
    """Speech for one voice connection: sentences rendered in order on the voice pool.

    ``on_audio`` is called (on the event loop) whenever packets were queued: the
    adapter starts a player if none is reading the queue."""

    def __init__(self, synth: SpeechSynth, pool: VoicePool, on_audio: Callable[[], None]) -> None:
        self.synth = synth
        self.pool = pool
        self.on_audio = on_audio
        self.queue = PacketQueue()
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue()
        self._generation = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def generation(self) -> int:
        """Counts ``stop()`` calls: a reply that began under another generation was stopped."""
        return self._generation

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="voice-speaker")

    def reply(self) -> SpokenReply:
        """A reply begins: its sentences come through the returned object."""
        return SpokenReply(self, self._generation)

    def _submit(self, job: _Job) -> None:
        if job.generation != self._generation:
            return  # stopped since this reply began
        self._jobs.put_nowait(job)

    def stop(self) -> bool:
        """Drop everything queued or being rendered; True if anything was."""
        busy = not self.queue.ended or not self._jobs.empty() or len(self.queue) > 0
        self._generation += 1
        while not self._jobs.empty():
            self._jobs.get_nowait()
        self.queue.clear()
        return busy

    async def _run(self) -> None:
        while True:
            job = await self._jobs.get()
            if job.generation != self._generation:
                continue
            packets: list[bytes] = []
            if job.text:
                try:
                    packets = await self.pool.run(self.synth.render, job.text)
                except VoiceError as exc:
                    log.warning("could not speak a sentence: %s", exc)
                except Exception:  # a bad sentence must not silence the rest
                    log.exception("speech synthesis failed")
            if job.generation != self._generation:
                continue  # stopped while rendering
            if packets:
                self.queue.put(packets)
                self.on_audio()
            if job.last:
                # The reply's last sentence is queued: once played, the player may end.
                self.queue.release()

    async def close(self) -> None:
        self.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class SpokenReply:
    """One reply being spoken: feed it the text deltas as they stream."""

    def __init__(self, speaker: Speaker, generation: int) -> None:
        self.speaker = speaker
        self.generation = generation
        self.splitter = SentenceSplitter()
        self._streamed = False
        self._open = True
        # While this reply is open the player pads gaps with silence instead of ending.
        speaker.queue.hold()

    def _say(self, sentences: list[str], *, last: bool = False) -> None:
        for i, sentence in enumerate(sentences):
            self.speaker._submit(
                _Job(sentence, self.generation, last=last and i == len(sentences) - 1)
            )
        if last and not sentences:
            self.speaker._submit(_Job("", self.generation, last=True))

    def on_delta(self, text: str) -> None:
        if self._open:
            self._streamed = self._streamed or bool(text)
            self._say(self.splitter.feed(text))

    def on_done(self, text: str) -> None:
        """The answer is complete (``text``: all of it, used when nothing streamed)."""
        if not self._open:
            return
        self._open = False
        if not self._streamed and text:
            self.splitter.feed(text)
        # (When stopped meanwhile these jobs are dropped; stop() already let go of the hold.)
        self._say(self.splitter.flush(), last=True)

    def on_stop(self) -> None:
        """The reply was cancelled or failed: say nothing more of it."""
        if not self._open:
            return
        self._open = False
        self.speaker.queue.release()
        if self.generation == self.speaker._generation:
            self.speaker.stop()


class ReceiveSource(Protocol):
    """What a voice-channel receive path will provide (not built: see the module doc)."""

    def utterances(self) -> AsyncIterator[tuple[int, np.ndarray]]:
        """``(user_id, 16 kHz mono float32 samples)`` per finished utterance."""
        ...
