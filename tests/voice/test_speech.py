"""Streamed speech pieces: sentence splitting, the packet queue, the Opus encoder."""

from __future__ import annotations

import numpy as np

from clara_core.voice.speech import (
    CODE_NOTE,
    FRAME_SAMPLES,
    OPUS_SILENCE,
    REST_NOTE,
    OpusEncoder,
    PacketQueue,
    SentenceSplitter,
    SpeechSynth,
)
from tests.fakes.fake_discord.voice_udp import ReceivedAudio, RtpPacket


def _stream(text: str, step: int = 3) -> list[tuple[int, str]]:
    """Feed ``text`` in ``step``-character deltas: (characters fed so far, sentence)."""
    splitter = SentenceSplitter()
    out = []
    for i in range(0, len(text), step):
        out += [(i + step, s) for s in splitter.feed(text[i : i + step])]
    out += [(len(text), s) for s in splitter.flush()]
    return out


def test_a_sentence_is_released_as_soon_as_it_is_complete():
    text = "Hello there! I am Clara. And this is the rest"
    out = _stream(text)
    assert [s for _, s in out] == ["Hello there!", "I am Clara.", "And this is the rest"]
    # "Hello there!" went out once the space after it arrived, long before the end.
    assert out[0][0] <= len("Hello there! ") + 3
    assert out[1][0] < len(text)


def test_the_opening_clause_goes_out_alone_so_she_starts_talking_sooner():
    text = "Of course, I can help with that. Hi, you. Later, more."
    out = _stream(text)
    assert [s for _, s in out] == [
        "Of course,",
        "I can help with that.",
        "Hi, you.",
        "Later, more.",
    ]
    assert out[0][0] <= len("Of course, I") + 3  # before the sentence is complete
    # A short opener ("Hi,") is not worth a clip of its own.
    assert [s for _, s in _stream("Hi, there you are. Yes.")] == ["Hi, there you are.", "Yes."]


def test_markdown_lists_links_and_code_are_spoken_sensibly():
    text = (
        "Here is a list:\n1. First **item**\n2. See [the docs](https://x.example) now\n"
        "e.g. this stays one sentence. Code:\n```python\nprint(1)\n```\nDone."
    )
    assert [s for _, s in _stream(text)] == [
        "Here is a list:",
        "First item",
        "See the docs now",
        "e.g. this stays one sentence.",
        "Code:",
        CODE_NOTE,
        "Done.",
    ]


def test_a_long_reply_is_capped_with_a_note_and_run_ons_are_cut():
    splitter = SentenceSplitter(max_chars=60)
    said = splitter.feed("One two three four five six. " * 5) + splitter.flush()
    assert said[-1] == REST_NOTE and len(said) == 3
    run_on = SentenceSplitter().feed("word, " * 100)
    assert run_on and all(len(s) <= 240 for s in run_on)


def test_the_packet_queue_pads_with_silence_while_held_and_ends_when_done():
    queue = PacketQueue()
    assert queue.read() == b"" and queue.ended
    queue.hold()
    queue.put([b"a", b"b"])
    queue.restart()  # a player starts reading
    queue.put([b"c"])
    assert [queue.read() for _ in range(4)] == [b"a", b"b", b"c", OPUS_SILENCE]
    assert not queue.ended  # still held: silence keeps the stream timed
    queue.release()
    assert queue.read() == b"" and queue.ended
    queue.put([b"d"])
    queue.clear()
    assert queue.read() == b""


def test_opus_frames_are_20_ms_at_48_khz_stereo_and_decode_back():
    rate = 22_050
    t = np.arange(rate) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    packets = OpusEncoder().encode(tone, rate)
    assert len(packets) == 50  # 1 s in 20 ms frames
    received = ReceivedAudio(
        1, [RtpPacket(0.0, i, i * FRAME_SAMPLES, 1, p) for i, p in enumerate(packets)]
    )
    pcm = received.pcm()
    assert abs(pcm.size - 48_000) <= FRAME_SAMPLES
    # The tone survives: its energy sits at 440 Hz.
    spectrum = np.abs(np.fft.rfft(pcm[4800:43200]))
    peak = np.argmax(spectrum) * 48_000 / (43200 - 4800)
    assert abs(peak - 440) < 5


def test_every_speaker_of_the_process_shares_one_loaded_piper_voice(voice_settings):
    """Voice messages, voice channels and /clara say each make their own
    ``TextToSpeech``: the model (and its onnxruntime session) is loaded once."""
    from clara_core.voice.tts import TextToSpeech

    messages, channel = TextToSpeech(voice_settings), SpeechSynth(TextToSpeech(voice_settings))
    channel.load()
    assert messages.load() is channel.tts.load()
    assert channel.render("Hello there.")  # the shared voice still speaks
