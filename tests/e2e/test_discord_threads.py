"""Threads: the message a thread was started from opens Clara's conversation there."""

from __future__ import annotations

import pytest

from tests.fakes.fake_llm import Reply
from tests.support.discord_app import clara_on_discord

pytestmark = pytest.mark.slow


def _turns(messages: list[dict]) -> list[tuple[str, str]]:
    return [(m["role"], str(m["content"])) for m in messages if m["role"] != "system"]


async def test_thread_starter_message_opens_the_conversation():
    async with clara_on_discord() as w:
        w.llm.enqueue(Reply("Start with Belém."), Reply("Then Alfama."))
        starter = await w.say(w.alice, "Let's plan the trip to Lisbon")
        thread = w.discord.create_thread(w.channel_id, "Lisbon", starter_message_id=starter.id)
        assert thread.id == starter.id

        asked = await w.mention(w.alice, "what should we see first?", channel_id=thread.id)
        first = await w.wait_reply_text("Start with Belém.", channel_id=thread.id)
        assert [m.content for m in w.discord.bot_messages(thread.id)] == ["Start with Belém."]
        assert w.replies() == []  # nothing in the parent channel
        assert int(first.reference["message_id"]) == asked.id

        turns = _turns(w.llm.requests[0].messages)
        assert [role for role, _ in turns] == ["user", "user"]
        assert "Let's plan the trip to Lisbon" in turns[0][1]
        assert "what should we see first?" in turns[1][1]
        assert "earlier messages" not in first.content  # the chain is not cut

        # A reply chain inside the thread still starts at the starter message.
        await w.say(w.alice, "and after that?", channel_id=thread.id, reference_message_id=first.id)
        await w.wait_reply_text("Then Alfama.", channel_id=thread.id)
        turns = _turns(w.llm.requests[1].messages)
        assert [role for role, _ in turns] == ["user", "user", "assistant", "user"]
        assert "Let's plan the trip to Lisbon" in turns[0][1]
        assert "what should we see first?" in turns[1][1]
        assert turns[2][1] == "Start with Belém."
        assert "and after that?" in turns[3][1]
        w.discord.assert_clean()


async def test_starter_message_clara_never_saw_is_fetched_from_the_parent():
    async with clara_on_discord() as w:
        w.llm.enqueue(Reply("Pastéis de nata, obviously."))
        general = w.discord.state.channel(w.channel_id)
        # Posted while Clara was offline: stored, but no MESSAGE_CREATE reached her.
        starter = w.discord.state.store_message(general, w.bob.id, "Food ideas for Lisbon")
        thread = w.discord.create_thread(w.channel_id, "Food", starter_message_id=starter.id)
        await w.mention(w.alice, "any must-eats?", channel_id=thread.id)
        await w.wait_reply_text("Pastéis de nata, obviously.", channel_id=thread.id)

        fetches = [
            r
            for r in w.discord.requests_for("get_message")
            if r.path == f"/channels/{w.channel_id}/messages/{thread.id}"
        ]
        assert [r.status for r in fetches] == [200]
        turns = _turns(w.llm.requests[0].messages)
        assert [role for role, _ in turns] == ["user", "user"]
        assert "Food ideas for Lisbon" in turns[0][1] and "any must-eats?" in turns[1][1]


async def test_thread_without_a_starter_message_is_not_a_cut_chain():
    async with clara_on_discord() as w:
        w.llm.enqueue(Reply("Happy to help."))
        thread = w.discord.create_thread(w.channel_id, "Standalone", owner_id=w.alice.id)
        await w.mention(w.alice, "hello in here", channel_id=thread.id)
        reply = await w.wait_reply_text("Happy to help.", channel_id=thread.id)
        assert "earlier messages" not in reply.content

        # Clara looked for a starter message in the parent and found none (404).
        lookups = [
            r
            for r in w.discord.requests_for("get_message")
            if r.path == f"/channels/{w.channel_id}/messages/{thread.id}"
        ]
        assert [r.status for r in lookups] == [404]
        turns = _turns(w.llm.requests[0].messages)
        assert [role for role, _ in turns] == ["user"]
        assert "hello in here" in turns[0][1]


async def test_back_to_back_mentions_in_a_thread_keep_the_starter_and_the_exchange():
    async with clara_on_discord() as w:
        starter = await w.say(w.alice, "Let's plan the trip to Lisbon")
        thread = w.discord.create_thread(w.channel_id, "Lisbon trip", starter_message_id=starter.id)
        w.llm.enqueue(Reply("Start with Alfama."), Reply("Then Belém."))
        await w.mention(w.alice, "what should we see first?", channel_id=thread.id)
        await w.wait_reply_text("Start with Alfama.", channel_id=thread.id)
        await w.mention(w.alice, "and after that?", channel_id=thread.id)
        await w.wait_reply_text("Then Belém.", channel_id=thread.id)
        convo = [m for m in w.llm.requests[1].messages if m["role"] != "system"]
        assert [m["role"] for m in convo] == ["user", "user", "assistant", "user"]
        assert "trip to Lisbon" in str(convo[0]) and convo[2]["content"] == "Start with Alfama."
