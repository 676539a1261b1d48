"""Which addressed messages ask Clara to stop (the rest of the path is e2e-tested)."""

from __future__ import annotations

import pytest

from clara_core.config import load_settings
from clara_core.discord_adapter.conversation import is_stop_request

PHRASES = load_settings(env_file=None).discord_stop_phrases  # the documented defaults
NAMES = {"clara", "clara bot"}


@pytest.mark.parametrize(
    "text",
    [
        "stop",
        "Stop!",
        "STOP.",
        "@Clara stop",  # her name typed as text, not a real mention
        "clara, stop",
        "stop clara",
        "Stop it, Clara!",
        "nevermind",
        "never mind...",
        "cancel",
        "Clara Bot stop",
        "nevermind, what's the weather?",  # a configured phrase may start the message
    ],
)
def test_stop_requests(text):
    assert is_stop_request(text, NAMES, PHRASES)


@pytest.mark.parametrize(
    "text",
    ["", "clara", "stop using emojis", "why did the bus stop?", "don't stop", "cancel my plan"],
)
def test_questions_that_contain_a_stop_word_are_questions(text):
    assert not is_stop_request(text, NAMES, PHRASES)


def test_configured_phrases_count_too():
    assert is_stop_request("hold on", NAMES, ["hold on"])
    assert not is_stop_request("hold on", NAMES, [])
