"""Allow-lists, cut chains, very long answers as files, tool progress lines."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.fake_llm import Reply, ToolCall
from tests.support.discord_app import clara_on_discord
from tools.registry import Tool, ToolRegistry

pytestmark = pytest.mark.slow


def _reconfigure(w, **changes) -> None:
    handler = w.client.conversation
    handler.settings = handler.settings.model_copy(update=changes)


async def test_allowed_roles_gate_who_is_answered():
    async with clara_on_discord() as w:
        friends = w.discord.add_role(w.guild_id, "friends")
        carol = w.discord.add_user("carol", global_name="Carol")
        w.discord.add_member(w.guild_id, carol.id, roles=[friends.id])
        _reconfigure(w, discord_allowed_roles=[friends.id])
        w.llm.enqueue(Reply("Hi Carol."))
        await w.mention(w.alice, "hello?")  # alice lacks the role
        await w.mention(carol, "hello!")
        await w.wait_reply_text("Hi Carol.")
        await asyncio.sleep(0.5)
        assert len(w.llm.requests) == 1 and "hello!" in str(w.llm.requests[0].messages[-1])


async def test_allowed_roles_reach_dms_too():
    """The role gate is not one DM away: in a DM, only someone holding an allowed
    role in a server Clara shares is answered (the roles looked up in Discord)."""
    async with clara_on_discord() as w:
        friends = w.discord.add_role(w.guild_id, "friends")
        carol = w.discord.add_user("carol", global_name="Carol")
        w.discord.add_member(w.guild_id, carol.id, roles=[friends.id])
        _reconfigure(w, discord_allowed_roles=[friends.id])
        alice_dm = w.discord.add_dm_channel(w.alice.id)
        carol_dm = w.discord.add_dm_channel(carol.id)
        w.llm.enqueue(Reply("Hi Carol, in private."))
        await w.say(w.alice, "let me in?", channel_id=alice_dm.id)  # alice lacks the role
        await w.say(carol, "hello!", channel_id=carol_dm.id)
        await w.discord.wait_until(
            lambda: any(m.content == "Hi Carol, in private." for m in w.replies(carol_dm.id)),
            timeout=15,
            what="Carol's answer",
        )
        await w.say(w.alice, "still nothing?", channel_id=alice_dm.id)
        await asyncio.sleep(0.5)
        assert len(w.llm.requests) == 1 and "hello!" in str(w.llm.requests[0].messages[-1])
        assert w.replies(alice_dm.id) == []
        # Without allowed roles, a DM passes as before.
        _reconfigure(w, discord_allowed_roles=[])
        w.llm.enqueue(Reply("Hi Alice."))
        await w.say(w.alice, "and now?", channel_id=alice_dm.id)
        await w.discord.wait_until(
            lambda: any(m.content == "Hi Alice." for m in w.replies(alice_dm.id)),
            timeout=15,
            what="Alice's answer",
        )


async def test_allowed_servers_supersede_channels():
    async with clara_on_discord() as w:
        _reconfigure(w, discord_allowed_servers=[1], discord_allowed_channels=[w.channel_id])
        await w.mention(w.alice, "ignored: another server is allowed")
        await asyncio.sleep(0.5)
        assert w.llm.requests == []
        _reconfigure(w, discord_allowed_servers=[w.guild_id], discord_allowed_channels=[1])
        w.llm.enqueue(Reply("The whole server is allowed."))
        await w.mention(w.alice, "and now?")
        await w.wait_reply_text("The whole server is allowed.")


async def test_a_cut_chain_is_answered_with_a_note():
    async with clara_on_discord() as w:
        a = await w.say(w.bob, "original plan: meet at noon")
        b = await w.say(w.bob, "actually make it one", reference_message_id=a.id)
        await w.discord.delete_user_message(a.id)
        w.llm.enqueue(Reply("One o'clock it is."))
        await w.mention(w.alice, "so when?", reference_message_id=b.id)
        await w.discord.wait_until(
            lambda: any(m.content.startswith("One o'clock it is.") for m in w.replies()), timeout=15
        )
        reply = next(m for m in w.replies() if m.content.startswith("One o'clock it is."))
        assert reply.content.endswith("-# earlier messages in this thread are unavailable")
        assert "actually make it one" in str(w.llm.requests[0].messages)


async def test_very_long_answers_arrive_as_a_file():
    answer = "\n\n".join(f"Section {i}. " + "detail " * 60 for i in range(30))
    assert len(answer) > 10_000
    async with clara_on_discord() as w:
        w.llm.enqueue(Reply(answer))
        await w.mention(w.alice, "write me a report")
        await w.discord.wait_until(
            lambda: any(m.attachments for m in w.replies()), timeout=30, what="the file"
        )
        await asyncio.sleep(0.5)
        live = w.replies()
        assert len(live) == 1
        attachment = live[0].attachments[0]
        assert attachment.filename == "clara-reply.md"
        assert f"The full answer ({len(answer):,} characters) is attached." in live[0].content
        assert len(live[0].content) <= 2000


async def test_tool_progress_is_one_status_line_edited_in_place():
    started = asyncio.Event()

    async def slow_lookup(args, ctx):
        started.set()
        await asyncio.sleep(1.5)
        return "42"

    tools = ToolRegistry()
    tools.register(
        Tool("slow_lookup", "looks things up", {"type": "object", "properties": {}}, slow_lookup)
    )
    async with clara_on_discord(tools=tools) as w:
        w.llm.enqueue(
            Reply("Let me check.", tool_calls=[ToolCall("slow_lookup", {})]), Reply("It is 42.")
        )
        await w.mention(w.alice, "what is the answer?")
        await w.discord.wait_until(
            lambda: any(m.content == "Let me check.\n\nIt is 42." for m in w.replies()),
            timeout=20,
            what="final",
        )
        reply = w.replies()[0]
        revisions = w.discord.message_history(reply.id)
        assert any("-# ⚙️ running slow_lookup…" in r for r in revisions)
        assert len(w.replies()) == 1  # progress edited in place, not new messages
        assert "-#" not in reply.content


async def test_discord_max_messages_bounds_the_reply_chain():
    """DISCORD_MAX_MESSAGES=3 and a chain of five: the model sees the three nearest."""
    async with clara_on_discord() as w:
        _reconfigure(w, discord_max_messages=3)
        parent = None
        for n in range(1, 6):
            parent = await w.say(
                w.bob, f"link {n}", reference_message_id=parent.id if parent else None
            )
        w.llm.enqueue(Reply("Read the nearest three."))
        await w.mention(w.alice, "what did they say?", reference_message_id=parent.id)
        await w.wait_reply_text("Read the nearest three.")
        # The chain as turns: the three nearest, then the question (the older two
        # may still appear in the system prompt's recent channel messages, which
        # DISCORD_CHANNEL_HISTORY_LIMIT bounds).
        turns = [m["content"] for m in w.llm.requests[0].messages if m["role"] != "system"]
        assert turns == ["Bob: link 3", "Bob: link 4", "Bob: link 5", "Alice: what did they say?"]
