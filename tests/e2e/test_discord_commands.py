"""Slash commands: /clara tier persists a user's tier; /clara status reports."""

from __future__ import annotations

import pytest

from storage.preferences import Preferences
from tests.fakes.fake_llm import Reply
from tests.support.discord_app import clara_on_discord
from tests.support.slash import EPHEMERAL, sub

pytestmark = [pytest.mark.slow, pytest.mark.storage]


async def test_tier_command_changes_the_users_model(engine):
    async with clara_on_discord(
        preferences=Preferences(engine), custom_openai_model_high="big-model"
    ) as w:
        names = {c.name for c in w.discord.state.commands.values()}
        assert "clara" in names  # registered at start-up

        inter = await w.discord.send_slash_command(
            w.channel_id, w.alice.id, "clara", sub("tier", tier="high")
        )
        await w.discord.wait_until(lambda: inter.acknowledged, timeout=5, what="tier reply")
        assert "**high**" in inter.callback.data["content"]
        assert inter.callback.data["flags"] & EPHEMERAL

        w.llm.enqueue(Reply("as you wish"), Reply("for bob"))
        await w.mention(w.alice, "hello")
        await w.discord.wait_until(
            lambda: len(w.llm.requests) == 1, timeout=10, what="alice's request"
        )
        assert w.llm.requests[0].model == "big-model"
        await w.discord.wait_until(
            lambda: any("as you wish" in m.content for m in w.replies()), timeout=10
        )
        await w.mention(w.bob, "hi")  # bob has no preference
        await w.discord.wait_until(
            lambda: len(w.llm.requests) == 2, timeout=10, what="bob's request"
        )
        assert w.llm.requests[1].model == "gpt-4o"
        assert await Preferences(engine).default_tier(str(w.alice.id)) == "high"

        status = await w.discord.send_slash_command(
            w.channel_id, w.alice.id, "clara", sub("status")
        )
        await w.discord.wait_until(lambda: status.acknowledged, timeout=5, what="status reply")
        text = status.callback.data["content"]
        assert "**Clara** — up" in text and "`gpt-4o`" in text and "Your tier: high" in text
        assert "Queue:" in text and "Gateway latency" in text

        back = await w.discord.send_slash_command(
            w.channel_id, w.alice.id, "clara", sub("tier", tier="default")
        )
        await w.discord.wait_until(lambda: back.acknowledged, timeout=5, what="reset reply")
        assert await Preferences(engine).default_tier(str(w.alice.id)) is None
