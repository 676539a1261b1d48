"""Streaming replies through the real discord.py client and the fake Discord:
what a reader sees while a long answer grows and splits, and what happens when
Discord answers an edit with something discord.py cannot parse."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_llm import Reply
from tests.support.discord_app import clara_on_discord

pytestmark = pytest.mark.slow


def _visible(content: str) -> str:
    """A message as the reader sees the answer in it: Clara's ``-# `` status lines aside."""
    return "\n".join(line for line in content.split("\n") if not line.startswith("-# ")).strip()


def _screens(fake: FakeDiscord, channel_id: int) -> list[dict[int, str]]:
    """The visible text of every bot message after each REST write, in order.

    Every send and edit is one revision (stamped on arrival) and every delete
    one ``deleted_at``; replaying them in time order gives what the channel
    showed after each operation."""
    events: list[tuple[float, int, str | None]] = []
    for message in fake.bot_messages(channel_id, include_deleted=True):
        events += [(rev.at, message.id, rev.content) for rev in message.revisions]
        if message.deleted_at is not None:
            events.append((message.deleted_at, message.id, None))
    events.sort(key=lambda e: e[0])
    screen: dict[int, str] = {}
    screens = []
    for _, message_id, content in events:
        if content is None:
            screen.pop(message_id, None)
        else:
            screen[message_id] = _visible(content)
        screens.append(dict(screen))
    return screens


def _covered(answer: str, screen: dict[int, str]) -> set[int]:
    """Which characters of ``answer`` are on screen (each message is a slice of it)."""
    covered: set[int] = set()
    for text in screen.values():
        if text in ("", "…"):
            continue
        start = answer.find(text)
        assert start >= 0, f"a message shows text that is not part of the answer: {text[:80]!r}"
        # Whitespace between paragraphs belongs to no message once the answer splits.
        covered.update(i for i in range(start, start + len(text)) if not answer[i].isspace())
    return covered


async def test_a_splitting_answer_never_takes_read_text_off_the_screen():
    # Unique words, so every message maps to exactly one slice of the answer.
    paragraphs = [
        " ".join(f"p{i}w{j}" for j in range(60)) + "." for i in range(12)
    ]  # ~420 characters each: the answer splits twice while it streams
    answer = "\n\n".join(paragraphs)
    assert 4000 < len(answer) < 6000
    # Fast where nothing splits, slow (about 100 characters per 0.25 s edit slot)
    # around the two split points (~1760 and ~3520), so some edits show a message
    # that is longer than where the split will fall.
    slow = lambda a, b: [answer[i : min(i + 20, b)] for i in range(a, b, 20)]  # noqa: E731
    chunks = [answer[:1600], *slow(1600, 2100), answer[2100:3350], *slow(3350, 3900)]
    chunks.append(answer[3900:])
    async with clara_on_discord() as w:
        w.llm.enqueue(Reply(answer, chunks=chunks, chunk_delay=0.05))
        await w.mention(w.alice, "write a lot")
        await w.discord.wait_until(
            lambda: "\n\n".join(m.content.strip() for m in w.replies()) == answer,
            timeout=30,
            what="the full answer across messages",
        )
        await asyncio.sleep(0.3)  # any late write would show up in the replay
        screens = _screens(w.discord, w.channel_id)
        previous: set[int] = set()
        for step, screen in enumerate(screens):
            now = _covered(answer, screen)
            lost = previous - now
            assert not lost, (
                f"after write {step}, {len(lost)} characters the reader had seen vanished: "
                f"{answer[min(lost) : max(lost) + 1][:120]!r}"
            )
            previous = now
        final = [m.content.strip() for m in w.replies()]
        assert len(final) == 3 and all(len(p) <= 2000 for p in final)
        assert "\n\n".join(final) == answer
        assert w.discord.rate_limited_count.earned == 0
        w.discord.assert_clean()


class _LoopErrors(logging.Handler):
    """asyncio's "Task exception was never retrieved" and friends."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class _Caught:
    """Errors that would otherwise only reach a log: the event loop's exception
    handler (a task that died with nobody awaiting it) and ERROR records."""

    def __init__(self) -> None:
        self.loop_errors: list[str] = []
        self.logged = _LoopErrors()

    def __enter__(self) -> _Caught:
        loop = asyncio.get_running_loop()
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(lambda _, ctx: self.loop_errors.append(str(ctx)))
        logging.getLogger().addHandler(self.logged)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.collect()  # "Task exception was never retrieved" is reported when a task is freed
        asyncio.get_running_loop().set_exception_handler(self._previous)
        logging.getLogger().removeHandler(self.logged)


async def test_an_edit_answer_discord_py_cannot_parse_still_delivers_the_whole_answer(caplog):
    answer = "Here is everything you asked for: " + " ".join(f"item{i}" for i in range(80))
    with _Caught() as caught:
        async with clara_on_discord() as w:
            # Every edit is applied by the server but answered without `content`.
            w.discord.inject_malformed("edit", count=1000, drop=["content"])
            w.llm.enqueue(Reply(answer, chunk_delay=0.02))
            await w.mention(w.alice, "list it all")
            await w.discord.wait_until(
                lambda: [m.content for m in w.replies()] == [answer],
                timeout=20,
                what="the whole answer in one message",
            )
            assert w.discord.requests_for("edit", outcome="malformed")  # the fault did fire
            await asyncio.sleep(0.3)
            assert [m.content for m in w.replies()] == [answer]
            w.discord.assert_clean()
    assert not caught.loop_errors, caught.loop_errors
    assert not caught.logged.messages, caught.logged.messages
    assert any("posting the answer afresh" in r.getMessage() for r in caplog.records)


async def test_one_unparsable_edit_answer_does_not_stop_the_stream(caplog):
    answer = "Streaming on regardless: " + " ".join(f"w{i}" for i in range(60))
    with _Caught() as caught:
        async with clara_on_discord() as w:
            w.discord.inject_malformed("edit", count=1, drop=["content"])
            w.llm.enqueue(Reply(answer, chunk_delay=0.03))
            await w.mention(w.alice, "go on")
            reply = await w.wait_reply_text(answer, timeout=20)
            assert len(w.discord.requests_for("edit", outcome="malformed")) == 1
            # Edited in place after the bad answer: no second message was needed.
            assert [m.id for m in w.replies()] == [reply.id]
            assert len(w.discord.message_history(reply.id)) >= 3
    assert not caught.loop_errors, caught.loop_errors
    assert not caught.logged.messages, caught.logged.messages
    assert any("streaming edit failed" in r.getMessage() for r in caplog.records)
