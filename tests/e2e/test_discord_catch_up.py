"""What was said to Clara while she was away is answered once she is back.

Discord delivers no MESSAGE_CREATE to a shard that is not connected, and a new
session (a restarted process, a session Discord refused to resume) IDENTIFYs
afresh: without the read-back (clara_core/discord_adapter/catch_up.py) these
mentions would never be answered.  Discord's history is the record: a mention
that already has her reply, a mention a later "@Clara stop" cancelled, and a
message she was already answering live are not answered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re

import pytest

from storage.sessions import SessionStore
from tests.fakes.fake_discord import FakeDiscord, discord_py_pointed_at
from tests.fakes.fake_llm import FakeLLM, RecordedRequest, Reply
from tests.support.discord_app import clara_client_on, clara_on_discord

pytestmark = pytest.mark.slow

TAG = re.compile(r"tag-[0-9a-z]+")


def echo(request: RecordedRequest) -> Reply:
    """Reply with the tag of the last user turn: a reply says which message it answers."""
    users = [m for m in request.body.get("messages", []) if m.get("role") == "user"]
    found = TAG.findall(json.dumps(users[-1] if users else {}))
    return Reply(f"noted {found[-1] if found else 'nothing'}")


def texts(fake: FakeDiscord, channel_id: int) -> list[str]:
    return [m.content for m in fake.bot_messages(channel_id)]


@pytest.mark.storage
async def test_what_was_said_while_clara_was_down_is_answered_once_at_start(engine):
    async with (
        FakeDiscord(heartbeat_interval_ms=1000) as fake,
        FakeLLM(api_keys={"test-key"}, default=echo) as llm,
    ):
        alice = fake.add_user("alice", global_name="Alice")
        bob = fake.add_user("bob", global_name="Bob")
        guild = fake.add_guild(
            "Home", channels=("general", "other", "third"), members=[alice.id, bob.id]
        )
        general, other, third = (c.id for c in guild.text_channels)
        bot = fake.bot.id
        me = f"<@{bot}>"

        def clara_says(channel_id: int, text: str, to: int) -> None:
            # What an earlier Clara process posted before it went down.
            channel = fake.state.channel(channel_id)
            fake.state.store_message(
                channel, bot, text, reference=fake.state.reference_for(channel, to)
            )

        # Said while no Clara process was connected (the fake dispatches to nobody).
        await fake.send_message(general, alice.id, f"{me} please note tag-a")
        answered = await fake.send_message(general, bob.id, f"{me} please note tag-b")
        clara_says(general, "noted tag-b", answered.id)
        queued = await fake.send_message(general, alice.id, f"{me} please note tag-c")
        notice = "-# You're #2 in line; I'll get to you right after."
        clara_says(general, notice, queued.id)
        await fake.send_message(general, bob.id, "hello everyone, tag-x")  # not to her
        await fake.send_message(other, bob.id, f"{me} please note tag-d")
        await fake.send_message(other, alice.id, f"{me} stop")
        await fake.send_message(other, alice.id, f"{me} please note tag-e")
        # "nevermind, <a new request>": cancels what came before it, and is answered.
        await fake.send_message(third, bob.id, f"{me} please note tag-h")
        await fake.send_message(third, bob.id, f"{me} nevermind, please note tag-i instead")
        # A DM from someone she has talked with (her DM partners come from the
        # sessions in PostgreSQL: Discord has no "list my DMs" for bots).
        sessions = SessionStore(engine)
        await sessions.get_or_start(
            str(alice.id), f"discord:dm:{alice.id}", project="default", idle_minutes=30
        )
        dm = fake.add_dm_channel(alice.id)
        await fake.send_message(dm.id, alice.id, "please note tag-f")

        with discord_py_pointed_at(fake):
            async with clara_client_on(fake, llm, sessions=sessions) as client:
                expected = {
                    general: ["noted tag-b", notice, "noted tag-a", "noted tag-c"],
                    other: ["noted tag-e"],
                    third: ["noted tag-i"],
                    dm.id: ["noted tag-f"],
                }
                with contextlib.suppress(TimeoutError):
                    await fake.wait_until(
                        lambda: all(texts(fake, c) == want for c, want in expected.items()),
                        timeout=30,
                        what="the four missed messages answered",
                    )
                assert {c: texts(fake, c) for c in expected} == expected
                assert client.catch_up is not None
                await client.catch_up.wait()
                assert client.conversation is not None
                queue = client.conversation.queue
                await fake.wait_until(
                    lambda: not queue.busy(general), timeout=10, what="the answers finished"
                )
                # A mention now arrives live and is answered once: the read-back
                # does not touch it.
                await fake.send_message(general, alice.id, f"{me} please note tag-g")
                expected[general].append("noted tag-g")
                with contextlib.suppress(TimeoutError):
                    await fake.wait_until(
                        lambda: texts(fake, general) == expected[general],
                        timeout=15,
                        what="the live mention answered",
                    )
                assert texts(fake, general) == expected[general]
                await asyncio.sleep(1.5)  # room for a wrong second answer
                assert {c: texts(fake, c) for c in expected} == expected
                # The answers are replies to the very messages they answer.
                for m in fake.bot_messages(general)[2:]:
                    assert m.referenced_message_id is not None
                assert len(llm.requests) == 6
                # The model knows which answers come late (and the live one does not).
                late = {
                    TAG.findall(json.dumps(r.body["messages"][-1]))[-1]: "while you were offline"
                    in json.dumps(r.body)
                    for r in llm.requests
                }
                assert late == {
                    "tag-a": True,
                    "tag-c": True,
                    "tag-e": True,
                    "tag-f": True,
                    "tag-i": True,
                    "tag-g": False,
                }
        fake.assert_clean()


async def test_a_session_discord_drops_is_read_back_without_answering_twice():
    async with clara_on_discord() as w:
        bot = w.bot_id
        # Clara is still thinking about this one when her session is dropped.
        w.llm.enqueue(Reply("noted tag-a", first_token_delay=8.0))
        await w.mention(w.alice, "please note tag-a")
        await w.llm.wait_for_requests(1, timeout=10)

        identifies = w.discord.identify_count
        assert w.discord.invalidate_sessions(resumable=False) == 1
        # The fake forgets the session at once (no event reaches it any more);
        # discord.py closes and waits 5 s before it IDENTIFYs again.
        w.llm.enqueue(Reply("noted tag-b"))
        await w.mention(w.bob, "please note tag-b")  # reaches no session
        await w.discord.wait_until(
            lambda: w.discord.identify_count > identifies, timeout=30, what="a new IDENTIFY"
        )
        await w.discord.wait_until(
            lambda: (
                [m.content for m in w.replies()] == ["noted tag-a", "noted tag-b"]
                or len(w.replies()) > 2
            ),
            timeout=30,
            what="both mentions answered",
        )
        assert w.client.catch_up is not None
        await w.client.catch_up.wait()
        await asyncio.sleep(1.5)  # room for a wrong second answer
        assert [m.content for m in w.replies()] == ["noted tag-a", "noted tag-b"]
        assert w.discord.resume_count == 0
        assert len(w.llm.requests) == 2
        assert all(m.author_id == bot for m in w.replies())


async def test_the_read_back_can_be_turned_off():
    async with (
        FakeDiscord(heartbeat_interval_ms=1000) as fake,
        FakeLLM(api_keys={"test-key"}, default=echo) as llm,
    ):
        alice = fake.add_user("alice", global_name="Alice")
        guild = fake.add_guild("Home", members=[alice.id])
        channel = guild.text_channels[0].id
        await fake.send_message(channel, alice.id, f"<@{fake.bot.id}> please note tag-a")
        with discord_py_pointed_at(fake):
            async with clara_client_on(fake, llm, discord_catchup_minutes=0) as client:
                await fake.send_message(channel, alice.id, f"<@{fake.bot.id}> please note tag-b")
                await fake.wait_until(
                    lambda: texts(fake, channel) == ["noted tag-b"], timeout=15, what="answer"
                )
                assert client.catch_up is not None
                await client.catch_up.wait()
                await asyncio.sleep(1.0)
                assert texts(fake, channel) == ["noted tag-b"]
