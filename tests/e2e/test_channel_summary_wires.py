"""The channel-summary fold request on both wire APIs (the rest of the call sites are
in tests/integration/test_llm_call_sites.py): older channel messages fold into a
summary through the real SDK, and the fake accepts the request as the real API would."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from storage.channel_summaries import ChannelSummaryStore
from tests.fakes.fake_llm import Reply
from tests.support.discord_app import clara_on_discord

pytestmark = [pytest.mark.slow, pytest.mark.storage]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_channel_summary_fold(engine, provider):
    store = ChannelSummaryStore(engine)
    async with clara_on_discord(channel_summaries=store, provider=provider) as w:
        await w.say(w.alice, "we're planning a picnic on Saturday")
        await w.say(w.bob, "I'll bring lemonade")
        w.llm.enqueue(Reply("Sounds fun."))
        await w.mention(w.alice, "what's the plan?")
        await w.wait_reply_text("Sounds fun.")

        context = w.client.conversation.channel_context
        context.clock = lambda: datetime.now(UTC) + timedelta(hours=2)
        w.llm.enqueue(Reply("Anything else?"), Reply("- Picnic on Saturday; Bob brings lemonade"))
        await w.mention(w.bob, "anything else to sort out?")
        await w.discord.wait_until(
            lambda: len(w.llm.requests) == 3, timeout=15, what="fold request"
        )
        for _ in range(100):
            summary = await store.get(str(w.channel_id))
            if summary is not None:
                break
            await asyncio.sleep(0.05)
        fold = w.llm.requests[2]
        assert fold.wire == provider and not fold.stream
        assert "picnic on Saturday" in str(fold.messages)
        assert [r.outcome for r in w.llm.requests] == ["completed"] * 3
        assert summary is not None and "lemonade" in summary.text
