"""ORS through Discord: the real client against the fake Discord and fake LLM, the
ORS store on real PostgreSQL.  A user talks to Clara in DMs; later a due SPEAK
arrives in that DM; /clara proactive off stops the next one."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from clara_core.discord_adapter.proactive_commands import OFF
from clara_core.discord_adapter.proactive_sender import DiscordProactiveSender
from clara_core.pipeline.memory import ServiceTextModel
from clara_core.pipeline.proactive import install_ors
from storage.proactive import ProactiveStore
from tests.fakes.fake_llm import Reply
from tests.support.clock import Clock
from tests.support.discord_app import clara_on_discord
from tests.support.slash import command

pytestmark = pytest.mark.storage

#: Sunday 12:00 UTC: outside the default quiet hours (22:00-08:00).
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SPEAK = Reply(
    json.dumps(
        {
            "action": "speak",
            "reason": "she said the exam was today",
            "message": "How did the exam go?",
            "note_kind": "",
            "note_text": "",
            "note_relevance": 0,
            "note_not_before": "",
            "note_expires_at": "",
        }
    )
)


async def test_a_due_speak_posts_a_dm_and_proactive_off_stops_the_next(engine):
    clock = Clock(T0)
    async with clara_on_discord(engine=engine, ors_enabled=True) as w:
        settings = w.client.settings
        conversation = w.client.conversation
        assert settings is not None and conversation is not None
        ors = install_ors(
            conversation.runner,
            ProactiveStore(engine),
            settings,
            ServiceTextModel(conversation.runner.llm),
            DiscordProactiveSender(lambda: w.client),  # as app.py: found at send time
            clock,
        )
        assert ors is not None

        dm = w.discord.add_dm_channel(w.alice.id)
        w.llm.enqueue(Reply("Good luck with the exam!"))
        await w.say(w.alice, "I have my exam today, wish me luck", channel_id=dm.id)
        await w.wait_reply_text("Good luck with the exam!", channel_id=dm.id)
        await conversation.runner.drain()  # the after-turn hook: ORS saw the DM

        clock.advance(minutes=20)
        w.llm.enqueue(SPEAK)
        report = await ors.run_pass()
        assert (report.assessed, report.spoke) == (1, 1)
        await w.wait_reply_text("How did the exam go?", channel_id=dm.id)
        [sent] = await ors.store.messages(str(w.alice.id))
        assert (sent.status, sent.reason) == ("sent", "she said the exam was today")

        # Alice opts out; a later eager model is held back, nothing is posted.
        answer = await command(w, w.alice, "proactive", state="off")
        assert answer.content == OFF
        clock.advance(minutes=60 * 24)
        w.llm.default = SPEAK
        before = len(w.replies(dm.id))
        report = await ors.run_pass()
        assert report.spoke == 0
        assert len(w.replies(dm.id)) == before
        assert len(await ors.store.messages(str(w.alice.id))) == 1


async def test_proactive_without_a_choice_says_what_holds(engine):
    async with clara_on_discord(engine=engine) as w:
        answer = await command(w, w.alice, "proactive")
        assert "haven't chosen" in answer.content and "**off**" in answer.content
        answer = await command(w, w.alice, "proactive", state="on")
        answer = await command(w, w.alice, "proactive")
        assert "**on**" in answer.content
