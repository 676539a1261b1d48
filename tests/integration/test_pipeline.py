"""The turn pipeline through the real SDKs: tools, tiers, failures, cancellation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from clara_core.llm.types import Message
from clara_core.pipeline.events import (
    Done,
    Failed,
    TextDelta,
    TierChosen,
    ToolFinished,
)
from tests.fakes.fake_llm import ErrorReply, FakeLLM, Hang, Reply, ToolCall
from tests.support.llm import KEY, build_runner, collect, settings_for, turn
from tools.builtin import clock_tool
from tools.registry import Tool, ToolRegistry

WIRES = ("openai", "anthropic")  # one provider per wire API
OBJ = {"type": "object", "properties": {}}


@pytest.fixture
async def fake():
    async with FakeLLM(api_keys={KEY}) as server:
        yield server


def _weather_tools(log: list[str] | None = None) -> ToolRegistry:
    reg = ToolRegistry()

    async def weather(args, ctx):
        if log is not None:
            log.append(args["city"])
        return f"{args['city']}: 18°C, light rain"

    reg.register(
        Tool(
            "get_weather",
            "Weather for a city",
            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            weather,
        )
    )
    return reg


def _tool_messages(request, wire: str) -> list:
    if wire == "anthropic":
        return [
            b
            for m in request.messages
            if m["role"] == "user"
            for b in m["content"]
            if isinstance(b, dict) and b.get("type") == "tool_result"
        ]
    return [m for m in request.messages if m["role"] == "tool"]


@pytest.mark.parametrize("wire", WIRES)
async def test_tool_round_trip(fake, wire):
    fake.enqueue(
        Reply(
            "Let me check.", tool_calls=[ToolCall("get_weather", {"city": "Lisbon"}, id="call_1")]
        ),
        Reply("It's 18°C with light rain in Lisbon."),
    )
    calls: list[str] = []
    runner, service = build_runner(settings_for(fake, wire), _weather_tools(calls))
    try:
        events = await collect(runner, turn("weather in Lisbon?"))
    finally:
        await service.aclose()
    assert calls == ["Lisbon"]
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "TierChosen" and kinds[-1] == "Done"
    assert kinds.index("ToolStarted") < kinds.index("ToolFinished")
    done = events[-1]
    assert (
        done.text == "Let me check.\n\nIt's 18°C with light rain in Lisbon."
        and done.tool_steps == 1
    )
    streamed = "".join(e.text for e in events if type(e).__name__ == "TextDelta")
    assert streamed == done.text  # what was shown is what was said
    assert len(fake.requests) == 2
    results = _tool_messages(fake.requests[1], wire)
    assert len(results) == 1 and "18°C" in str(results[0])
    assert fake.requests[0].tools and fake.requests[1].tools


@pytest.mark.parametrize("wire", WIRES)
async def test_no_second_call_without_tools(fake, wire):
    fake.enqueue(Reply("Just chatting!"))
    runner, service = build_runner(settings_for(fake, wire), _weather_tools())
    try:
        events = await collect(runner, turn("hi"))
    finally:
        await service.aclose()
    assert isinstance(events[-1], Done) and events[-1].tool_steps == 0
    assert len(fake.requests) == 1


@pytest.mark.parametrize("wire", WIRES)
async def test_malformed_tool_json_becomes_an_error_result(fake, wire):
    fake.enqueue(
        Reply(tool_calls=[ToolCall("get_weather", '{"city": "Lis', id="call_bad")]),
        Reply("Sorry, let me answer without the tool."),
    )
    runner, service = build_runner(settings_for(fake, wire), _weather_tools())
    try:
        events = await collect(runner, turn("weather?"))
    finally:
        await service.aclose()
    finished = [e for e in events if isinstance(e, ToolFinished)]
    assert len(finished) == 1 and not finished[0].ok and "not valid JSON" in finished[0].preview
    assert isinstance(events[-1], Done)
    assert "not valid JSON" in str(_tool_messages(fake.requests[1], wire))


async def test_tools_of_one_step_run_concurrently(fake):
    """Two tools that each wait for the other only finish if they run at once."""
    a_started, b_started = asyncio.Event(), asyncio.Event()
    reg = ToolRegistry()

    async def tool_a(args, ctx):
        a_started.set()
        await asyncio.wait_for(b_started.wait(), 5)
        return "a done"

    async def tool_b(args, ctx):
        b_started.set()
        await asyncio.wait_for(a_started.wait(), 5)
        return "b done"

    reg.register(Tool("tool_a", "a", OBJ, tool_a))
    reg.register(Tool("tool_b", "b", OBJ, tool_b))
    fake.enqueue(
        Reply(tool_calls=[ToolCall("tool_a", {}, id="ca"), ToolCall("tool_b", {}, id="cb")]),
        Reply("both done"),
    )
    runner, service = build_runner(settings_for(fake, "openai"), reg)
    try:
        events = await collect(runner, turn("do both"))
    finally:
        await service.aclose()
    assert [e.ok for e in events if isinstance(e, ToolFinished)] == [True, True]
    assert events[-1].text == "both done"


async def test_high_prefix_reaches_the_model_as_the_high_model(fake):
    fake.enqueue(Reply("deep answer"))
    settings = settings_for(fake, "anthropic", anthropic_model_high="claude-opus-test")
    runner, service = build_runner(settings)
    try:
        events = await collect(runner, turn("!high explain entanglement"))
    finally:
        await service.aclose()
    chosen = events[0]
    assert isinstance(chosen, TierChosen) and chosen.tier == "high" and chosen.explicit
    assert fake.requests[0].model == "claude-opus-test"
    last_user = fake.requests[0].messages[-1]["content"]
    assert "explain entanglement" in str(last_user) and "!high" not in str(last_user)


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("prefix", ["!low", "!haiku", "!fast"])
async def test_low_tier_answers_with_the_low_model_although_tools_exist(fake, wire, prefix):
    """A tool is always registered, so every request offers tools: the low tier
    must still answer with the low model (it used to be bumped to the base one)."""
    fake.enqueue(Reply("quick"))
    low = "claude-haiku-test" if wire == "anthropic" else "cheap-model"
    tier_field = "anthropic_model_low" if wire == "anthropic" else "custom_openai_model_low"
    runner, service = build_runner(settings_for(fake, wire, **{tier_field: low}), _clock_tools())
    try:
        events = await collect(runner, turn(f"{prefix} hi"))
    finally:
        await service.aclose()
    assert [r.model for r in fake.requests] == [low]
    assert fake.requests[0].tools  # offered, so it can ask for a tool step
    chosen, done = events[0], events[-1]
    assert isinstance(chosen, TierChosen) and chosen.tier == "low" and chosen.model == low
    assert isinstance(done, Done) and done.model == low and done.tool_model is None
    assert done.text == "quick"


def _clock_tools() -> ToolRegistry:
    reg = ToolRegistry()
    fixed = datetime(2026, 12, 5, 10, 30, tzinfo=UTC)
    reg.register(clock_tool("Europe/Lisbon", now=lambda: fixed))
    return reg


@pytest.mark.parametrize("wire", WIRES)
async def test_low_tier_hands_only_its_tool_steps_to_the_base_model(fake, wire):
    base = "claude-base-test" if wire == "anthropic" else "gpt-4o"
    low = "claude-haiku-test" if wire == "anthropic" else "cheap-model"
    model_fields = (
        {"anthropic_model": base, "anthropic_model_low": low}
        if wire == "anthropic"
        else {"custom_openai_model": base, "custom_openai_model_low": low}
    )
    fake.enqueue(
        # the low model wants the clock: that step is re-run on the base model
        Reply("Let me check.", tool_calls=[ToolCall("get_current_time", {}, id="call_low")]),
        Reply("Checking the clock.", tool_calls=[ToolCall("get_current_time", {}, id="call_b")]),
        # with the result in hand, the low model answers
        Reply("It's 10:30 in Lisbon."),
    )
    runner, service = build_runner(settings_for(fake, wire, **model_fields), _clock_tools())
    try:
        events = await collect(runner, turn("!low what time is it?"))
    finally:
        await service.aclose()
    assert [r.model for r in fake.requests] == [low, base, low]
    assert all(r.tools for r in fake.requests)
    finished = [e for e in events if isinstance(e, ToolFinished)]
    assert len(finished) == 1 and finished[0].ok  # the base model's call, run once
    results = _tool_messages(fake.requests[2], wire)
    assert len(results) == 1 and "10:30:00" in str(results[0])
    # the tool result answers the base model's call (its id), not the discarded one
    assert "call_b" in str(fake.requests[2].messages) and "call_low" not in str(
        fake.requests[2].messages
    )
    done = events[-1]
    assert isinstance(done, Done) and done.tool_steps == 1
    assert done.model == low and done.tool_model == base
    # what the low model said is on screen; the base model's lead-in is not repeated
    assert done.text == "Let me check.\n\nIt's 10:30 in Lisbon."
    streamed = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert streamed == done.text
    chosen = events[0]
    assert isinstance(chosen, TierChosen) and chosen.model == low and chosen.tool_model == base


async def test_low_tier_without_tools_registered_needs_no_hand_off(fake):
    fake.enqueue(Reply("quick too"))
    settings = settings_for(fake, "openai", custom_openai_model_low="cheap-model")
    runner, service = build_runner(settings)
    try:
        without = await collect(runner, turn("!fast hi"))
    finally:
        await service.aclose()
    assert fake.requests[0].model == "cheap-model" and not fake.requests[0].tools
    assert without[-1].model == "cheap-model" and without[-1].text == "quick too"


async def test_low_tier_with_a_separate_tool_endpoint_still_answers_with_the_low_model(fake):
    """TOOL_BASE_URL / TOOL_API_KEY: requests that offer tools go to the tool
    endpoint, the chat endpoint never sees one.  "!low" still answers with the
    low model (there), and only the step that calls a tool runs on the base model:
    the spec's tool-tier minimum, not a low tier that silently became the base."""
    async with FakeLLM(api_keys={"tool-key"}) as tool_fake:
        tool_fake.enqueue(
            Reply("quick and cheap"),  # !low hi: no tool wanted
            Reply("Let me check.", tool_calls=[ToolCall("get_current_time", {}, id="c_low")]),
            Reply("", tool_calls=[ToolCall("get_current_time", {}, id="c_base")]),
            Reply("It's 10:30 in Lisbon."),
        )
        settings = settings_for(
            fake,
            "openai",
            custom_openai_model_low="cheap-model",
            tool_api_key="tool-key",
            tool_base_url=tool_fake.openai_base_url,
        )
        runner, service = build_runner(settings, _clock_tools())
        try:
            plain = await collect(runner, turn("!low hi"))
            timed = await collect(runner, turn("!low what time is it?"))
        finally:
            await service.aclose()
        assert fake.requests == []  # tools offered: never to the chat endpoint
        assert [r.model for r in tool_fake.requests] == [
            "cheap-model",
            "cheap-model",
            "gpt-4o",
            "cheap-model",
        ]
        assert all(r.tools for r in tool_fake.requests)
        assert plain[0].model == "cheap-model" and plain[-1].model == "cheap-model"
        assert plain[-1].text == "quick and cheap" and plain[-1].tool_model is None
        assert timed[-1].model == "cheap-model" and timed[-1].tool_model == "gpt-4o"
        assert timed[-1].text == "Let me check.\n\nIt's 10:30 in Lisbon."


async def test_a_low_model_that_takes_no_tools_leaves_the_turn_to_the_tool_model(fake):
    """Capabilities are data: a low model known to take no tools is never offered
    them; the whole turn runs on the base model so the tools keep working."""
    fake.enqueue(Reply("from the base model"))
    settings = settings_for(fake, "openai", custom_openai_model_low="llava-13b")
    runner, service = build_runner(settings, _clock_tools())
    try:
        events = await collect(runner, turn("!low hi"))
    finally:
        await service.aclose()
    assert [r.model for r in fake.requests] == ["gpt-4o"]
    assert events[-1].model == "gpt-4o"


@pytest.mark.parametrize(
    ("answer", "expected"), [("HIGH", "big-model"), ("hmm, hard to say", "mid-model")]
)
async def test_auto_tier(fake, answer, expected):
    fake.enqueue(Reply(answer), Reply("the answer"))
    settings = settings_for(
        fake,
        "openai",
        auto_tier_selection=True,
        custom_openai_model_low="small-model",
        custom_openai_model_mid="mid-model",
        custom_openai_model_high="big-model",
    )
    runner, service = build_runner(settings)
    history = [Message.text("user", "let's design a compiler")]
    try:
        events = await collect(runner, turn("yes, continue", history=history))
    finally:
        await service.aclose()
    classify, chat = fake.requests
    assert classify.model == "small-model" and not classify.stream
    assert "let's design a compiler" in str(classify.messages)  # recent context considered
    assert chat.model == expected
    assert events[0].auto


async def test_fallback_provider_takes_over(fake):
    fake.enqueue(ErrorReply(503), ErrorReply(503), ErrorReply(503), Reply("from the fallback"))
    settings = settings_for(
        fake,
        "openai",
        llm_fallback_providers="anthropic",
        anthropic_api_key=KEY,
        anthropic_base_url=fake.anthropic_base_url,
    )
    runner, service = build_runner(settings)
    try:
        events = await collect(runner, turn("hi"))
    finally:
        await service.aclose()
    assert events[-1].text == "from the fallback"
    assert [r.wire for r in fake.requests] == ["openai"] * 3 + ["anthropic"]


async def test_tool_endpoint_override(fake):
    async with FakeLLM(api_keys={"tool-key"}) as tool_fake:
        tool_fake.enqueue(Reply("via the tool endpoint"))
        fake.enqueue(Reply("chat only"))
        settings = settings_for(
            fake, "openai", tool_api_key="tool-key", tool_base_url=tool_fake.openai_base_url
        )
        runner, service = build_runner(settings, _weather_tools())
        chat_runner, chat_service = build_runner(settings)
        try:
            assert (await collect(runner, turn("hi")))[-1].text == "via the tool endpoint"
            assert (await collect(chat_runner, turn("hi")))[-1].text == "chat only"
        finally:
            await service.aclose()
            await chat_service.aclose()
        assert tool_fake.requests[0].tools and not fake.requests[0].tools


async def test_max_tool_iterations_then_a_final_answer(fake):
    loop_call = Reply(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})])
    fake.enqueue(loop_call, loop_call, loop_call, Reply("Here is what I found so far."))
    settings = settings_for(fake, "openai", llm_max_tool_iterations=3)
    runner, service = build_runner(settings, _weather_tools())
    try:
        events = await collect(runner, turn("weather forever"))
    finally:
        await service.aclose()
    assert events[-1].text == "Here is what I found so far." and events[-1].tool_steps == 3
    final = fake.requests[-1]
    assert not final.tools and "maximum number of tool steps" in str(final.messages[-1])


async def test_provider_failure_is_a_plain_message(fake):
    fake.enqueue(ErrorReply(401))
    runner, service = build_runner(settings_for(fake, "anthropic"))
    try:
        events = await collect(runner, turn("hi"))
    finally:
        await service.aclose()
    assert isinstance(events[-1], Failed)
    assert "credentials" in events[-1].message and "Traceback" not in events[-1].message


async def test_cancelling_a_turn_stops_stream_and_tools(fake):
    tool_cancelled = asyncio.Event()
    tool_running = asyncio.Event()
    reg = ToolRegistry()

    async def long_job(args, ctx):
        tool_running.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            tool_cancelled.set()
            raise
        return "never"

    reg.register(Tool("long_job", "slow", OBJ, long_job))
    fake.enqueue(Reply(tool_calls=[ToolCall("long_job", {})]), Hang(["still "]))
    runner, service = build_runner(settings_for(fake, "openai"), reg)
    task = asyncio.create_task(collect(runner, turn("run it")))
    await asyncio.wait_for(tool_running.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(tool_cancelled.wait(), 2)

    # and a hanging model stream is closed too
    fake.enqueue(Hang(["thinking "]))
    runner2, service2 = build_runner(settings_for(fake, "openai"))
    seen = asyncio.Event()

    async def consume():
        async for event in runner2.run(turn("hi")):
            if isinstance(event, TextDelta):
                seen.set()

    task2 = asyncio.create_task(consume())
    await asyncio.wait_for(seen.wait(), 5)
    task2.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task2
    await fake.wait_for_disconnect(timeout=2)
    await service.aclose()
    await service2.aclose()


async def test_low_tier_hand_off_where_the_base_model_needs_no_tool_still_shows_its_answer(fake):
    fake.enqueue(
        Reply("Let me check.", tool_calls=[ToolCall("get_current_time", {})]),
        Reply("No need to check: it's the same as a minute ago."),  # base: no tool call
    )
    settings = settings_for(fake, "openai", custom_openai_model_low="cheap-model")
    runner, service = build_runner(settings, _clock_tools())
    try:
        events = await collect(runner, turn("!low time again?"))
    finally:
        await service.aclose()
    assert [r.model for r in fake.requests] == ["cheap-model", "gpt-4o"]
    done = events[-1]
    assert isinstance(done, Done) and done.tool_steps == 0 and done.model == "gpt-4o"
    assert done.text == "Let me check.\n\nNo need to check: it's the same as a minute ago."
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == done.text
