"""TTS -> Ogg/Opus -> decode -> Whisper: the words survive the round trip."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time

import av
import numpy as np
import pytest

from clara_core.voice import audio
from clara_core.voice.errors import AudioTooLong, BadAudio, VoiceBusy
from clara_core.voice.pool import VoicePool
from clara_core.voice.stt import Listener
from tests.support.images import png_1x1

from .conftest import LONG_PHRASE, PHRASE, overlap


def test_voice_clip_is_a_discord_voice_message(phrase_clip):
    with av.open(io.BytesIO(phrase_clip.ogg)) as container:
        assert container.format.name == "ogg"
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "opus"
        assert stream.codec_context.sample_rate == 48_000
        assert stream.codec_context.channels == 1
    assert 2.5 < phrase_clip.seconds < 8
    peaks = base64.b64decode(phrase_clip.waveform)
    assert 1 <= len(peaks) <= 256 and max(peaks) == 255


def test_round_trip_recovers_the_words(stt, phrase_clip):
    transcript = stt.transcribe_file(phrase_clip.ogg)
    assert overlap(PHRASE, transcript.text) >= 0.9, transcript.text
    assert abs(transcript.seconds - phrase_clip.seconds) < 0.2


def test_a_long_clip_round_trips_too(stt, long_clip):
    transcript = stt.transcribe_file(long_clip.ogg)
    assert long_clip.seconds > 10
    assert overlap(LONG_PHRASE, transcript.text) >= 0.85, transcript.text


@pytest.mark.parametrize(
    "data",
    [b"", b"OggS" + bytes(range(256)) * 20, png_1x1()],
    ids=["empty", "garbage-ogg", "png"],
)
def test_unreadable_files_raise_bad_audio(stt, data):
    with pytest.raises(BadAudio):
        stt.transcribe_file(data)


def test_a_truncated_upload_raises_bad_audio_or_keeps_what_decoded(stt, phrase_clip):
    half = phrase_clip.ogg[: len(phrase_clip.ogg) // 2]
    try:
        transcript = stt.transcribe_file(half)
    except BadAudio:
        return
    assert transcript.seconds < phrase_clip.seconds


def test_duration_cap_stops_decoding(long_clip):
    with pytest.raises(AudioTooLong) as caught:
        audio.decode(long_clip.ogg, max_seconds=3)
    assert caught.value.limit == 3


def test_resample_keeps_duration():
    tone = np.sin(np.linspace(0, 440 * 2 * np.pi, 22_050)).astype(np.float32)
    out = audio.resample(tone, 22_050, 16_000)
    assert abs(out.size - 16_000) < 200


async def test_the_pool_refuses_when_every_worker_and_the_line_are_busy():
    pool = VoicePool(1, waiting_per_worker=1)
    release = threading.Event()
    try:
        first = asyncio.ensure_future(pool.run(release.wait, 5))
        second = asyncio.ensure_future(pool.run(release.wait, 5))
        await asyncio.sleep(0.05)
        with pytest.raises(VoiceBusy):
            await pool.run(release.wait, 5)
        release.set()
        assert await first and await second
        assert await pool.run(lambda: 42) == 42  # room again
    finally:
        release.set()
        pool.close()


async def test_transcription_runs_off_the_event_loop(voice_settings, long_clip):
    listener = Listener(voice_settings)
    gaps: list[float] = []

    async def heartbeat() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    beat = asyncio.create_task(heartbeat())
    try:
        transcript = await listener.transcribe(long_clip.ogg)
    finally:
        beat.cancel()
        listener.close()
    assert transcript.text
    # Seconds of CPU went by, yet the loop kept ticking.
    assert len(gaps) > 20 and max(gaps) < 0.25, max(gaps)
