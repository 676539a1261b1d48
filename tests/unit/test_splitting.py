"""Splitting long replies for Discord: limits, boundaries, code fences."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from clara_core.discord_adapter.splitting import split_message

FENCE_LINE = re.compile(r"^\s*```", re.MULTILINE)


def _balanced(chunk: str) -> bool:
    return len(FENCE_LINE.findall(chunk)) % 2 == 0


def test_short_text_is_one_message():
    assert split_message("hello") == ["hello"]


def test_prefers_paragraph_boundaries():
    text = ("a" * 1500) + "\n\n" + ("b" * 1500)
    assert split_message(text) == ["a" * 1500 + "\n\n", "b" * 1500]


def test_code_block_is_closed_and_reopened_with_its_language():
    code = "\n".join(f"print({i})" for i in range(400))
    chunks = split_message(f"Here:\n```python\n{code}\n```\nDone.")
    assert len(chunks) > 1
    assert all(len(c) <= 2000 and _balanced(c) for c in chunks)
    assert all(c.startswith("```python\n") for c in chunks[1:-1])
    assert chunks[0].endswith("\n```")


def test_hard_cut_when_there_is_no_boundary():
    chunks = split_message("x" * 4500)
    assert [len(c) for c in chunks][:2] == [1996, 1996] and "".join(chunks) == "x" * 4500


text_pieces = st.lists(
    st.one_of(
        st.text(alphabet="abc xyz.\n", min_size=1, max_size=300),
        st.builds(
            lambda lang, body: f"\n```{lang}\n{body}\n```\n",
            st.sampled_from(["", "py", "js"]),
            st.text(alphabet="ab \n=()", max_size=900),
        ),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(text_pieces)
def test_every_chunk_fits_and_renders_alone(pieces):
    text = "".join(pieces)
    chunks = split_message(text)
    assert all(len(c) <= 2000 for c in chunks)
    if _balanced(text):
        assert all(_balanced(c) for c in chunks)
    # nothing lost: the content (ignoring whitespace and added fence markers) survives
    joined = re.sub(r"```\S*", "", "".join(chunks))
    original = re.sub(r"```\S*", "", text)
    assert re.sub(r"\s+", "", joined) == re.sub(r"\s+", "", original)
