"""Small rules: what is read aloud, when a spoken reply is wanted, offline models."""

from __future__ import annotations

import pytest

from clara_core.config import load_settings
from clara_core.discord_adapter.voice_messages import ASKS_FOR_VOICE, SPOKEN_MAX_CHARS, speakable
from clara_core.voice.errors import VoiceUnavailable
from clara_core.voice.stt import SpeechToText


@pytest.mark.parametrize(
    "text",
    [
        "reply as a voice message please",
        "Can you answer me with a voice note?",
        "respond in a voice message: what's up",
    ],
)
def test_asking_for_a_voice_reply_is_recognised(text):
    assert ASKS_FOR_VOICE.search(text)


@pytest.mark.parametrize(
    "text", ["what is a voice message?", "I sent you a voice note yesterday", "reply soon"]
)
def test_mentioning_voice_messages_is_not_asking_for_one(text):
    assert not ASKS_FOR_VOICE.search(text)


def test_speakable_drops_code_links_and_markup():
    text = (
        "**Sure!** See [the docs](https://example.com/x) or https://example.com.\n"
        "```python\nprint('hi')\n```\n# Done"
    )
    spoken = speakable(text)
    assert spoken == "Sure! See the docs or (code is in the text reply) Done"


def test_speakable_caps_long_answers_at_a_sentence_end():
    spoken = speakable("This is one sentence. " * 200)
    assert len(spoken) <= SPOKEN_MAX_CHARS + 40
    assert spoken.endswith("sentence. The rest is in my text reply.")


def test_a_named_model_is_never_downloaded_unless_allowed():
    stt = SpeechToText(load_settings(env_file=None, stt_model="base.en"))
    with pytest.raises(VoiceUnavailable) as caught:
        stt.load()
    message = str(caught.value)
    # Hugging Face was asked for its local cache only, not the network.
    assert "outgoing traffic has been disabled" in message
    assert "STT_ALLOW_DOWNLOAD=on" in message


def test_voice_settings_read_the_spec_names(monkeypatch):
    monkeypatch.setenv("SEL_TTS_DEFAULT", "1")
    monkeypatch.setenv("STT_MODEL", "small.en")
    monkeypatch.setenv("VOICE_MAX_BYTES", "5MB")
    settings = load_settings(env_file=None)
    assert settings.clara_tts_default is True
    assert settings.stt_model == "small.en"
    assert settings.voice_max_bytes == 5_000_000
