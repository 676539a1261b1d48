"""/clara mood and the mood in the prompt: the real client against the fake Discord
and fake LLM, with the companion store on real PostgreSQL."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import pytest
from PIL import Image

from clara_core.companion.describe import GUARD, TEMPERATURE_MAX, TEMPERATURE_MIN
from clara_core.companion.hormones import HORMONES, HormoneModel
from clara_core.discord_adapter.mood_commands import MOOD_OFF, MOOD_TRY_AGAIN, MoodCommands
from clara_core.pipeline.mood import MoodService, install_mood
from storage.companion import CompanionStore
from storage.db import create_engine
from tests.fakes.fake_llm import Reply
from tests.support.discord_app import World, clara_on_discord
from tests.support.slash import EPHEMERAL, LOADING, command

pytestmark = pytest.mark.storage

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DEFERRED_CHANNEL_MESSAGE = 5
CHANNEL_MESSAGE = 4


def wire_mood(w: World, engine) -> MoodService:
    """What the composition root does (app.py calls install_mood the same way)."""
    conversation = w.client.conversation
    assert conversation is not None
    runner = conversation.runner
    assert w.client.settings is not None and w.client.settings.clara_timezone == "UTC"
    service = install_mood(runner, runner.prompt, CompanionStore(engine), w.client.settings)
    assert service is not None
    return service


def shown_levels(content: str) -> dict[str, float]:
    return {m[1]: float(m[2]) for m in re.finditer(r"• (\w+): ([01]\.\d\d)", content)}


def mood_handler(w: World) -> MoodCommands:
    assert w.client.tree is not None
    group = w.client.tree.get_command("clara")
    return group.get_command("mood").extras["handler"]  # type: ignore[union-attr]


async def test_a_kind_message_lifts_her_mood_in_the_prompt_and_in_clara_mood(engine):
    async with clara_on_discord(engine=engine) as w:
        service = wire_mood(w, engine)
        w.llm.enqueue(Reply("Aw, thank you!"))
        await w.mention(w.alice, "Thank you Clara, you're amazing, that really helped!")
        await w.wait_reply_text("Aw, thank you!")
        await w.client.conversation.runner.drain()  # the after-turn update
        await service.flush()  # ...and its write to the database

        request = w.llm.requests[0]
        system = str(request.messages)
        assert "## Mood" in system and GUARD in system and "energised" in system
        # The mood's temperature wish reaches a model that takes one, within bounds.
        assert TEMPERATURE_MIN <= request.body["temperature"] <= TEMPERATURE_MAX

        answer = await command(w, w.alice, "mood")
        assert answer.flags & EPHEMERAL
        levels = shown_levels(answer.content)
        assert list(levels) == list(HORMONES)  # all eight, by their English names
        now = await service.current(f"channel:{w.channel_id}")
        baseline = HormoneModel("UTC").baseline(now.at)
        # What the command shows is what the pipeline holds (to the two decimals shown).
        for name, value in now.as_dict().items():
            assert abs(levels[name] - value) <= 0.006, name
        assert levels["dopamine"] > baseline[0] + 0.1

        [chart] = answer.attachments
        assert chart.filename == "mood.png" and chart.data.startswith(PNG_MAGIC)
        image = Image.open(io.BytesIO(chart.data))
        image.verify()  # a real, complete PNG, not just the magic bytes
        assert image.format == "PNG" and image.size == (800, 400)

        # Another conversation (a DM) is untouched: resting levels.
        dm = w.discord.add_dm_channel(w.bob.id)
        inter = await w.discord.send_slash_command(dm.id, w.bob.id, "clara", _mood())
        await w.discord.wait_until(lambda: inter.original_message_id is not None, timeout=15)
        resting = shown_levels(w.discord.get_message(inter.original_message_id).content)
        now_baseline = HormoneModel("UTC").baseline(datetime.now(UTC))
        assert resting == {n: round(v, 2) for n, v in zip(HORMONES, now_baseline, strict=True)}


async def test_mood_enabled_false_installs_nothing(engine):
    async with clara_on_discord(engine=engine, mood_enabled=False) as w:
        conversation = w.client.conversation
        assert conversation is not None
        runner = conversation.runner
        assert w.client.settings is not None
        assert (
            install_mood(runner, runner.prompt, CompanionStore(engine), w.client.settings) is None
        )
        w.llm.enqueue(Reply("Hi."))
        await w.mention(w.alice, "thank you Clara!")
        await w.wait_reply_text("Hi.")
        [request] = w.llm.requests
        assert "## Mood" not in str(request.messages) and "temperature" not in request.body


async def test_a_model_that_refuses_temperature_gets_none(engine):
    """Capabilities are data: a reasoning model only allows the default temperature."""
    async with clara_on_discord(engine=engine, custom_openai_model="o3-mini") as w:
        wire_mood(w, engine)
        w.llm.enqueue(Reply("Hi."))
        await w.mention(w.alice, "hello")
        await w.wait_reply_text("Hi.")
        [request] = w.llm.requests
        assert request.body["model"] == "o3-mini"
        assert "## Mood" in str(request.messages) and "temperature" not in request.body
        assert request.outcome == "completed", request.error


def _mood() -> list[dict]:
    return [{"type": 1, "name": "mood", "options": []}]


async def test_a_slow_answer_is_deferred_then_completed(engine):
    async with clara_on_discord(engine=engine) as w:
        wire_mood(w, engine)
        mood_handler(w).defer_after = 0  # "slow": anything longer than no time at all
        inter = await w.discord.send_slash_command(w.channel_id, w.alice.id, "clara", _mood())

        def finished() -> bool:
            if inter.original_message_id is None:
                return False
            return not w.discord.get_message(inter.original_message_id).flags & LOADING

        await w.discord.wait_until(finished, timeout=15, what="the deferred answer")
        assert inter.callback is not None
        assert inter.callback.type == DEFERRED_CHANNEL_MESSAGE
        message = w.discord.get_message(inter.original_message_id)
        assert "• patience:" in message.content
        assert message.attachments[0].data.startswith(PNG_MAGIC)


async def test_a_quick_answer_is_not_deferred(engine):
    async with clara_on_discord(engine=engine) as w:
        mood_handler(w).defer_after = 30
        inter = await w.discord.send_slash_command(w.channel_id, w.alice.id, "clara", _mood())
        await w.discord.wait_until(lambda: inter.acknowledged, timeout=15)
        assert inter.callback is not None and inter.callback.type == CHANNEL_MESSAGE


async def test_without_a_database_it_says_so():
    async with clara_on_discord() as w:
        answer = await command(w, w.alice, "mood")
        assert answer.content == MOOD_OFF and answer.attachments == []


async def test_an_unreachable_database_gets_a_plain_try_again():
    dead = create_engine("postgresql://clara:x@127.0.0.1:9/clara", pool_size=1)
    try:
        async with clara_on_discord(engine=dead) as w:
            answer = await command(w, w.alice, "mood")
            assert answer.content == MOOD_TRY_AGAIN and "Traceback" not in answer.content
    finally:
        await dead.dispose()
