"""Conversations through the real discord.py client, fake Discord and fake LLM."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tests.fakes.fake_llm import Hang, Reply, ToolCall
from tests.support.discord_app import clara_on_discord
from tools.builtin import clock_tool
from tools.registry import ToolRegistry

pytestmark = pytest.mark.slow


async def test_mention_gets_a_streamed_reply_with_the_exact_final_text():
    answer = "Hello Alice! Streaming works: " + " ".join(f"w{i}" for i in range(30))
    words = answer.split(" ")
    async with clara_on_discord() as w:
        w.llm.enqueue(
            Reply(answer, chunks=[x + " " for x in words[:-1]] + [words[-1]], chunk_delay=0.04)
        )
        asked = await w.mention(w.alice, "hello!")
        reply = await w.wait_reply_text(answer)
        history = w.discord.message_history(reply.id)
        assert len(history) >= 2  # it grew by edits
        assert history[-1] == answer
        assert int(reply.reference["message_id"]) == asked.id
        request = w.llm.requests[0]
        assert "Alice: hello!" in str(request.messages[-1])  # speaker named, mention stripped
        assert f"<@{w.bot_id}>" not in str(request.messages)
        assert w.discord.rate_limited_count.earned == 0


async def test_direct_messages_need_no_mention():
    async with clara_on_discord() as w:
        dm = w.discord.add_dm_channel(w.alice.id)
        w.llm.enqueue(Reply("Hi in private."))
        await w.say(w.alice, "psst", channel_id=dm.id)
        await w.wait_reply_text("Hi in private.", channel_id=dm.id)
        assert "psst" in str(w.llm.requests[0].messages[-1]) and "Alice:" not in str(
            w.llm.requests[0].messages[-1]
        )


async def test_unaddressed_messages_and_bots_are_ignored():
    async with clara_on_discord() as w:
        robot = w.discord.add_user("robot", bot=True)
        w.discord.add_member(w.guild_id, robot.id)
        await w.say(w.alice, "just talking to bob")
        await w.say(robot, f"<@{w.bot_id}> beep")
        await asyncio.sleep(0.8)
        assert w.llm.requests == [] and w.replies() == []


async def test_high_prefix_uses_the_high_model_and_shows_a_badge():
    async with clara_on_discord(custom_openai_model_high="big-model") as w:
        w.llm.enqueue(Reply("Deep thoughts."))
        await w.mention(w.alice, "!high what is entanglement?")
        await w.discord.wait_until(
            lambda: (
                w.replies()
                and "Deep thoughts." in w.replies()[0].content
                and "big-model" in w.replies()[0].content
            ),
            timeout=15,
            what="badge",
        )
        assert w.llm.requests[0].model == "big-model"
        content = w.replies()[0].content
        assert content.startswith("Deep thoughts.") and "\n-# tier: high · big-model" in content


async def test_reply_chain_reaches_the_model():
    async with clara_on_discord() as w:
        w.llm.enqueue(Reply("Your cat is called Miso."), Reply("Miso is 3 years old."))
        first = await w.mention(w.alice, "my cat is called Miso")
        clara1 = await w.wait_reply_text("Your cat is called Miso.")
        await w.say(w.alice, "how old is she?", reference_message_id=clara1.id)
        await w.wait_reply_text("Miso is 3 years old.")
        messages = w.llm.requests[1].messages
        text = str(messages)
        assert "my cat is called Miso" in text and "Your cat is called Miso." in text
        roles = [m["role"] for m in messages if m["role"] != "system"]
        assert roles == ["user", "assistant", "user"]
        assert first.id != clara1.id


async def test_long_answer_is_split_into_valid_messages():
    paragraphs = [f"Paragraph {i}: " + ("lorem ipsum " * 30).strip() for i in range(14)]
    answer = "\n\n".join(paragraphs)
    assert 4500 < len(answer) < 8000
    async with clara_on_discord() as w:
        w.llm.enqueue(Reply(answer, chunk_delay=0.005))
        await w.mention(w.alice, "write a lot")
        await w.discord.wait_until(
            lambda: (
                "".join(m.content for m in w.replies()).replace("\n", "")
                == answer.replace("\n", "")
            ),
            timeout=20,
            what="the full answer across messages",
        )
        parts = [m.content for m in w.replies()]
        assert len(parts) == 3 and all(len(p) <= 2000 for p in parts)
        assert w.discord.rate_limited_count.earned == 0


async def test_injected_429s_on_edits_lose_no_text():
    answer = "Final answer after rate limits: " + "x " * 50
    async with clara_on_discord() as w:
        w.discord.inject_429("edit", count=3, retry_after=0.3)
        w.llm.enqueue(Reply(answer, chunk_delay=0.02))
        await w.mention(w.alice, "go")
        reply = await w.wait_reply_text(answer, timeout=20)
        assert w.discord.message_history(reply.id)[-1] == answer
        assert w.discord.rate_limited_count.injected == 3


async def test_stop_phrase_cancels_the_stream_and_the_queue():
    async with clara_on_discord() as w:
        w.llm.enqueue(Hang(["Let me think about this very carefully "]), Reply("queued answer"))
        await w.mention(w.alice, "a hard question")
        await w.discord.wait_until(lambda: w.replies(), timeout=15, what="first partial reply")
        await w.mention(w.bob, "and mine?")  # queued behind alice
        await w.discord.wait_until(
            lambda: any("in line" in m.content for m in w.replies()),
            timeout=10,
            what="queue notice",
        )
        await w.mention(w.alice, "stop clara")
        disconnect = await w.llm.wait_for_disconnect(timeout=2)
        assert disconnect.chunks_sent >= 1
        await w.discord.wait_until(
            lambda: any(m.content.startswith("Stopped.") for m in w.replies()),
            timeout=5,
            what="confirmation",
        )
        confirm = next(m for m in w.replies() if m.content.startswith("Stopped."))
        assert "Cleared 1 queued request." in confirm.content
        partial = w.replies()[0]
        edits_at_confirm = len(w.discord.message_history(partial.id))
        assert "⏹ stopped" in partial.content
        await asyncio.sleep(1.0)
        assert len(w.discord.message_history(partial.id)) == edits_at_confirm  # no further edits
        assert len(w.llm.requests) == 1  # bob's queued request never ran


async def test_queue_runs_in_order_and_tells_people_their_position():
    async with clara_on_discord() as w:
        w.llm.enqueue(
            Reply("first answer", chunk_delay=0.3, chunks=["first ", "answer"]),
            Reply("second answer"),
        )
        await w.mention(w.alice, "one")
        await w.mention(w.bob, "two")
        await w.wait_reply_text("second answer", timeout=20)
        contents = [m.content for m in w.replies()]
        assert contents.index("first answer") < contents.index("second answer")
        assert any("You're #2 in line" in c for c in contents)
        assert any("Your turn" in c for c in contents)
        assert "one" in str(w.llm.requests[0].messages[-1]) and "two" in str(
            w.llm.requests[1].messages[-1]
        )


async def test_disallowed_channel_is_ignored():
    async with clara_on_discord(discord_allowed_channels="1") as w:
        await w.mention(w.alice, "hello?")
        await asyncio.sleep(0.8)
        assert w.llm.requests == [] and w.replies() == []


async def test_gateway_resume_causes_no_duplicate_replies():
    async with clara_on_discord() as w:
        w.llm.enqueue(
            Reply("only once", chunk_delay=0.1, chunks=["only ", "once"]), Reply("gap answer")
        )
        await w.mention(w.alice, "hi")
        await w.discord.wait_until(lambda: w.replies(), timeout=10, what="reply started")
        await w.discord.disconnect_all(code=4000)
        await w.mention(w.bob, "sent during the gap")
        await w.discord.wait_until(lambda: w.discord.resume_count >= 1, timeout=15, what="RESUME")
        await w.wait_reply_text("gap answer", timeout=15)
        await asyncio.sleep(0.5)
        contents = [m.content for m in w.replies()]
        assert contents.count("only once") == 1 and contents.count("gap answer") == 1
        assert len(w.llm.requests) == 2


async def test_replying_to_a_streaming_answer_waits_for_its_final_text():
    first = "The first answer, " + " ".join(f"part{i}" for i in range(25))
    async with clara_on_discord() as w:
        w.llm.enqueue(Reply(first, chunk_delay=0.06), Reply("Follow-up answer."))
        await w.mention(w.alice, "tell me something long")
        await w.discord.wait_until(lambda: w.replies(), timeout=10, what="partial reply")
        partial = w.replies()[0]
        assert partial.content != first  # still streaming
        await w.say(w.alice, "and then?", reference_message_id=partial.id)
        await w.wait_reply_text("Follow-up answer.", timeout=20)
        follow_up = w.llm.requests[1]
        assert any(m["role"] == "assistant" and m["content"] == first for m in follow_up.messages)


async def test_back_to_back_mentions_continue_the_exchange():
    async with clara_on_discord() as w:
        w.llm.enqueue(
            Reply("Green is a lovely colour."), Reply("You said green."), Reply("Hi Bob.")
        )
        await w.mention(w.alice, "my favourite colour is green")
        await w.wait_reply_text("Green is a lovely colour.")
        await w.mention(w.alice, "what did I just say?")  # no reply, same person, right after
        await w.wait_reply_text("You said green.")
        convo = [m for m in w.llm.requests[1].messages if m["role"] != "system"]
        assert [m["role"] for m in convo] == ["user", "assistant", "user"]
        assert (
            "favourite colour is green" in str(convo[0])
            and convo[1]["content"] == "Green is a lovely colour."
        )

        await w.mention(w.bob, "hello")  # someone else: a fresh exchange
        await w.wait_reply_text("Hi Bob.")
        convo = [m for m in w.llm.requests[2].messages if m["role"] != "system"]
        assert [m["role"] for m in convo] == ["user"]


async def _stop_while_streaming(w, send_stop, *, channel_id: int | None = None) -> None:
    """A streamed answer hangs mid-way with Bob queued behind it; ``send_stop()``
    must end the stream at once, clear the queue and confirm it, with no edit
    after the confirmation."""
    w.llm.enqueue(Hang(["Let me think about this very carefully "]), Reply("queued answer"))
    await w.mention(w.alice, "a hard question", channel_id=channel_id)
    await w.discord.wait_until(
        lambda: w.replies(channel_id), timeout=15, what="first partial reply"
    )
    partial = w.replies(channel_id)[0]
    await w.mention(w.bob, "and mine?", channel_id=channel_id)  # queued behind alice
    await w.discord.wait_until(
        lambda: any("in line" in m.content for m in w.replies(channel_id)),
        timeout=10,
        what="queue notice",
    )
    await send_stop(partial)
    await w.llm.wait_for_disconnect(timeout=3)
    await w.discord.wait_until(
        lambda: any(m.content.startswith("Stopped.") for m in w.replies(channel_id)),
        timeout=5,
        what="confirmation",
    )
    confirm = next(m for m in w.replies(channel_id) if m.content.startswith("Stopped."))
    assert "Cleared 1 queued request." in confirm.content
    edits_at_confirm = len(w.discord.message_history(partial.id))
    assert "⏹ stopped" in w.discord.message_history(partial.id)[-1]
    await asyncio.sleep(1.0)
    assert len(w.discord.message_history(partial.id)) == edits_at_confirm  # no further edits
    assert len(w.llm.requests) == 1  # neither bob's queued request nor the "stop" ran


@pytest.mark.parametrize("text", ["stop", "nevermind", "Clara, stop!", "never mind."])
async def test_a_mention_with_a_stop_word_stops(text):
    """The spec's own examples: "@Clara stop", "@Clara nevermind"."""
    async with clara_on_discord() as w:

        async def send_stop(partial):
            await w.mention(w.alice, text)

        await _stop_while_streaming(w, send_stop)


async def test_a_reply_to_clara_saying_stop_stops():
    async with clara_on_discord() as w:

        async def send_stop(partial):
            await w.say(w.alice, "stop", reference_message_id=partial.id)

        await _stop_while_streaming(w, send_stop)


async def test_stop_in_a_dm_stops():
    async with clara_on_discord() as w:
        dm = w.discord.add_dm_channel(w.alice.id)
        # In a DM every message is addressed to Clara; the queued one is Alice's own.
        w.llm.enqueue(Hang(["Let me think about this very carefully "]), Reply("queued"))
        await w.say(w.alice, "a hard question", channel_id=dm.id)
        await w.discord.wait_until(lambda: w.replies(dm.id), timeout=15, what="partial reply")
        partial = w.replies(dm.id)[0]
        await w.say(w.alice, "and another thing", channel_id=dm.id)
        await w.discord.wait_until(
            lambda: any("in line" in m.content for m in w.replies(dm.id)),
            timeout=10,
            what="queue notice",
        )
        await w.say(w.alice, "Stop", channel_id=dm.id)
        await w.llm.wait_for_disconnect(timeout=3)
        await w.discord.wait_until(
            lambda: any(m.content.startswith("Stopped.") for m in w.replies(dm.id)),
            timeout=5,
            what="confirmation",
        )
        edits_at_confirm = len(w.discord.message_history(partial.id))
        await asyncio.sleep(1.0)
        assert len(w.discord.message_history(partial.id)) == edits_at_confirm
        assert len(w.llm.requests) == 1


async def test_a_stop_word_inside_a_question_is_a_question():
    async with clara_on_discord() as w:
        w.llm.enqueue(Reply("Sure, no more emojis."))
        await w.mention(w.alice, "stop using emojis please")
        await w.wait_reply_text("Sure, no more emojis.")
        assert "stop using emojis" in str(w.llm.requests[0].messages[-1])


async def test_an_unaddressed_stop_in_a_server_channel_changes_nothing():
    """Only messages addressed to Clara trigger her (mention, reply, DM): someone
    saying "stop" to someone else in the channel must not cancel her answer."""
    answer = "A long answer that keeps going " + " ".join(f"w{i}" for i in range(20))
    async with clara_on_discord() as w:
        w.llm.enqueue(Reply(answer, chunk_delay=0.08))
        await w.mention(w.alice, "tell me something long")
        await w.discord.wait_until(lambda: w.replies(), timeout=15, what="partial reply")
        await w.say(w.bob, "stop")
        await w.wait_reply_text(answer, timeout=20)
        await asyncio.sleep(0.3)
        assert not any("Stopped" in m.content or "stop" in m.content for m in w.replies())
        assert len(w.llm.requests) == 1


def _clock_tools() -> ToolRegistry:
    reg = ToolRegistry()
    fixed = datetime(2026, 12, 5, 10, 30, tzinfo=UTC)
    reg.register(clock_tool("Europe/Lisbon", now=lambda: fixed))
    return reg


@pytest.mark.parametrize("prefix", ["!low", "!fast"])
async def test_low_prefix_answers_with_the_low_model_and_says_so(prefix):
    async with clara_on_discord(tools=_clock_tools(), custom_openai_model_low="cheap-model") as w:
        w.llm.enqueue(Reply("Hi!"))
        await w.mention(w.alice, f"{prefix} hi")
        await w.discord.wait_until(
            lambda: w.replies() and "cheap-model" in w.replies()[0].content,
            timeout=15,
            what="badge",
        )
        assert [r.model for r in w.llm.requests] == ["cheap-model"]
        assert w.replies()[0].content == "Hi!\n-# tier: low · cheap-model"


async def test_low_prefix_hands_the_tool_step_to_the_base_model():
    async with clara_on_discord(tools=_clock_tools(), custom_openai_model_low="cheap-model") as w:
        w.llm.enqueue(
            Reply(tool_calls=[ToolCall("get_current_time", {})]),
            Reply(tool_calls=[ToolCall("get_current_time", {})]),
            Reply("It's 10:30 in Lisbon."),
        )
        await w.mention(w.alice, "!low what time is it?")
        await w.discord.wait_until(
            lambda: w.replies() and "cheap-model" in w.replies()[0].content,
            timeout=15,
            what="badge",
        )
        assert [r.model for r in w.llm.requests] == ["cheap-model", "gpt-4o", "cheap-model"]
        assert "10:30:00" in str(w.llm.requests[2].messages)  # the clock's real result
        assert w.replies()[0].content == (
            "It's 10:30 in Lisbon.\n-# tier: low · cheap-model (tools: gpt-4o)"
        )


@pytest.mark.parametrize(
    "text",
    ["Clara, stop using emojis please", "never mind the weather, tell me a joke"],
)
async def test_a_sentence_that_starts_like_a_stop_phrase_is_answered_in_a_dm(text):
    """In a DM every message is addressed to Clara: an instruction that begins with a
    stop phrase ("clara stop" is one of the defaults) must reach the model, not be
    swallowed as a stop with "Nothing to stop."."""
    async with clara_on_discord() as w:
        dm = w.discord.add_dm_channel(w.alice.id)
        w.llm.enqueue(Reply("All right."))
        await w.say(w.alice, text, channel_id=dm.id)
        await w.discord.wait_until(
            lambda: any(m.content == "All right." for m in w.replies(dm.id)),
            timeout=15,
            what="the answer",
        )
        assert not any("stop" in m.content.lower() for m in w.replies(dm.id))
        assert len(w.llm.requests) == 1
        assert text in str(w.llm.requests[0].messages[-1])


async def test_nevermind_then_a_question_stops_and_answers_the_question():
    """ "@Clara nevermind, what's 2+2?" while she streams, with Bob queued: the stream
    ends, the queue is cleared and said so, and the new question is answered."""
    async with clara_on_discord() as w:
        w.llm.enqueue(Hang(["Let me think about this very carefully "]), Reply("It's 4."))
        await w.mention(w.alice, "a hard question")
        await w.discord.wait_until(lambda: w.replies(), timeout=15, what="first partial reply")
        partial = w.replies()[0]
        await w.mention(w.bob, "and mine?")  # queued behind alice
        await w.discord.wait_until(
            lambda: any("in line" in m.content for m in w.replies()),
            timeout=10,
            what="queue notice",
        )
        await w.mention(w.alice, "nevermind, what's 2+2?")
        await w.llm.wait_for_disconnect(timeout=3)
        await w.discord.wait_until(
            lambda: any(m.content == "It's 4." for m in w.replies()),
            timeout=15,
            what="the answer to the new question",
        )
        confirm = next(m for m in w.replies() if m.content.startswith("Stopped."))
        assert "Cleared 1 queued request." in confirm.content
        assert "⏹ stopped" in w.discord.message_history(partial.id)[-1]
        # The first answer and the new question ran; Bob's cleared request did not.
        assert len(w.llm.requests) == 2
        assert "what's 2+2?" in str(w.llm.requests[1].messages[-1])
        assert not any("and mine?" in str(r.messages[-1]) for r in w.llm.requests)


async def test_a_cancel_after_the_answer_is_finished_leaves_the_answer_alone():
    """A turn cancelled after its answer is complete (a shutdown or a stop while the
    turn is still being stored): the answer was not stopped and must not say so."""
    from clara_core.discord_adapter.streaming import StreamingReply

    async with clara_on_discord() as w:
        said = await w.say(w.bob, "not addressed to Clara")
        channel = w.client.get_channel(w.channel_id)
        message = await channel.fetch_message(said.id)
        reply = StreamingReply(message, w.client.conversation.pacer)
        reply.start()
        reply.append("Hello")
        await reply.finish("Hello there.")
        await reply.abort("⏹ stopped")
        assert [m.content for m in w.replies()] == ["Hello there."]
        # Cancelled before its end, a reply is still marked.
        unfinished = StreamingReply(message, w.client.conversation.pacer)
        unfinished.start()
        unfinished.append("Half an ans")
        await unfinished.abort("⏹ stopped")
        assert any(m.content.endswith("⏹ stopped") for m in w.replies())
