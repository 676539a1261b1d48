"""The fake LLM server in its own process, so its CPU time isn't Clara's.

``python bench/_fake_llm_server.py MODE`` prints the port, then serves until
killed.  MODE: ``instant`` (one short reply, no delays) or ``stream40``
(40 chunks at 40 tokens/s) or ``patterns`` (a JSON list of three
patterns: what consolidation asks for).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.fake_llm import FakeLLM, Reply


async def main(mode: str) -> None:
    async with FakeLLM() as fake:
        if mode == "patterns":
            # What a consolidation run reads back: patterns (embedded and stored),
            # and the same text as a compaction summary.
            facts = [
                {"fact": f, "category": "preference", "confidence": 0.8, "evidence": [0, 1]}
                for f in ("Likes hiking on weekends", "Drinks dark roast coffee", "Plays cello")
            ]
            fake.default = Reply(json.dumps(facts))
        elif mode == "instant":
            fake.default = Reply("Hi! Nice to meet you.", chunks=["Hi!", " Nice to", " meet you."])
        else:
            words = [f"word{i} " for i in range(40)]
            fake.default = Reply("".join(words), chunks=words, chunk_delay=1 / 40)
        print(fake.port, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
