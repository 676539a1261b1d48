"""/clara say through the fake Discord: a deferred public answer, then a voice message
of it that transcribes back to the answer's words."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.fake_discord import MessageFlags
from tests.fakes.fake_llm import ErrorReply, Reply
from tests.support.discord_app import World, clara_on_discord
from tests.support.slash import EPHEMERAL, LOADING, sub

from .conftest import overlap

pytestmark = pytest.mark.slow

ANSWER = "Your plants get water at seven tonight. I will remind you an hour before."
PROMPT = "when do my plants get water?"
DEFERRED_CHANNEL_MESSAGE = 5
CHANNEL_MESSAGE = 4


def _voice_messages(w: World):
    return [m for m in w.replies() if m.flags & MessageFlags.IS_VOICE_MESSAGE]


async def _say(w: World, prompt: str):
    return await w.discord.send_slash_command(
        w.channel_id, w.alice.id, "clara", sub("say", prompt=prompt)
    )


async def test_clara_say_answers_in_text_and_as_a_voice_message_of_that_answer(stt):
    async with clara_on_discord() as w:
        w.llm.enqueue(Reply(ANSWER))
        inter = await _say(w, PROMPT)
        await w.discord.wait_until(lambda: _voice_messages(w), timeout=60, what="a voice message")

        # Deferred at once (synthesis takes longer than Discord's 3 s), publicly.
        assert inter.callback is not None and inter.callback.type == DEFERRED_CHANNEL_MESSAGE
        answer = w.discord.get_message(inter.original_message_id)
        assert not answer.flags & (LOADING | EPHEMERAL)
        assert answer.content == ANSWER

        (voice,) = _voice_messages(w)
        assert voice.content == "" and voice.channel_id == w.channel_id
        assert int(voice.reference["message_id"]) == answer.id  # replies to the text answer
        (att,) = voice.attachments
        assert att.filename == "voice-message.ogg" and att.content_type == "audio/ogg"
        assert att.waveform and 2 < att.duration_secs < 15
        assert att.data.startswith(b"OggS")
        # What she says is her answer.
        assert overlap(ANSWER, stt.transcribe_file(att.data).text) >= 0.85

        # The prompt went through the normal pipeline, as Alice's words, and the
        # model knew its answer would be read aloud.
        (request,) = w.llm.requests
        assert request.messages[-1]["content"] == f"Alice: {PROMPT}"
        assert "read aloud as a voice message" in str(request.messages)


async def test_clara_say_without_a_usable_voice_says_what_to_install_only_to_the_caller(
    tmp_path,
):
    missing = tmp_path / "voice.onnx"
    async with clara_on_discord(piper_model=str(missing)) as w:
        inter = await _say(w, PROMPT)
        await w.discord.wait_until(lambda: inter.acknowledged, timeout=15, what="an answer")
        assert inter.callback is not None and inter.callback.type == CHANNEL_MESSAGE
        reply = w.discord.get_message(inter.original_message_id)
        assert reply.flags & EPHEMERAL
        assert reply.content.startswith("I can't speak on this server right now")
        assert f"PIPER_MODEL={missing} needs the .onnx file" in reply.content
        await asyncio.sleep(0.3)
        assert w.llm.requests == [] and _voice_messages(w) == []


async def test_clara_say_is_refused_where_clara_does_not_answer():
    async with clara_on_discord(discord_allowed_channels=[1]) as w:
        inter = await _say(w, PROMPT)
        await w.discord.wait_until(lambda: inter.acknowledged, timeout=15, what="an answer")
        reply = w.discord.get_message(inter.original_message_id)
        assert reply.flags & EPHEMERAL and "I don't answer in this channel" in reply.content
        assert w.llm.requests == []


async def test_clara_stop_stops_a_clara_say_answer_before_it_is_spoken():
    async with clara_on_discord() as w:
        w.llm.enqueue(Reply(ANSWER, first_token_delay=10))
        inter = await _say(w, PROMPT)
        await w.discord.wait_until(lambda: w.llm.requests, timeout=15, what="the model asked")
        await w.mention(w.alice, "stop")
        await w.wait_reply_text("Stopped.")
        answer = w.discord.get_message(inter.original_message_id)
        await w.discord.wait_until(lambda: answer.content == "⏹ stopped", timeout=15)
        await asyncio.sleep(0.5)
        assert _voice_messages(w) == []


async def test_when_the_model_fails_clara_say_says_so_plainly_and_speaks_nothing():
    async with clara_on_discord() as w:
        w.llm.enqueue(ErrorReply(400, "bad request"))  # not retried: a plain failure
        inter = await _say(w, PROMPT)
        await w.discord.wait_until(
            lambda: (
                inter.original_message_id is not None
                and w.discord.get_message(inter.original_message_id).content.startswith("⚠️ ")
            ),
            timeout=30,
            what="the failure shown",
        )
        answer = w.discord.get_message(inter.original_message_id)
        assert "Traceback" not in answer.content and not answer.flags & LOADING
        await asyncio.sleep(0.5)
        assert _voice_messages(w) == []


async def test_clara_say_in_a_dm_speaks_there_too(stt):
    async with clara_on_discord() as w:
        dm = w.discord.add_dm_channel(w.alice.id)
        w.llm.enqueue(Reply(ANSWER))
        inter = await w.discord.send_slash_command(
            dm.id, w.alice.id, "clara", sub("say", prompt=PROMPT)
        )

        def voices():
            return [m for m in w.replies(dm.id) if m.flags & MessageFlags.IS_VOICE_MESSAGE]

        await w.discord.wait_until(voices, timeout=60, what="a voice message in the DM")
        answer = w.discord.get_message(inter.original_message_id)
        assert answer.content == ANSWER and answer.channel_id == dm.id
        (voice,) = voices()
        assert int(voice.reference["message_id"]) == answer.id
        assert overlap(ANSWER, stt.transcribe_file(voice.attachments[0].data).text) >= 0.85
        # No speaker prefix in a DM, as for a DM message.
        assert w.llm.requests[0].messages[-1]["content"] == PROMPT
