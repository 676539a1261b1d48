"""Tier prefixes and classifier answers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clara_core.llm.tiers import PREFIXES, parse_tier_answer, parse_tier_prefix

words = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)


@pytest.mark.parametrize(
    ("text", "tier", "rest"),
    [
        ("!high what is entanglement?", "high", "what is entanglement?"),
        ("!OPUS write a poem", "high", "write a poem"),
        ("  !sonnet\nexplain", "mid", "explain"),
        ("!mid", "mid", ""),
        ("!low hi", "low", "hi"),
        ("!haiku hi", "low", "hi"),
        ("!fast hi", "low", "hi"),
        ("!higher ground", None, "!higher ground"),
        ("use !high please", None, "use !high please"),
        ("!high!low", None, "!high!low"),
    ],
)
def test_prefixes(text, tier, rest):
    assert parse_tier_prefix(text) == (tier, rest)


@given(st.sampled_from(sorted(PREFIXES)), st.sampled_from([" ", "\n", "\t  "]), words)
def test_any_prefix_is_stripped_and_the_rest_kept(prefix, sep, body):
    body = body.lstrip()
    tier, rest = parse_tier_prefix(prefix.upper() + sep + body)
    assert tier == PREFIXES[prefix]
    assert rest == body


@given(words)
def test_text_without_a_leading_prefix_is_untouched(text):
    tier, rest = parse_tier_prefix(text)
    if tier is None:
        assert rest == text
    else:  # it really started with a prefix word
        assert text.lstrip().lower().split()[0] in PREFIXES


@pytest.mark.parametrize(
    ("answer", "tier"),
    [
        ("LOW", "low"),
        ("high", "high"),
        ("Tier: MID.", "mid"),
        ("HIGH - this needs multi-step reasoning", "high"),
        ("maybe LOW or HIGH", "mid"),  # unclear
        ("I'm not sure", "mid"),
        ("", "mid"),
        ("lowly", "mid"),  # not the word
    ],
)
def test_classifier_answers(answer, tier):
    assert parse_tier_answer(answer) == tier
