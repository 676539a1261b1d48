"""Voice messages on (fake) Discord: transcript -> the model -> a reply that quotes it."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.fake_discord import MessageFlags
from tests.fakes.fake_llm import Reply
from tests.support.discord_app import clara_on_discord

from .conftest import PHRASE, overlap

pytestmark = pytest.mark.slow

QUOTE = "> 🎙️ "


def _user_text(request) -> str:
    content = request.messages[-1]["content"]
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content)
    return content


async def _reply_starting(w, prefix: str, channel_id: int, timeout: float = 60):
    await w.discord.wait_until(
        lambda: any(m.content.startswith(prefix) for m in w.replies(channel_id)),
        timeout=timeout,
        what=f"a reply starting {prefix!r}",
    )
    return next(m for m in w.replies(channel_id) if m.content.startswith(prefix))


async def test_a_voice_message_in_a_dm_reaches_the_model_and_the_reply_quotes_it(
    tmp_path, phrase_clip
):
    async with clara_on_discord(clara_files_dir=str(tmp_path / "files")) as w:
        dm = w.discord.add_dm_channel(w.alice.id)
        w.llm.enqueue(Reply("Sure, I'll remind you at 7."))
        sent = await w.discord.send_voice_message(
            dm.id,
            w.alice.id,
            phrase_clip.ogg,
            duration_secs=phrase_clip.seconds,
            waveform=phrase_clip.waveform,
        )
        reply = await _reply_starting(w, QUOTE, dm.id)
        await w.discord.wait_until(
            lambda: reply.content.endswith("Sure, I'll remind you at 7."), timeout=15
        )
        heard, answer = reply.content.split("\n\n", 1)
        assert overlap(PHRASE, heard) >= 0.9, heard
        assert answer == "Sure, I'll remind you at 7."
        assert int(reply.reference["message_id"]) == sent.id
        # The model got the transcript as the user's own words.
        assert len(w.llm.requests) == 1
        assert overlap(PHRASE, _user_text(w.llm.requests[0])) >= 0.9
        # A voice message is heard, not filed away among the user's documents.
        assert not (tmp_path / "files" / str(w.alice.id)).exists()


async def test_a_voice_message_replying_to_clara_in_a_channel_is_heard(phrase_clip):
    async with clara_on_discord() as w:
        w.llm.enqueue(Reply("Hello Alice."))
        await w.mention(w.alice, "hi")
        first = await w.wait_reply_text("Hello Alice.")
        w.llm.enqueue(Reply("Plants noted."))
        await w.discord.send_voice_message(
            w.channel_id,
            w.alice.id,
            phrase_clip.ogg,
            duration_secs=phrase_clip.seconds,
            waveform=phrase_clip.waveform,
            reference_message_id=first.id,
        )
        reply = await _reply_starting(w, QUOTE, w.channel_id)
        await w.discord.wait_until(lambda: reply.content.endswith("Plants noted."), timeout=15)
        text = _user_text(w.llm.requests[1])
        assert text.startswith("Alice: ") and overlap(PHRASE, text) >= 0.9


async def test_a_voice_message_not_addressed_to_clara_is_ignored(phrase_clip):
    async with clara_on_discord() as w:
        await w.discord.send_voice_message(
            w.channel_id,
            w.alice.id,
            phrase_clip.ogg,
            duration_secs=phrase_clip.seconds,
            waveform=phrase_clip.waveform,
        )
        await asyncio.sleep(1)
        assert w.llm.requests == [] and w.replies() == []


async def test_an_audio_attachment_is_transcribed_below_the_typed_text(phrase_clip):
    async with clara_on_discord() as w:
        w.llm.enqueue(Reply("It asks for a reminder."))
        await w.mention(
            w.alice,
            "what does this say?",
            attachments=[("memo.ogg", phrase_clip.ogg, "audio/ogg")],
        )
        reply = await _reply_starting(w, QUOTE + "memo.ogg: ", w.channel_id)
        await w.discord.wait_until(
            lambda: reply.content.endswith("It asks for a reminder."), timeout=15
        )
        text = _user_text(w.llm.requests[0])
        assert "what does this say?" in text and "--- transcript of memo.ogg ---" in text
        assert overlap(PHRASE, text.split("--- transcript of memo.ogg ---")[1]) >= 0.9


async def test_a_corrupt_voice_message_gets_a_plain_reply_and_no_model_call():
    async with clara_on_discord() as w:
        dm = w.discord.add_dm_channel(w.alice.id)
        await w.discord.send_voice_message(
            dm.id, w.alice.id, b"OggS" + bytes(range(256)) * 8, duration_secs=2.0, waveform="AAAA"
        )
        reply = await _reply_starting(w, "⚠️ ", dm.id, timeout=30)
        assert reply.content == (
            "⚠️ I couldn't play that voice message: the audio is damaged or in a format I "
            "can't read. Try recording it again, or type your message."
        )
        assert "Traceback" not in reply.content
        await asyncio.sleep(0.3)
        assert w.llm.requests == []


async def test_a_voice_message_over_the_duration_cap_is_refused_plainly(long_clip):
    async with clara_on_discord(voice_max_seconds=5) as w:
        dm = w.discord.add_dm_channel(w.alice.id)
        await w.discord.send_voice_message(
            dm.id,
            w.alice.id,
            long_clip.ogg,
            duration_secs=long_clip.seconds,
            waveform=long_clip.waveform,
        )
        reply = await _reply_starting(w, "⚠️ ", dm.id, timeout=30)
        assert reply.content.startswith(
            f"⚠️ That voice message runs {long_clip.seconds:.0f} s; I listen to at most 5 s"
        )
        assert w.llm.requests == []


async def test_a_voice_message_lying_about_its_length_is_still_capped(long_clip):
    # The Discord client's duration_secs is the sender's word; decoding checks too.
    async with clara_on_discord(voice_max_seconds=5) as w:
        dm = w.discord.add_dm_channel(w.alice.id)
        await w.discord.send_voice_message(
            dm.id, w.alice.id, long_clip.ogg, duration_secs=1.0, waveform=long_clip.waveform
        )
        reply = await _reply_starting(w, "⚠️ ", dm.id, timeout=30)
        assert "I listen to at most 5 s" in reply.content
        assert w.llm.requests == []


async def test_with_voice_turned_off_a_voice_message_gets_a_plain_reply(phrase_clip):
    async with clara_on_discord(voice_enabled=False) as w:
        dm = w.discord.add_dm_channel(w.alice.id)
        await w.discord.send_voice_message(
            dm.id,
            w.alice.id,
            phrase_clip.ogg,
            duration_secs=phrase_clip.seconds,
            waveform=phrase_clip.waveform,
        )
        reply = await _reply_starting(w, "⚠️ ", dm.id, timeout=15)
        assert "Voice messages are turned off here" in reply.content
        assert w.llm.requests == []


ANSWER = "Of course. Your plants get water at seven tonight, and I will remind you."


def _voice_replies(w, channel_id: int):
    return [
        m
        for m in w.replies(channel_id)
        if m.flags & MessageFlags.IS_VOICE_MESSAGE and m.attachments
    ]


async def test_asked_to_reply_as_a_voice_message_clara_sends_one_with_her_answer(stt):
    async with clara_on_discord() as w:
        w.llm.enqueue(Reply(ANSWER))
        asked = await w.mention(w.alice, "reply as a voice message: when do my plants get water?")
        await w.wait_reply_text(ANSWER)
        await w.discord.wait_until(lambda: _voice_replies(w, w.channel_id), timeout=30)
        (voice,) = _voice_replies(w, w.channel_id)
        assert voice.content == "" and int(voice.reference["message_id"]) == asked.id
        (att,) = voice.attachments
        assert att.filename == "voice-message.ogg" and att.content_type == "audio/ogg"
        assert att.waveform and 2 < att.duration_secs < 15
        # What she says is her answer: transcribe her voice message back.
        assert overlap(ANSWER, stt.transcribe_file(att.data).text) >= 0.85
        # The model was told its answer would be read aloud.
        assert "read aloud as a voice message" in str(w.llm.requests[0].messages)


async def test_with_clara_tts_default_a_voice_message_is_answered_in_kind(phrase_clip, stt):
    async with clara_on_discord(clara_tts_default=True) as w:
        dm = w.discord.add_dm_channel(w.alice.id)
        w.llm.enqueue(Reply(ANSWER))
        await w.discord.send_voice_message(
            dm.id,
            w.alice.id,
            phrase_clip.ogg,
            duration_secs=phrase_clip.seconds,
            waveform=phrase_clip.waveform,
        )
        await _reply_starting(w, QUOTE, dm.id)
        await w.discord.wait_until(lambda: _voice_replies(w, dm.id), timeout=60)
        (voice,) = _voice_replies(w, dm.id)
        assert overlap(ANSWER, stt.transcribe_file(voice.attachments[0].data).text) >= 0.85


async def test_without_being_asked_the_answer_stays_text(phrase_clip):
    async with clara_on_discord() as w:  # CLARA_TTS_DEFAULT off
        dm = w.discord.add_dm_channel(w.alice.id)
        w.llm.enqueue(Reply(ANSWER))
        await w.discord.send_voice_message(
            dm.id,
            w.alice.id,
            phrase_clip.ogg,
            duration_secs=phrase_clip.seconds,
            waveform=phrase_clip.waveform,
        )
        reply = await _reply_starting(w, QUOTE, dm.id)
        await w.discord.wait_until(lambda: reply.content.endswith(ANSWER), timeout=15)
        await asyncio.sleep(0.5)
        assert _voice_replies(w, dm.id) == []


async def test_a_voice_message_over_the_size_cap_is_refused_plainly(phrase_clip):
    async with clara_on_discord(voice_max_bytes="1KB") as w:
        dm = w.discord.add_dm_channel(w.alice.id)
        await w.discord.send_voice_message(
            dm.id,
            w.alice.id,
            phrase_clip.ogg,
            duration_secs=phrase_clip.seconds,
            waveform=phrase_clip.waveform,
        )
        reply = await _reply_starting(w, "⚠️ ", dm.id, timeout=15)
        assert reply.content == (
            f"⚠️ That voice message is {len(phrase_clip.ogg) / 1024:.1f} KiB, more than the "
            "1,000 bytes I can listen to; send a shorter recording or type it."
        )
        assert w.llm.requests == []


async def test_with_voice_turned_off_an_audio_attachment_is_just_a_file(tmp_path, phrase_clip):
    async with clara_on_discord(voice_enabled=False, clara_files_dir=str(tmp_path)) as w:
        w.llm.enqueue(Reply("A memo, saved."))
        await w.mention(
            w.alice, "keep this", attachments=[("memo.ogg", phrase_clip.ogg, "audio/ogg")]
        )
        await w.wait_reply_text("A memo, saved.")
        assert "transcript" not in _user_text(w.llm.requests[0])
        assert (tmp_path / str(w.alice.id) / "memo.ogg").read_bytes() == phrase_clip.ogg
