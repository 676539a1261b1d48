"""ORS through Discord: the real client against the fake Discord and fake LLM, the
ORS store on real PostgreSQL.  A user talks to Clara in DMs; later a due SPEAK
arrives in that DM; /clara proactive off stops the next one."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from clara_core.discord_adapter.proactive_commands import NO_BOUNDARIES, OFF, PROACTIVE_OFF_SERVER
from clara_core.discord_adapter.proactive_sender import DiscordProactiveSender, context_id_for
from clara_core.pipeline.memory import ServiceTextModel
from clara_core.pipeline.proactive import install_ors
from storage.proactive import ProactiveStore
from storage.sessions import SessionStore
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


def _system(request) -> str:
    return str(request.json["messages"][0]["content"])


async def test_a_proactive_message_joins_the_session_the_users_answer_continues(engine):
    """Clara's proactive DM is written to the DM's session as her turn: the answer
    right after it continues that session with it in place, and an answer hours
    later starts a new session whose snapshot (what the model is told about the
    previous conversation) includes what Clara asked."""
    clock = Clock(T0)
    sessions = SessionStore(engine, clock=clock)  # one clock for ORS and the sessions
    async with clara_on_discord(engine=engine, ors_enabled=True, sessions=sessions) as w:
        settings = w.client.settings
        conversation = w.client.conversation
        assert settings is not None and conversation is not None
        ors = install_ors(
            conversation.runner,
            ProactiveStore(engine),
            settings,
            ServiceTextModel(conversation.runner.llm),
            DiscordProactiveSender(lambda: w.client),
            clock,
        )
        assert ors is not None
        dm = w.discord.add_dm_channel(w.alice.id)
        alice = str(w.alice.id)
        w.llm.enqueue(Reply("Good luck with the exam!"))
        await w.say(w.alice, "I have my exam today, wish me luck", channel_id=dm.id)
        await w.wait_reply_text("Good luck with the exam!", channel_id=dm.id)
        await conversation.runner.drain()

        clock.advance(minutes=20)
        w.llm.enqueue(SPEAK)
        assert (await ors.run_pass()).spoke == 1
        posted = await w.wait_reply_text("How did the exam go?", channel_id=dm.id)

        # The session now holds Clara's question, with the Discord message it was.
        info = await sessions.get_or_start(
            alice,
            context_id_for(alice, None),
            project=settings.default_project,
            idle_minutes=settings.session_idle_minutes,
        )
        assert not info.started_new
        rows = await sessions.messages(info.id)
        assert [(m.role, m.content) for m in rows] == [
            ("user", "I have my exam today, wish me luck"),
            ("assistant", "Good luck with the exam!"),
            ("assistant", "How did the exam go?"),
        ]
        assert (await ProactiveStore(engine).recent_messages(alice))[-1][1:] == (
            "assistant",
            "How did the exam go?",
        )
        assert posted.id is not None

        # Alice answers hours later: a new session, told about the previous one.
        clock.advance(minutes=settings.session_idle_minutes + 180)
        w.llm.enqueue(Reply("So glad to hear it!"))
        seen = len(w.llm.requests)
        await w.say(w.alice, "It went great, thanks for asking", channel_id=dm.id)
        await w.wait_reply_text("So glad to hear it!", channel_id=dm.id)
        system = _system(w.llm.requests[seen])
        snapshot = system[system.index("Summary of your previous conversation here:") :]
        assert "How did the exam go?" in snapshot
        # ...and the answer itself sees the question (the DM's own history has it too).
        assert "How did the exam go?" in json.dumps(w.llm.requests[seen].json)


async def test_boundaries_are_stated_shown_back_removed_and_forgotten(engine):
    async with clara_on_discord(engine=engine) as w:
        answer = await command(w, w.alice, "boundary")
        assert answer.content == NO_BOUNDARIES
        answer = await command(w, w.alice, "boundary", add="not before 10:00 please")
        assert answer.content.startswith("Noted. Enforced: I won't message you on my own")
        assert "1. not before 10:00 please (enforced: not before 10:00)" in answer.content
        answer = await command(w, w.alice, "boundary", add="only about work")
        assert "2. only about work (I keep it in mind)" in answer.content
        # Shown back as stored, from any channel, to the user who set them only.
        answer = await command(w, w.alice, "boundary")
        assert "1. not before 10:00 please" in answer.content and "2. only about" in answer.content
        assert (await command(w, w.bob, "boundary")).content == NO_BOUNDARIES
        stored = await ProactiveStore(engine).pattern(str(w.alice.id))
        assert stored is not None and stored.boundaries[0]["not_before"] == "10:00"

        answer = await command(w, w.alice, "boundary", remove=1)
        assert "1. only about work" in answer.content and "10:00" not in answer.content
        answer = await command(w, w.alice, "boundary", remove=0)
        assert answer.content.startswith("All boundaries removed.")

        # /clara forget's store for ORS takes them with the rest of the user's data.
        await command(w, w.alice, "boundary", add="no weekends")
        assert await ProactiveStore(engine).delete_user_data(str(w.alice.id)) >= 1
        assert (await command(w, w.alice, "boundary")).content == NO_BOUNDARIES


async def test_boundary_without_a_database_says_so():
    async with clara_on_discord() as w:  # no engine: nothing can be stored
        answer = await command(w, w.alice, "boundary", add="no weekends")
        assert answer.content == PROACTIVE_OFF_SERVER
