"""Glue between the conversation pipeline and Cortex.

``ServiceTextModel`` lets Cortex ask the LLM layer for cheap completions
(emotion scores, fact extraction, consolidation) without Cortex importing it.
"""

from __future__ import annotations

from clara_core.llm.service import ChatRequest, LLMService
from clara_core.llm.tiers import Tier
from clara_core.llm.types import Message


class ServiceTextModel:
    """Cortex's ``TextModel`` on top of ``LLMService`` (low tier by default: cheap and quick)."""

    def __init__(self, service: LLMService, *, tier: Tier | None = "low") -> None:
        self.service = service
        self.tier = tier

    async def complete_text(
        self, prompt: str, *, max_tokens: int, system: str | None = None
    ) -> str:
        completion = await self.service.complete(
            ChatRequest(
                messages=[Message.text("user", prompt)],
                system=system,
                max_tokens=max_tokens,
                temperature=0.0,
            ),
            tier=self.tier,
        )
        return completion.text
