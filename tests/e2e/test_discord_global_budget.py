"""Discord's global request limit under a burst of conversations: Clara's budget
counts what the server counts, and discord.py's own retries pass it too."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_llm import Reply
from tests.support.discord_app import clara_on_discord

pytestmark = pytest.mark.slow

BUDGET = 5  # requests per second, Clara's and the fake's alike
EXEMPT = {"interaction", "followup"}  # not signed with the bot token, not counted


def busiest_second(fake: FakeDiscord, since: float) -> int:
    """Most bot-token requests (any outcome, 429s included) that arrived within
    one second of each other."""
    stamps = sorted(r.at for r in fake.requests if r.at >= since and r.route_kind not in EXEMPT)
    return max(
        (sum(1 for t in stamps[i:] if t < s + 0.999) for i, s in enumerate(stamps)), default=0
    )


async def test_a_burst_earns_no_global_429_and_retries_pass_the_budget():
    # The fake allows exactly Clara's budget: any request that slips past the
    # budget, or is counted too early, shows up as a global 429.
    async with clara_on_discord(discord_global_requests_per_second=BUDGET) as w:
        fake = w.discord
        channels = [w.channel_id] + [fake.add_channel(w.guild_id, f"room-{i}").id for i in range(7)]
        await asyncio.sleep(1.1)  # start-up requests out of the window
        fake.config.global_rate_limit = BUDGET
        since = time.monotonic()
        # The first reply is refused once with a per-route 429; discord.py sleeps
        # retry_after and sends it again by itself, which must wait for the budget
        # like any other request (the refused one was sent: it counts).
        fake.inject_429("send", count=1, retry_after=0.05)
        w.llm.enqueue(*(Reply("Here you are.") for _ in channels))
        await asyncio.gather(
            *(w.mention(w.alice, "quick question", channel_id=c) for c in channels)
        )
        await fake.wait_until(
            lambda: all(
                [m.content for m in fake.bot_messages(c)] == ["Here you are."] for c in channels
            ),
            timeout=30,
            what="every channel's answer",
        )
        stats = fake.rate_limited_count
        assert stats.injected == 1
        retried = fake.requests_for("send", outcome="injected_429")[0]
        assert any(
            r.path == retried.path and r.at > retried.at
            for r in fake.requests_for("send", outcome="ok")
        ), "the refused send was retried"
        assert stats.earned_global == 0
        assert busiest_second(fake, since) <= BUDGET
        fake.assert_clean()
