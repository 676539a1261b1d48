"""DISCORD_LOG_CHANNEL_ID: batched, redacted log lines and lifecycle events."""

from __future__ import annotations

import logging

import pytest

from tests.support.discord_app import clara_on_discord

pytestmark = pytest.mark.slow

SECRET = "sk-live-abcdefghijklmnopqrstuvwx"


async def test_logs_are_mirrored_in_batches_without_secrets():
    async with clara_on_discord(log_channel=True, openai_api_key=SECRET) as w:
        logs = w.log_channel_id
        app_log = logging.getLogger("clara_core.test")
        for i in range(30):
            app_log.warning("event %d with key %s", i, SECRET)
        await w.discord.wait_until(
            lambda: sum(m.content.count("event ") for m in w.discord.bot_messages(logs)) == 30,
            timeout=15,
            what="30 mirrored lines",
        )
        posts = [m.content for m in w.discord.bot_messages(logs)]
        assert len(posts) <= 3  # batched, not one message per line
        text = "\n".join(posts)
        assert "🟢 Clara started" in text
        assert SECRET not in text and "[redacted]" in text
        assert all(p.startswith("```") and len(p) <= 2000 for p in posts)
        await w.client.close()  # 🔴 goes out before the connection closes
        assert any("🔴 Clara shutting down" in m.content for m in w.discord.bot_messages(logs))
        assert w.discord.rate_limited_count.earned == 0


async def test_a_dropped_and_resumed_session_is_mirrored():
    """The spec's other two events: 🟡 disconnected and 🔄 reconnected/resumed."""
    async with clara_on_discord(log_channel=True) as w:
        logs = w.log_channel_id
        await w.discord.wait_until(
            lambda: any("🟢 Clara started" in m.content for m in w.discord.bot_messages(logs)),
            timeout=15,
            what="the start event",
        )
        resumes = w.discord.resume_count
        assert w.discord.send_reconnect() == 1  # op 7: the client drops and RESUMEs
        await w.discord.wait_until(
            lambda: w.discord.resume_count > resumes, timeout=15, what="the RESUME"
        )

        def mirrored() -> str:
            return "\n".join(m.content for m in w.discord.bot_messages(logs))

        await w.discord.wait_until(
            lambda: (
                "🟡 disconnected from Discord" in mirrored()
                and "🔄 Discord session resumed" in mirrored()
            ),
            timeout=20,
            what="both events in the log channel",
        )
