"""Discord conversations are stored in sessions; a new session starts from the last summary."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from storage.db import session_factory
from storage.models import Message
from storage.sessions import SessionStore
from tests.fakes.fake_llm import Reply
from tests.support.clock import Clock
from tests.support.discord_app import clara_on_discord

pytestmark = [pytest.mark.slow, pytest.mark.storage]


async def test_messages_are_stored_and_sessions_resume_from_a_summary(engine):
    clock = Clock()
    store = SessionStore(engine, clock=clock)
    async with clara_on_discord(sessions=store) as w:
        w.llm.enqueue(Reply("Good luck with the move!"))
        asked = await w.mention(w.alice, "I'm moving to Porto next week")
        await w.wait_reply_text("Good luck with the move!")
        query = select(Message.role, Message.content, Message.platform_message_id)
        rows = []
        for _ in range(100):  # stored right after the final edit: poll briefly
            async with session_factory(engine)() as db:
                rows = (await db.execute(query.order_by(Message.id))).all()
            if len(rows) == 2:
                break
            await asyncio.sleep(0.05)
        assert rows[0] == ("user", "I'm moving to Porto next week", str(asked.id))
        assert rows[1][:2] == ("assistant", "Good luck with the move!")

        (session_id,) = await store.idle_unsummarised(-1)  # everything counts as idle
        await store.set_summary(session_id, "- Alice is moving to Porto next week")
        clock.advance(45)

        w.llm.enqueue(Reply("How did the move go?"))
        await w.mention(w.alice, "hi again")
        await w.wait_reply_text("How did the move go?")
        system = str(w.llm.requests[-1].messages[0])
        assert "Alice is moving to Porto next week" in system and "Earlier conversation" in system
