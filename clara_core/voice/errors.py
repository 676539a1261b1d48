"""Voice errors, each worded for the person who sent the audio."""

from __future__ import annotations

from clara_core.errors import ClaraError


class VoiceError(ClaraError):
    """Something went wrong turning audio into words or words into audio."""


class VoiceUnavailable(VoiceError):
    """The voice extra (or its model) is not installed here."""


class BadAudio(VoiceError):
    """The file is damaged or in a format that can't be decoded."""


class AudioTooLong(VoiceError):
    def __init__(self, seconds: float, limit: float) -> None:
        super().__init__(f"the audio runs {seconds:.0f} s, over the {limit:.0f} s limit")
        self.seconds = seconds
        self.limit = limit


class VoiceBusy(VoiceError):
    """Too many transcriptions are already waiting."""
