"""Streamed speech in a voice channel, measured through the Discord adapter (bench/voice.py).

Clara's real ``ClaraDiscordClient`` joins the fake Discord's voice channel with
``/clara join`` (discord.py's voice client, TLS voice gateway, UDP), and a user
mentions her in the linked text channel.  The fake LLM streams the answer with
its whole first sentence as the first chunk, then one word every 0.4 s.
Measured per reply: from the moment the fake LLM has sent that first sentence
to the moment the fake's UDP endpoint receives the first non-silent Opus
packet of Clara's speech (sentence split, piper on the voice pool, resample,
Opus, RTP, encryption, loopback UDP: everything but the network).  Goal:
<= 400 ms.  Everything runs in this one process and event loop, as in the
tests.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.fakes.fake_llm import Reply
from tests.support.discord_app import clara_on_discord
from tests.support.slash import command

FIRST = "Of course, I can help with that. "
REST = "Let me look at what you have planned for tomorrow, one thing at a time."


async def _measure(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"first_sentence_to_audio_s": [], "answer_done_to_first_audio_s": []}
    async with clara_on_discord(
        voice=True, clara_tts_default=True, voice_channel_idle_seconds=600
    ) as w:
        vc = w.discord.add_voice_channel(w.guild_id, "Lounge")
        w.discord.join_voice(vc.id, w.alice.id)
        await w.discord.wait_until(
            lambda: w.alice.id in getattr(w.client.get_channel(vc.id), "voice_states", {}),
            timeout=10,
        )
        joined = await command(w, w.alice, "join")
        if not joined.content.startswith("🔊"):
            raise RuntimeError(f"/clara join failed: {joined.content}")
        await w.discord.wait_until(
            lambda: w.client.voice_clients and w.client.voice_clients[0].is_connected(),
            timeout=15,
        )
        for i in range(n + 1):  # the first one warms up (piper's first run)
            w.llm.enqueue(Reply(chunks=[FIRST, *(f"{x} " for x in REST.split())], chunk_delay=0.4))
            since = time.monotonic()
            await w.mention(w.alice, f"what's on tomorrow? ({i})")
            await w.discord.wait_until(lambda i=i: len(w.llm.requests) > i, timeout=10)
            request = w.llm.requests[i]
            # Poll at 1 ms: the fake LLM runs in this loop and has no "sent" hook.
            await w.discord.wait_until(
                lambda r=request: r.chunks_sent >= 1, timeout=10, interval=0.001
            )
            sent = time.monotonic()

            def first_audio(since: float = since) -> float | None:
                for packet in w.discord.voice.audio_from(w.bot_id).speech_packets:
                    if packet.at >= since:
                        return packet.at
                return None

            await w.discord.wait_until(lambda: first_audio() is not None, timeout=20)
            heard = first_audio()
            assert heard is not None
            if i:
                out["first_sentence_to_audio_s"].append(heard - sent)
                # Would the answer have been complete by then? (it can't be: 14 more words)
                out["answer_done_to_first_audio_s"].append(heard - (sent + 0.4 * len(REST.split())))
            # Let the reply finish and the player stop before the next one.
            await w.discord.wait_until(lambda r=request: r.outcome != "pending", timeout=30)

            def quiet() -> bool:
                packets = w.discord.voice.audio_from(w.bot_id).packets
                return time.monotonic() - packets[-1].at > 0.5

            await w.discord.wait_until(quiet, timeout=30)
        await command(w, w.alice, "leave")
    return out


def streamed_speech(n: int) -> dict[str, Any]:
    return asyncio.run(_measure(n))
