"""doctor's voice lines: what is ready and what voice still needs."""

from __future__ import annotations

from clara_core.config import load_settings
from clara_core.voice.doctor import voice_checks


def test_with_the_extra_installed_listening_and_speaking_are_ready():
    rows = {name: (ok, detail) for name, ok, detail in voice_checks(load_settings(env_file=None))}
    assert rows["voice: listening"] == (
        True,
        "voice messages are transcribed with tiny.en (bundled, offline)",
    )
    assert rows["voice: speaking"] == (True, "piper voice en_US-joe-medium (bundled)")
    assert rows["voice: channels"] == (True, "/clara join speaks replies (listening: not yet)")


def test_voice_turned_off_is_said_so():
    rows = voice_checks(load_settings(env_file=None, voice_enabled=False))
    assert rows[0] == ("voice: listening", True, "off (VOICE_ENABLED=false)")


def test_a_custom_model_is_named():
    settings = load_settings(env_file=None, stt_model="base.en", piper_model="/voices/amy.onnx")
    rows = {name: detail for name, _ok, detail in voice_checks(settings)}
    assert rows["voice: listening"].endswith("with base.en")
    assert rows["voice: speaking"] == "piper voice /voices/amy.onnx"
