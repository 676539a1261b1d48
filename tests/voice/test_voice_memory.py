"""Memory after transcribing and speaking: RSS must level off, and not far above the models.

Measured in a fresh process (pytest's own RSS holds every other test's leftovers),
on the production path: one ``VoicePool`` worker alternating piper voice clips and
Whisper transcriptions of them, as voice messages and spoken replies do.  RSS is
read on the worker once the pool is idle, i.e. after the pool's own clean-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import LONG_PHRASE, PHRASE

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc"),
]

ROUNDS = 16
#: Rounds before RSS is expected to level off: every text has been through once.
WARM_UP = 4

_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys

    from clara_core.config import load_settings
    from clara_core.voice.pool import VoicePool
    from clara_core.voice.stt import Listener
    from clara_core.voice.tts import TextToSpeech

    def rss_mb():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    async def main(texts, rounds):
        settings = load_settings(env_file=None)
        pool = VoicePool(1)
        listener, tts = Listener(settings, pool), TextToSpeech(settings)
        await pool.run(tts.load)
        await listener.warm_up()
        out = {"loaded": await pool.run(rss_mb), "rounds": [], "heard": []}
        for i in range(rounds):
            clip = await pool.run(tts.voice_clip, texts[i % len(texts)])
            out["heard"].append((await listener.transcribe(clip.ogg)).text)
            # Runs after the idle pool's clean-up (one worker: first in, first out).
            out["rounds"].append(await pool.run(rss_mb))
        pool.close()
        print(json.dumps(out))

    asyncio.run(main(json.loads(sys.argv[1]), int(sys.argv[2])))
    """
)


def test_rss_levels_off_over_repeated_transcriptions_and_speech():
    texts = [LONG_PHRASE, PHRASE, f"{PHRASE} {LONG_PHRASE}", "Sure, I can do that."]
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(texts), str(ROUNDS)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    loaded, rounds = out["loaded"], out["rounds"]
    assert all(out["heard"]), out["heard"]  # real work was done each round
    settled, late = max(rounds[WARM_UP : ROUNDS // 2]), max(rounds[ROUNDS // 2 :])
    # A plateau: the second half grows no more than a little over the first.
    assert late - settled < 25, f"RSS keeps growing: loaded {loaded:.0f} MB, rounds {rounds}"
    # ...and a low one. Before the fix the same work held ~200 MB over the loaded
    # models (onnxruntime's arena, glibc's per-thread free lists); now ~60 MB.
    assert late - loaded < 130, f"RSS far above the models: loaded {loaded:.0f} MB, {rounds}"
