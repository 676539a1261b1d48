"""What ``doctor`` says about voice: one line each for listening, speaking, voice channels.

Voice is optional, so these are warnings, never failures.  Only package
presence is checked (no model is loaded), so ``doctor`` stays quick.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from . import missing_for_channels, missing_for_listening, missing_for_speaking

if TYPE_CHECKING:
    from clara_core.config.voice import VoiceSettings

INSTALL = "pip install --require-hashes -r requirements-voice.lock"


def _has_libopus() -> bool:
    if importlib.util.find_spec("av") is None:
        return False
    import av

    return "libopus" in av.codecs_available


def voice_checks(settings: VoiceSettings) -> list[tuple[str, bool, str]]:
    """``(name, ok, detail)`` rows for doctor."""
    rows: list[tuple[str, bool, str]] = []
    if not settings.voice_enabled:
        rows.append(("voice: listening", True, "off (VOICE_ENABLED=false)"))
    elif missing := missing_for_listening(custom_model=bool(settings.stt_model)):
        rows.append(
            (
                "voice: listening",
                False,
                "voice messages get a 'voice isn't enabled here' reply; needs "
                f"{', '.join(missing)} ({INSTALL})",
            )
        )
    else:
        model = settings.stt_model or "tiny.en (bundled, offline)"
        rows.append(("voice: listening", True, f"voice messages are transcribed with {model}"))

    missing = missing_for_speaking(custom_voice=bool(settings.piper_model))
    if not missing and not _has_libopus():
        missing = ["PyAV built with libopus"]
    if missing:
        rows.append(("voice: speaking", False, f"needs {', '.join(missing)} ({INSTALL})"))
    else:
        voice = settings.piper_model or "en_US-joe-medium (bundled)"
        rows.append(("voice: speaking", True, f"piper voice {voice}"))

    channels = missing + missing_for_channels()
    if channels:
        rows.append(
            ("voice: channels", False, f"/clara join needs {', '.join(channels)} ({INSTALL})")
        )
    else:
        # Speaking only: discord.py cannot receive DAVE-encrypted audio (docs/voice.md).
        rows.append(("voice: channels", True, "/clara join speaks replies (listening: not yet)"))
    return rows
