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
from tools.registry import ToolAttachment, ToolContext, ToolRegistry, ToolResult

from .events import Done, Failed, PipelineEvent, TextDelta, TierChosen, ToolFinished, ToolStarted
from .prompt import PromptBuilder, TurnContext

log = logging.getLogger(__name__)

#: Work after a completed turn (memory extraction); gets the turn and its answer.
AfterTurn = Callable[[TurnContext, Done], Awaitable[None]]
#: Where a prompt contributor (the mood) leaves a temperature wish for this turn's
#: requests; a wish: the service sends it only where the model takes a temperature.
TEMPERATURE_WISH_KEY = "temperature_wish"

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
        # Tool calls never run on the low tier (spec): for it, the tool route is
        # the base model.  Handing it the whole turn would mean the low tier never
        # answers at all, since a tool is always registered.  So the tier's own
        # model answers, offered the tools so it can say when it needs one; a step
        # in which it asks for tools is re-run on the tool model, and only that
        # step: the tools are called as the base model decides, and the next step
        # (with the results) is the tier model's again.  A wasted cheap call per
        # tool step buys a low tier that is really low for everything else.  The
        # tier model's steps carry the tools, so they go where tool requests go
        # (TOOL_BASE_URL / TOOL_API_KEY, when set: the chat endpoint may refuse
        # tools), with the tier's own model.  Only a tier model that takes no
        # tools (capabilities are data) leaves the whole turn to the tool model.
        tier_tools_route = (
            self.llm.primary_route(tier, with_tools=True, keep_tier=True)
            if tool_route is not None
            else None
        )
        hand_off = (
            tool_route is not None
            and tier_tools_route is not None
            and tool_route.model != tier_tools_route.model
            and tier_tools_route.capabilities.tools
        )
        if hand_off:
            assert tier_tools_route is not None
            answering = tier_tools_route
        else:
            answering = chat_route if tool_route is None else tool_route
        # Images a tool returned go to the model as image parts only when every model
        # that reads the results can see (capabilities are data); else their text line.
        tools_see = answering.capabilities.vision and (
            tool_route is None or tool_route.capabilities.vision
        )
        yield TierChosen(
            tier=tier,
            model=answering.model,
            auto=auto,
            explicit=asked is not None,
            tool_model=tool_route.model
            if tool_route and tool_route.model != answering.model
            else None,
        )

        turn_ctx = TurnContext(
            turn.context, text, turn.speaker, asked=_question_asked(turn.history)
        )
        system = await self.prompt.build(turn_ctx)
        if turn.context_notes:
            system += "\n\n## Earlier conversation\n" + "\n\n".join(turn.context_notes)
        user_text = f"{turn.speaker}: {text}" if turn.speaker else text
        images = turn.images
        if images and not answering.capabilities.vision:
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
        tool_model: str | None = None  # set when a step was handed to the tool model
        files: dict[str, ToolAttachment] = {}  # what the tools made for the user, by name
        while True:
            final_round = steps >= self.max_tool_iterations
            request = ChatRequest(
                messages=messages
                if not final_round
                else [*messages, llm.Message.text("user", FINAL_NUDGE)],
                system=system,
                tools=specs if with_tools and not final_round else [],
                temperature=turn.context.extras.get(TEMPERATURE_WISH_KEY),
            )
            completion: llm.Completion | None = None
            async for item in self._call(
                request, tier, with_tools=with_tools, keep_tier=hand_off, said=said, show=True
            ):
                if isinstance(item, llm.Completion):
                    completion = item
                else:
                    yield item
            assert completion is not None  # providers always end with a Completion
            usage = usage + completion.usage
            if hand_off and completion.tool_calls and not final_round:
                # The tier model asked for tools: this step goes to the tool model.
                # What the tier model said is on screen already ("let me check");
                # the tool model saying it again would read twice, so its text of
                # this step only goes to the conversation the models see.
                shown = bool(completion.text)
                if shown:
                    said.append(completion.text)
                handed: llm.Completion | None = None
                async for item in self._call(
                    request, tier, with_tools=True, said=said, show=not shown
                ):
                    if isinstance(item, llm.Completion):
                        handed = item
                    else:
                        yield item
                assert handed is not None
                usage = usage + handed.usage
                tool_model = handed.model
                if handed.text and shown and not handed.tool_calls:
                    # The tool model answered without a tool after all: then its
                    # text is the answer, not a repeated lead-in, and must be shown.
                    yield TextDelta(ANSWER_BREAK)
                    yield TextDelta(handed.text)
                if handed.text and (not shown or not handed.tool_calls):
                    said.append(handed.text)
                completion = handed
            elif completion.text:
                said.append(completion.text)
            if not completion.tool_calls or final_round:
                done = Done(
                    ANSWER_BREAK.join(said),
                    completion.model,
                    tier,
                    usage,
                    steps,
                    tool_model=tool_model if tool_model != completion.model else None,
                    attachments=tuple(files.values()),
                )
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
                tool = self.tools.get(call.name)
                yield ToolStarted(call.id, call.name, steps, tool.activity if tool else None)
            # Cancelled here (a stop phrase), the tools are cancelled with us and
            # their results never reach the model: nothing after this line runs.
            results = await self._run_tools(completion.tool_calls, turn.context)
            for call, result in zip(completion.tool_calls, results, strict=True):
                yield ToolFinished(
                    call.id,
                    call.name,
                    steps,
                    not result.is_error,
                    result.duration_s,
                    result.content[:200],
                    tuple(result.attachments),
                )
                for file in result.attachments:
                    files.pop(file.filename, None)  # re-made: the newest, in its new place
                    files[file.filename] = file
                message = llm.Message.tool_result(call.id, result.content, is_error=result.is_error)
                if tools_see and result.images:
                    message.content.extend(result.images)
                messages.append(message)

    async def _call(
        self,
        request: ChatRequest,
        tier: Tier | None,
        *,
        with_tools: bool,
        said: list[str],
        show: bool,
        keep_tier: bool = False,
    ) -> AsyncIterator[TextDelta | llm.Completion]:
        """One streamed model call: its text as ``TextDelta``s (unless ``show`` is
        off), then its ``Completion``."""
        first = True
        async for event in self.llm.stream(
            request, tier=tier, with_tools=with_tools, keep_tier=keep_tier
        ):
            if isinstance(event, llm.TextDelta):
                if not show:
                    continue
                if first and said:
                    yield TextDelta(ANSWER_BREAK)  # between "let me check" and the result
                first = False
                yield TextDelta(event.text)
            elif isinstance(event, llm.Completion):
                yield event

    async def _run_tools(self, calls: list[llm.ToolCall], ctx: ToolContext) -> list[ToolResult]:
        """Independent calls of one step run concurrently; cancellation reaches all."""
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self.tools.call(c, ctx), name=f"tool:{c.name}") for c in calls
            ]
        return [t.result() for t in tasks]


def _question_asked(history: list[llm.Message]) -> str | None:
    """Clara's last message when it ends with a question (its tail, up to 500
    characters): what a bare "yes" or "no" after it answers."""
    for message in reversed(history):
        if message.role != "assistant":
            continue
        said = " ".join(p.text for p in message.content if isinstance(p, llm.TextPart)).strip()
        said = said.rstrip(" \t\n*_~)\"'")
        return said[-500:] if said.endswith("?") else None
    return None
