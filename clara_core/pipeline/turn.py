"""One conversational turn: tier -> context -> model (streamed) -> tool loop.

``TurnRunner.run()`` is an async generator of pipeline events.  Cancelling
the task that iterates it stops everything at once: the provider stream is
closed (its ``async with`` exits), and running tool tasks are cancelled by
their TaskGroup; nothing keeps running in the background.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from clara_core.llm import types as llm
from clara_core.llm.errors import LLMError
from clara_core.llm.service import ChatRequest, LLMService
from clara_core.llm.tiers import Tier, parse_tier_prefix
from tools.registry import ToolContext, ToolRegistry, ToolResult

from .events import Done, Failed, PipelineEvent, TextDelta, TierChosen, ToolFinished, ToolStarted
from .prompt import PromptBuilder, TurnContext

log = logging.getLogger(__name__)

#: Work after a completed turn (memory extraction); gets the turn and its answer.
AfterTurn = Callable[[TurnContext, Done], Awaitable[None]]

ANSWER_BREAK = "\n\n"
FINAL_NUDGE = (
    "You have used the maximum number of tool steps for this reply. Do not call tools "
    "now: answer with what you have, and say what is still open."
)


@dataclass
class TurnInput:
    text: str
    context: ToolContext
    history: list[llm.Message] = field(default_factory=list)
    images: list[llm.ImagePart] = field(default_factory=list)
    speaker: str | None = None  # display name, for group conversations
    default_tier: Tier | None = None  # e.g. a user's /clara tier preference
    context_notes: list[str] = field(default_factory=list)  # e.g. last session's summary


class TurnRunner:
    def __init__(
        self,
        llm_service: LLMService,
        tools: ToolRegistry,
        prompt: PromptBuilder,
        *,
        max_tool_iterations: int = 10,
        default_tier: Tier | None = None,
        auto_tier: bool = False,
    ) -> None:
        self.llm = llm_service
        self.tools = tools
        self.prompt = prompt
        self.max_tool_iterations = max_tool_iterations
        self.default_tier = default_tier
        self.auto_tier = auto_tier
        self._after_turn: list[AfterTurn] = []
        self._background: set[asyncio.Task[None]] = set()

    def add_after_turn(self, hook: AfterTurn) -> None:
        """Run ``hook`` after every completed turn, in the background: memory upkeep
        must never delay the answer the user is waiting for."""
        self._after_turn.append(hook)

    def _after(self, ctx: TurnContext, done: Done) -> None:
        for hook in self._after_turn:
            task = asyncio.create_task(self._run_hook(hook, ctx, done), name="after-turn")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    @staticmethod
    async def _run_hook(hook: AfterTurn, ctx: TurnContext, done: Done) -> None:
        try:
            await hook(ctx, done)
        except Exception:
            log.exception("after-turn hook %r failed", hook)

    async def drain(self) -> None:
        """Wait for after-turn work (tests; shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def run(self, turn: TurnInput) -> AsyncIterator[PipelineEvent]:
        try:
            async for event in self._run(turn):
                yield event
        except LLMError as exc:
            log.warning("turn failed: %s", exc)
            yield Failed(exc.user_message, str(exc))

    async def _choose_tier(
        self, turn: TurnInput, asked: Tier | None, text: str
    ) -> tuple[Tier | None, bool]:
        if asked is not None:
            return asked, False
        if turn.default_tier is not None:
            return turn.default_tier, False
        if self.auto_tier:
            return await self.llm.choose_tier(text, turn.history), True
        return self.default_tier, False

    async def _run(self, turn: TurnInput) -> AsyncIterator[PipelineEvent]:
        asked, text = parse_tier_prefix(turn.text)
        tier, auto = await self._choose_tier(turn, asked, text)
        specs = self.tools.specs(turn.context)
        chat_route = self.llm.primary_route(tier, with_tools=False)
        tool_route = self.llm.primary_route(tier, with_tools=True) if specs else None
        if tool_route is not None and not tool_route.capabilities.tools:
            tool_route = None
        with_tools = tool_route is not None
        yield TierChosen(
            tier=tier,
            model=(tool_route or chat_route).model,
            auto=auto,
            explicit=asked is not None,
            tool_model=tool_route.model
            if tool_route and tool_route.model != chat_route.model
            else None,
        )

        turn_ctx = TurnContext(turn.context, text, turn.speaker)
        system = await self.prompt.build(turn_ctx)
        if turn.context_notes:
            system += "\n\n## Earlier conversation\n" + "\n\n".join(turn.context_notes)
        user_text = f"{turn.speaker}: {text}" if turn.speaker else text
        images = turn.images
        if images and not (tool_route or chat_route).capabilities.vision:
            # Capabilities are data: this model can't see, so say so instead of failing.
            user_text += (
                f"\n[{len(images)} image(s) attached, but the current model can't see images; "
                "tell the user, and suggest a vision model tier if one exists]"
            )
            images = []
        content: list[llm.Part] = [llm.TextPart(user_text), *images]
        messages = [*turn.history, llm.Message(role="user", content=content, name=turn.speaker)]
        usage = llm.Usage()
        steps = 0
        said: list[str] = []  # text of each model call, shown as one answer
        while True:
            final_round = steps >= self.max_tool_iterations
            request = ChatRequest(
                messages=messages
                if not final_round
                else [*messages, llm.Message.text("user", FINAL_NUDGE)],
                system=system,
                tools=specs if with_tools and not final_round else [],
            )
            completion: llm.Completion | None = None
            first = True
            async for event in self.llm.stream(request, tier=tier, with_tools=with_tools):
                if isinstance(event, llm.TextDelta):
                    if first and said:
                        yield TextDelta(ANSWER_BREAK)  # between "let me check" and the result
                    first = False
                    yield TextDelta(event.text)
                elif isinstance(event, llm.Completion):
                    completion = event
            assert completion is not None  # providers always end with a Completion
            usage = usage + completion.usage
            if completion.text:
                said.append(completion.text)
            if not completion.tool_calls or final_round:
                done = Done(ANSWER_BREAK.join(said), completion.model, tier, usage, steps)
                self._after(turn_ctx, done)
                yield done
                return

            steps += 1
            messages.append(
                llm.Message(
                    role="assistant",
                    content=[llm.TextPart(completion.text)] if completion.text else [],
                    tool_calls=completion.tool_calls,
                )
            )
            for call in completion.tool_calls:
                yield ToolStarted(call.id, call.name, steps)
            results = await self._run_tools(completion.tool_calls, turn.context)
            for call, result in zip(completion.tool_calls, results, strict=True):
                yield ToolFinished(
                    call.id,
                    call.name,
                    steps,
                    not result.is_error,
                    result.duration_s,
                    result.content[:200],
                )
                messages.append(
                    llm.Message.tool_result(call.id, result.content, is_error=result.is_error)
                )

    async def _run_tools(self, calls: list[llm.ToolCall], ctx: ToolContext) -> list[ToolResult]:
        """Independent calls of one step run concurrently; cancellation reaches all."""
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self.tools.call(c, ctx), name=f"tool:{c.name}") for c in calls
            ]
        return [t.result() for t in tasks]
