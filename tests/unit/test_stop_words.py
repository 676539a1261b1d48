"""Which addressed messages ask Clara to stop (the rest of the path is e2e-tested)."""

from __future__ import annotations

import pytest

from clara_core.config import load_settings
from clara_core.discord_adapter.stop_words import StopRequest, is_stop_request, stop_request

PHRASES = load_settings(env_file=None).discord_stop_phrases  # the documented defaults
NAMES = {"clara", "clara bot"}


@pytest.mark.parametrize(
    "text",
    [
        "stop",
        "Stop!",
        "STOP.",
        "@Clara stop",  # her name typed as text, not a real mention
        "@Clara nevermind",  # the spec's two examples
        "clara, stop",
        "stop clara",
        "clara stop",
        "Stop it, Clara!",
        "nevermind",
        "never mind...",
        "cancel",
        "Clara Bot stop",
        "stop now please",
        "stop, please",
    ],
)
def test_stop_requests(text):
    assert stop_request(text, NAMES, PHRASES) is StopRequest.STOP
    assert is_stop_request(text, NAMES, PHRASES)


@pytest.mark.parametrize(
    "text",
    [
        "nevermind, what's the weather?",
        "Never mind. Tell me a joke instead",
        "stop! what are you doing",
        "Clara, cancel that - what's 2+2?",
        "clara stop, summarise this instead",
    ],
)
def test_a_stop_then_a_new_request_cancels_and_asks_anew(text):
    assert stop_request(text, NAMES, PHRASES) is StopRequest.STOP_THEN_ASK


@pytest.mark.parametrize(
    "text",
    [
        "",
        "clara",
        "stop using emojis",
        "Clara, stop using emojis please",  # an instruction, not a cancel
        "clara stop being so formal",  # starts with a configured phrase, runs on
        "never mind the weather, tell me a joke",
        "why did the bus stop?",
        "don't stop",
        "cancel my plan",
        "stop.js is a library",
    ],
)
def test_sentences_that_start_with_or_contain_a_stop_word_are_requests(text):
    assert stop_request(text, NAMES, PHRASES) is StopRequest.NONE


def test_configured_phrases_count_too():
    assert is_stop_request("hold on", NAMES, ["hold on"])
    assert stop_request("hold on, one more thing", NAMES, ["hold on"]) is StopRequest.STOP_THEN_ASK
    assert not is_stop_request("hold on", NAMES, [])
