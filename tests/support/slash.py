"""Driving Clara's slash commands and buttons through the fake Discord, as a user would."""

from __future__ import annotations

from typing import Any

from tests.fakes.fake_discord import FakeUser
from tests.fakes.fake_discord.models import FakeInteraction, FakeMessage, MessageFlags
from tests.support.discord_app import World

EPHEMERAL = int(MessageFlags.EPHEMERAL)
LOADING = int(MessageFlags.LOADING)
DEFERRED_UPDATE_MESSAGE = 6


def sub(name: str, **options: Any) -> list[dict]:
    """The options payload of ``/clara <name>`` with ``options`` (ints and strings)."""
    return [
        {
            "type": 1,
            "name": name,
            "options": [
                {"type": 4 if isinstance(v, int) else 3, "name": k, "value": v}
                for k, v in options.items()
            ],
        }
    ]


async def command(w: World, user: FakeUser, name: str, **options: Any) -> FakeMessage:
    """Run ``/clara <name>`` as ``user``; the finished (no longer loading) answer."""
    inter = await w.discord.send_slash_command(w.channel_id, user.id, "clara", sub(name, **options))
    return await _answer(w, inter)


async def _answer(w: World, inter: FakeInteraction) -> FakeMessage:
    def done() -> bool:
        if inter.original_message_id is None:
            return False
        return not w.discord.get_message(inter.original_message_id).flags & LOADING

    await w.discord.wait_until(done, timeout=15, what="the command's answer")
    message = w.discord.get_message(inter.original_message_id)
    assert message.flags & EPHEMERAL
    return message


def buttons(message: FakeMessage) -> dict[str, dict]:
    return {b["label"]: b for row in message.components for b in row["components"]}


async def press(w: World, message: FakeMessage, label: str, user: FakeUser) -> FakeInteraction:
    """``user`` presses a button; returns once Clara answered (and finished editing)."""
    before = len(message.revisions)
    inter = await w.discord.click_component(
        message.id, buttons(message)[label]["custom_id"], user.id
    )
    await w.discord.wait_until(lambda: inter.acknowledged, timeout=15, what=f"an answer to {label}")
    assert inter.callback is not None
    if inter.callback.type == DEFERRED_UPDATE_MESSAGE:
        await w.discord.wait_until(
            lambda: len(message.revisions) > before, timeout=15, what="the edited message"
        )
    return inter
