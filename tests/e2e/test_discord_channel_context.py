"""Channel context: recent chatter reaches the model; older messages fold into a summary."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from storage.channel_summaries import ChannelSummaryStore
from tests.fakes.fake_llm import Reply
from tests.support.discord_app import clara_on_discord

pytestmark = [pytest.mark.slow, pytest.mark.storage]


async def test_recent_channel_messages_and_rolling_summary(engine):
    store = ChannelSummaryStore(engine)
    async with clara_on_discord(channel_summaries=store, custom_openai_model_low="small") as w:
        await w.say(w.alice, "we're planning a picnic on Saturday")
        await w.say(w.bob, "I'll bring lemonade")
        w.llm.enqueue(Reply("Saturday picnic, Bob brings lemonade."))
        await w.mention(w.alice, "what's the plan?")
        await w.wait_reply_text("Saturday picnic, Bob brings lemonade.")
        system = str(w.llm.requests[0].messages[0])
        assert "Recent messages in #general" in system
        assert (
            "Alice: we're planning a picnic on Saturday" in system
            and "Bob: I'll bring lemonade" in system
        )
        history_fetches = len(w.discord.requests_for("history"))
        assert history_fetches <= 1  # cold channel: fetched once

        # Two hours later those messages are old: they get folded into a summary.
        context = w.client.conversation.channel_context
        context.clock = lambda: datetime.now(UTC) + timedelta(hours=2)
        w.llm.enqueue(Reply("Anything else?"), Reply("- Picnic on Saturday; Bob brings lemonade"))
        await w.mention(w.bob, "anything else to sort out?")
        await w.discord.wait_until(
            lambda: len(w.llm.requests) == 3, timeout=15, what="fold request"
        )
        fold = w.llm.requests[2]
        assert fold.model == "small" and "picnic on Saturday" in str(fold.messages)
        second_prompt = str(w.llm.requests[1].messages[0])
        assert "we're planning a picnic" not in second_prompt  # aged out of the window
        for _ in range(100):
            summary = await store.get(str(w.channel_id))
            if summary is not None:
                break
            await asyncio.sleep(0.05)
        assert summary is not None and "lemonade" in summary.text

        w.llm.enqueue(Reply("The picnic!"))
        await w.mention(w.alice, "remind me?")
        await w.wait_reply_text("The picnic!")
        assert "Summary of earlier conversation in #general" in str(w.llm.requests[3].messages[0])
        assert len(w.discord.requests_for("history")) == history_fetches  # never refetched


@pytest.mark.parametrize(
    "drop",
    [
        ["type"],  # discord.py raises KeyError while iterating the history
        # discord.py builds Messages without .author: AttributeError on first use
        ["author", "member"],
    ],
)
async def test_unparsable_channel_history_still_gets_the_answer(drop, caplog):
    async with clara_on_discord() as w:
        # Said before Clara started: stored, never dispatched to her.
        state = w.discord.state
        state.store_message(state.channel(w.channel_id), w.bob.id, "said before Clara started")
        # A cold channel: Clara fetches its history once, and the answer is malformed.
        w.discord.inject_malformed("history", drop=drop)
        w.llm.enqueue(Reply("Answer without the history."), Reply("And the next one."))
        await w.mention(w.alice, "are you there?")
        await w.wait_reply_text("Answer without the history.")
        assert w.discord.requests_for("history", outcome="malformed")
        assert any("could not read channel history" in r.getMessage() for r in caplog.records)
        # The channel keeps working: the next turn's context is built normally.
        await w.mention(w.bob, "still there?")
        await w.wait_reply_text("And the next one.")
        assert "Alice: are you there?" in str(w.llm.requests[1].messages[0])
