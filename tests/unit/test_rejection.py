"""Bare yes/no answers: not worth a lookup, worth reading when they answer Clara."""

from __future__ import annotations

import pytest

from clara_core.cortex.rejection import is_short_answer


@pytest.mark.parametrize("text", ["no", "Nope!", "yes, clara", "not really", "of course :)"])
def test_bare_answers_are_short_answers(text):
    assert is_short_answer(text)


@pytest.mark.parametrize("text", ["thanks!", "hi clara", "no, my sister is called Ana", "lol"])
def test_other_messages_are_not_short_answers(text):
    assert not is_short_answer(text)
