"""Summaries of finished sessions, written in the background by the low tier.

A session idle for SESSION_IDLE_MINUTES gets a short summary, which the next
session in that context starts from.  Runs as one background loop; a failing
summary is retried on the next pass and never blocks conversations.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from clara_core.llm.errors import LLMError
from clara_core.llm.service import ChatRequest, LLMService
from clara_core.llm.types import Message
from storage.job_claims import JobClaims
from storage.sessions import SessionStore

log = logging.getLogger(__name__)

SUMMARY_SYSTEM = """\
Summarise this conversation between Clara and a user for Clara's own future
reference, in at most 6 short bullet points: what was discussed, decisions,
open questions, anything Clara promised, and the user's mood. Plain facts,
no preamble."""


class SessionSummarizer:
    def __init__(
        self,
        store: SessionStore,
        llm: LLMService,
        *,
        idle_minutes: float,
        claims: JobClaims | None = None,
    ) -> None:
        self.store = store
        self.llm = llm
        self.idle_minutes = idle_minutes
        #: Several Clara processes on one database: one pass per interval runs, in one
        #: of them (two at once would summarise the same sessions twice).
        self.claims = claims

    async def summarise(self, session_id) -> str | None:
        messages = await self.store.messages(session_id, limit=60)
        if not messages:
            return None
        transcript = "\n".join(f"{m.role}: {m.content[:1500]}" for m in messages)
        completion = await self.llm.complete(
            ChatRequest(
                messages=[Message.text("user", transcript)],
                system=SUMMARY_SYSTEM,
                max_tokens=400,
                temperature=0.2,
            ),
            tier="low",
        )
        summary = completion.text.strip()
        if summary:
            await self.store.set_summary(session_id, summary)
        return summary or None

    async def run_once(self) -> int:
        done = 0
        for session_id in await self.store.idle_unsummarised(self.idle_minutes):
            try:
                if await self.summarise(session_id):
                    done += 1
            except LLMError as exc:
                log.warning("session summary failed (%s); will retry", exc)
                break  # the provider is struggling: try again next pass
        return done

    async def run_forever(self, interval: float = 60.0) -> None:
        while True:
            try:
                if self.claims is None:
                    await self.run_once()
                else:
                    every = timedelta(seconds=interval)
                    async with self.claims.slot("session-summaries", every) as mine:
                        if mine:
                            await self.run_once()
            except Exception:
                log.exception("session summariser pass failed")
            await asyncio.sleep(interval)
