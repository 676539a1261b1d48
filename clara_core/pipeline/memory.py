"""Glue between the conversation pipeline and Cortex.

``ServiceTextModel`` lets Cortex ask the LLM layer for cheap completions
(emotion scores, fact extraction, consolidation) without Cortex importing it;
``memory_section`` is Cortex's prompt contributor and ``remember_after_turn``
the after-turn hook that stores what was worth remembering.
"""

from __future__ import annotations

from clara_core.cortex.extraction import MemoryExtractor
from clara_core.cortex.manager import MemoryManager
from clara_core.cortex.ports import JsonAnswer
from clara_core.llm.service import ChatRequest, LLMService
from clara_core.llm.tiers import Tier
from clara_core.llm.types import Message, OutputSchema

from .events import Done
from .prompt import PromptContributor, PromptSection, TurnContext
from .turn import AfterTurn


class ServiceTextModel:
    """Cortex's ``TextModel`` on top of ``LLMService`` (low tier by default: cheap and quick)."""

    def __init__(self, service: LLMService, *, tier: Tier | None = "low") -> None:
        self.service = service
        self.tier = tier

    async def complete_text(
        self,
        prompt: str,
        *,
        max_tokens: int,
        system: str | None = None,
        json_answer: JsonAnswer | None = None,
    ) -> str:
        schema = (
            OutputSchema(json_answer.name, json_answer.schema, json_answer.description)
            if json_answer is not None
            else None
        )
        completion = await self.service.complete(
            ChatRequest(
                messages=[Message.text("user", prompt)],
                system=system,
                max_tokens=max_tokens,
                # Wishes: the service sends each only where the route accepts it.
                temperature=0.0,
                output_schema=schema,
            ),
            tier=self.tier,
        )
        return completion.text


#: Where the memory section leaves the user's forget epoch for the after-turn hook.
EPOCH_KEY = "cortex_forget_epoch"


def memory_section(manager: MemoryManager) -> PromptContributor:
    """Cortex's prompt section: identity, session, recent and retrieved memories,
    plus the channel's shared project when the speaker is a member."""

    async def contribute(ctx: TurnContext) -> PromptSection | None:
        user_id = ctx.tool_context.user_id
        channel = ctx.tool_context.channel_id
        ctx.tool_context.extras[EPOCH_KEY] = manager.forget_epoch(user_id)
        if channel is not None:
            memory = await manager.get_group_context(ctx.user_text, user_id, channel)
        else:
            memory = await manager.get_context(user_id, query=ctx.user_text)
        if memory is None or memory.empty:
            return None
        return PromptSection(
            "Memory",
            "What you remember (use it naturally; never recite it as a list unless asked):\n\n"
            + memory.to_prompt_string(),
            order=30,
        )

    return contribute


def remember_after_turn(manager: MemoryManager, extractor: MemoryExtractor) -> AfterTurn:
    """After each answered turn, store what was worth remembering."""

    async def after(ctx: TurnContext, done: Done) -> None:
        user_id = ctx.tool_context.user_id
        epoch = ctx.tool_context.extras.get(EPOCH_KEY, 0)

        def still_wanted() -> bool:
            # The user may ask to be forgotten while this turn is answered or read.
            return manager.forget_epoch(user_id) == epoch

        if not still_wanted():
            return
        channel = ctx.tool_context.channel_id
        project_id = (
            await manager.projects.project_for_channel(channel)
            if channel is not None and manager.pg_health.up
            else None
        )
        if project_id is not None and not await manager.projects.check_access(
            project_id, ctx.tool_context.user_id
        ):
            project_id = None
        await extractor.remember_turn(
            ctx.tool_context.user_id,
            ctx.user_text,
            done.text,
            speaker=ctx.speaker,
            project_id=project_id,
            still_wanted=still_wanted,
            asked=ctx.asked,
        )

    return after
