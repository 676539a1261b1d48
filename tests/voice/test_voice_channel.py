"""Clara in a voice channel, end to end: the real discord.py voice client joins the
fake's voice server (TLS voice gateway v8 + UDP, no DAVE), speaks a reply while the
fake LLM is still streaming it, and the fake decrypts and decodes her RTP so Whisper
can tell what she said."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clara_core.discord_adapter.voice_commands import NOT_SAVED
from clara_core.voice import audio
from storage import migrations
from storage.db import create_engine
from storage.embedded import EmbeddedPostgres
from storage.preferences import Preferences
from tests.fakes.fake_llm import Reply
from tests.support.discord_app import World, clara_on_discord
from tests.support.slash import command, press

from .conftest import overlap

pytestmark = pytest.mark.slow

ANSWER = (
    "Water the basil every morning. The tomatoes need a deep soak twice a week. "
    "Keep the ferns out of direct sun."
)
#: Long enough that its audio runs well past the moment someone says stop.
LONG_ANSWER = " ".join(
    f"Here is tip number {n} about keeping houseplants healthy through the winter months."
    for n in range(1, 9)
)


async def _in_voice(w: World, user) -> int:
    """``user`` sits in a new voice channel (as the client sees it); its id."""
    vc = w.discord.add_voice_channel(w.guild_id, "Lounge")
    w.discord.join_voice(vc.id, user.id)

    def seen() -> bool:
        channel = w.client.get_channel(vc.id)
        return channel is not None and user.id in getattr(channel, "voice_states", {})

    await w.discord.wait_until(seen, timeout=10, what="the client to see the user in voice")
    return vc.id


async def _join(w: World, user, vc_id: int) -> str:
    answer = await command(w, user, "join")
    await w.discord.wait_until(
        lambda: w.client.voice_clients and w.client.voice_clients[0].is_connected(),
        timeout=15,
        what="the voice connection",
    )
    assert w.discord.bot_voice_channel(w.guild_id) == vc_id
    return answer.content


def _bot_audio(w: World):
    return w.discord.voice.audio_from(w.bot_id)


def _heard(stt, pcm48) -> str:
    return stt.transcribe_pcm(audio.resample(pcm48, 48_000, audio.STT_RATE))


async def _quiet(w: World, seconds: float = 0.6, timeout: float = 40) -> None:
    """Wait until no packet arrived for ``seconds`` (the player ended)."""

    def settled() -> bool:
        packets = _bot_audio(w).packets
        return bool(packets) and time.monotonic() - packets[-1].at > seconds

    await w.discord.wait_until(settled, timeout=timeout, what="Clara to finish speaking")


async def test_join_speak_a_streamed_reply_as_it_streams_then_leave(stt):
    # Nobody ran /clara speech and CLARA_TTS_DEFAULT is off (its default): asking her
    # into the channel is enough to hear her.
    async with clara_on_discord(voice=True) as w:
        assert not w.client.settings.clara_tts_default
        vc_id = await _in_voice(w, w.alice)
        text = await _join(w, w.alice, vc_id)
        assert text.startswith("🔊 Joined <#") and "read my replies" in text
        conn = w.discord.voice.connections_of(w.bot_id)[-1]
        # The fake advertised no DAVE: plain transport encryption, the mode it offered.
        assert conn.mode == "aead_xchacha20_poly1305_rtpsize" and conn.secret_key

        # A slow stream (4 words a second): the answer takes ~5 s to arrive.
        w.llm.enqueue(Reply(ANSWER, chunk_delay=0.25))
        await w.mention(w.alice, "how do I look after my plants?")
        await w.discord.wait_until(
            lambda: _bot_audio(w).first_speech_at is not None, timeout=20, what="first audio"
        )
        # She started speaking while the model was still writing.
        request = w.llm.requests[0]
        assert request.outcome == "pending", "first audio only came after the stream ended"
        assert request.chunks_sent < len(ANSWER.split())

        await w.wait_reply_text(ANSWER, timeout=20)
        await _quiet(w)
        heard = _heard(stt, _bot_audio(w).pcm())
        assert overlap(ANSWER, heard) >= 0.8, heard
        # discord.py marks itself speaking while the player runs.
        assert any(flags & 1 for _, flags in conn.speaking)

        left = await command(w, w.alice, "leave")
        assert left.content == "👋 Left the voice channel."
        await w.discord.wait_until(
            lambda: w.discord.bot_voice_channel(w.guild_id) is None, timeout=10, what="leave"
        )
        leave_ops = [
            f.data
            for f in w.discord.gateway.received
            if f.op == 4 and isinstance(f.data, dict) and f.data.get("channel_id") is None
        ]
        assert leave_ops and int(leave_ops[-1]["guild_id"]) == w.guild_id
        await w.discord.wait_until(lambda: not conn.open, timeout=10, what="voice ws closed")
        assert not w.client.voice_clients
        w.discord.assert_clean()


async def test_stop_phrase_silences_her_within_two_seconds():
    async with clara_on_discord(voice=True) as w:
        vc_id = await _in_voice(w, w.alice)
        await _join(w, w.alice, vc_id)
        w.llm.enqueue(Reply(LONG_ANSWER, chunk_delay=0.01))
        await w.mention(w.alice, "give me winter tips")
        await w.discord.wait_until(
            lambda: _bot_audio(w).first_speech_at is not None, timeout=30, what="first audio"
        )
        await w.wait_reply_text(LONG_ANSWER, timeout=20)
        await asyncio.sleep(0.5)
        started = _bot_audio(w).first_speech_at
        assert started is not None
        stop_at = time.monotonic()
        await w.mention(w.alice, "stop")
        await w.wait_reply_text("Stopped.", timeout=10)
        await asyncio.sleep(2.5)
        last = _bot_audio(w).packets[-1].at
        assert last - stop_at <= 2.0, f"audio went on {last - stop_at:.2f}s after the stop"
        # Without the stop she would have gone on far longer (8 long sentences).
        spoken = len(_bot_audio(w).speech_packets) * 0.02
        assert spoken < 20, spoken
        assert w.client.voice_clients and not w.client.voice_clients[0].is_playing()
        # A stop is not a mute: the next reply is spoken again.
        w.llm.enqueue(Reply("I am back."))
        again = time.monotonic()
        await w.mention(w.alice, "say something")
        await w.discord.wait_until(
            lambda: any(p.at > again for p in _bot_audio(w).speech_packets),
            timeout=20,
            what="speech after the stop",
        )
        w.discord.assert_clean()
    # Shutting down leaves the voice channel (op 4 with channel_id null went out).
    assert w.discord.bot_voice_channel(w.guild_id) is None
    assert not w.client.voice_clients


async def test_speech_toggle_off_keeps_replies_text_only_and_an_empty_channel_is_left():
    async with clara_on_discord(voice=True, voice_channel_idle_seconds=0.5) as w:
        off = await command(w, w.alice, "speech", setting="off")
        assert off.content == "When I'm in a voice channel I'll answer you in text only."
        vc_id = await _in_voice(w, w.alice)
        text = await _join(w, w.alice, vc_id)
        # Alice turned it off: text only, and the answer says why and how to undo it.
        assert "text only (you turned speech off)" in text and "/clara speech on" in text
        w.llm.enqueue(Reply("Just text."))
        await w.mention(w.alice, "hello")
        await w.wait_reply_text("Just text.")
        await asyncio.sleep(0.5)
        assert _bot_audio(w).first_speech_at is None

        on = await command(w, w.alice, "speech", setting="on")
        assert "read my replies to you aloud" in on.content
        w.llm.enqueue(Reply("Now you can hear me."))
        await w.mention(w.alice, "again")
        await w.discord.wait_until(
            lambda: _bot_audio(w).first_speech_at is not None, timeout=20, what="audio"
        )
        # Bob may not change it for the whole server.
        refused = await command(w, w.bob, "speech", setting="on", scope="server")
        assert refused.content.startswith("Only server admins")

        # Everyone else leaves: after VOICE_CHANNEL_IDLE_SECONDS so does she.
        w.discord.leave_voice(w.guild_id, w.alice.id)
        await w.discord.wait_until(
            lambda: w.discord.bot_voice_channel(w.guild_id) is None,
            timeout=10,
            what="Clara to leave the empty channel",
        )
        await w.discord.wait_until(lambda: not w.client.voice_clients, timeout=10)


async def _speaks_after(w: World, since: float, what: str) -> None:
    await w.discord.wait_until(
        lambda: any(p.at > since for p in _bot_audio(w).speech_packets), timeout=20, what=what
    )


@pytest.mark.storage
async def test_a_stored_choice_is_read_on_join_and_forget_clears_it(engine):
    prefs = Preferences(engine)
    async with clara_on_discord(voice=True, preferences=prefs, engine=engine) as w:
        alice = str(w.alice.id)
        # Set in an earlier run: this client's cache has never seen it.
        await prefs.set_speak_replies(alice, False)
        vc_id = await _in_voice(w, w.alice)
        text = await _join(w, w.alice, vc_id)
        assert "text only (you turned speech off)" in text
        w.llm.enqueue(Reply("Just text."))
        await w.mention(w.alice, "hello")
        await w.wait_reply_text("Just text.")
        await asyncio.sleep(0.5)
        assert _bot_audio(w).first_speech_at is None

        # Bob wasn't in the channel at the join: his choice (none) is read while his
        # reply streams, and it is spoken from its first word.
        w.llm.enqueue(Reply("Hello Bob, nice to hear you."))
        await w.mention(w.bob, "hi")
        await _speaks_after(w, 0.0, "Bob's reply spoken")

        ask = await command(w, w.alice, "forget")
        await press(w, ask, "Confirm", w.alice)
        assert await prefs.speak_replies([alice]) == {}
        again = await command(w, w.alice, "join")
        assert "read my replies" in again.content, again.content
        w.llm.enqueue(Reply("Now you can hear me."))
        since = time.monotonic()
        await w.mention(w.alice, "again")
        await _speaks_after(w, since, "Alice's reply spoken after /clara forget")
        assert "• Voice speech choice: cleared" in ask.content, ask.content

        # The toggle itself is stored (a restart reads it: see test_speech_preferences).
        off = await command(w, w.alice, "speech", setting="off")
        assert off.content == "When I'm in a voice channel I'll answer you in text only."
        assert await prefs.speak_replies([alice]) == {alice: False}


@pytest.fixture
async def own_postgres(tmp_path: Path):
    """A PostgreSQL of this test's own, so stopping it touches nothing else."""
    server = EmbeddedPostgres(tmp_path / "pgdata")
    engine = create_engine(await server.start(), pool_size=1)
    await migrations.upgrade(engine)
    try:
        yield server, engine
    finally:
        await engine.dispose()
        await server.stop()


@pytest.mark.storage
async def test_with_postgres_down_the_toggle_says_so_and_still_applies(own_postgres):
    server, engine = own_postgres
    async with clara_on_discord(voice=True, preferences=Preferences(engine)) as w:
        on = await command(w, w.alice, "speech", setting="on")
        assert on.content == "When I'm in a voice channel I'll read my replies to you aloud."
        await server.stop()

        off = await command(w, w.alice, "speech", setting="off")
        assert off.content == "When I'm in a voice channel I'll answer you in text only." + (
            NOT_SAVED
        )
        assert "Traceback" not in off.content
        vc_id = await _in_voice(w, w.alice)
        text = await _join(w, w.alice, vc_id)
        assert "text only (you turned speech off)" in text
        w.llm.enqueue(Reply("Just text."))
        await w.mention(w.alice, "hello")
        await w.wait_reply_text("Just text.")
        await asyncio.sleep(0.5)
        assert _bot_audio(w).first_speech_at is None


async def test_join_without_being_in_voice_or_outside_a_server_is_a_plain_answer():
    async with clara_on_discord(voice=True) as w:
        answer = await command(w, w.alice, "join")
        assert answer.content == "Join a voice channel first, then run `/clara join` again."
        left = await command(w, w.alice, "leave")
        assert left.content == "I'm not in a voice channel here."
        assert w.discord.bot_voice_channel(w.guild_id) is None


_WITHOUT_NACL = """
import asyncio, sys
sys.modules["nacl"] = None  # as on an install without the voice extra's PyNaCl
from tests.support.discord_app import clara_on_discord
from tests.support.slash import command

async def main():
    async with clara_on_discord(voice=True) as w:
        vc = w.discord.add_voice_channel(w.guild_id, "Lounge")
        w.discord.join_voice(vc.id, w.alice.id)
        await w.discord.wait_until(lambda: w.client.get_channel(vc.id) is not None)
        print((await command(w, w.alice, "join")).content)
        assert w.discord.bot_voice_channel(w.guild_id) is None

asyncio.run(main())
"""


def test_join_without_pynacl_says_what_to_install():
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_NACL],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answer = done.stdout.strip().splitlines()[-1]
    assert answer.startswith("I can't speak in voice channels here: the bot's voice extra isn't")
    assert "PyNaCl" in answer and "requirements-voice.lock" in answer
    assert "Traceback" not in answer
