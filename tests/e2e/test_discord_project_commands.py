"""/clara project: create, add, link, list — roles enforced by the data layer,
seen through the real client against the fake Discord and a real MemoryManager."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.fake_discord import FakeUser
from tests.fakes.fake_discord.models import MessageFlags
from tests.support.cortex_manager import memory_manager
from tests.support.discord_app import World, clara_on_discord

pytestmark = pytest.mark.storage

LOADING = int(MessageFlags.LOADING)


@pytest.fixture
async def cortex(redis, engine, tmp_path):
    async with memory_manager(redis=redis, engine=engine, outbox_dir=tmp_path / "outbox") as m:
        yield m


async def project(w: World, user: FakeUser, sub: str, **options: Any) -> str:
    """Run ``/clara project <sub>`` as ``user``; the text of the finished answer."""
    typed = [
        {"type": 6 if k == "member" else 3, "name": k, "value": str(v)} for k, v in options.items()
    ]
    data = [{"type": 2, "name": "project", "options": [{"type": 1, "name": sub, "options": typed}]}]
    inter = await w.discord.send_slash_command(w.channel_id, user.id, "clara", data)

    def done() -> bool:
        if inter.original_message_id is None:
            return False
        return not w.discord.get_message(inter.original_message_id).flags & LOADING

    await w.discord.wait_until(done, timeout=15, what=f"/clara project {sub}")
    return w.discord.get_message(inter.original_message_id).content


async def test_projects_are_created_shared_and_guarded(cortex):
    async with clara_on_discord(memory=cortex) as w:
        mallory = w.discord.add_user("mallory", global_name="Mallory")
        w.discord.add_member(w.guild_id, mallory.id)
        alice, bob = str(w.alice.id), str(w.bob.id)

        text = await project(w, w.alice, "create", name="Garden", member=w.bob.id)
        assert "Garden" in text and "created" in text
        (info,) = await cortex.projects.projects_of(alice)
        assert info.name == "Garden" and info.owner_id == alice
        assert await cortex.projects.role(info.id, bob) == "member"

        # A member may not link channels; the owner may.
        assert "owner or an admin" in await project(w, w.bob, "link", project="garden")
        assert await cortex.projects.project_for_channel(str(w.channel_id)) is None
        assert "shares **Garden**" in await project(w, w.alice, "link", project="Garden")
        assert await cortex.projects.project_for_channel(str(w.channel_id)) == info.id

        # Someone outside can't even name it.
        assert "no project called" in await project(
            w, mallory, "add", project="Garden", member=mallory.id
        )
        assert await cortex.projects.role(info.id, str(mallory.id)) is None

        assert "admin" in await project(
            w, w.alice, "add", project="Garden", member=mallory.id, role="admin"
        )
        assert await cortex.projects.role(info.id, str(mallory.id)) == "admin"
        assert "Garden" in await project(w, w.bob, "list")

        # A project memory reaches members' context in the linked channel, not outsiders'.
        await cortex.store(
            bob, "The tomatoes go in the north bed", project_id=info.id, emotional_score=0.2
        )
        group = await cortex.get_group_context(
            "where do the tomatoes go?", alice, str(w.channel_id)
        )
        assert "north bed" in group.to_prompt_string()
        stranger = w.discord.add_user("stranger", global_name="Stranger")
        outsider = await cortex.get_group_context(
            "where do the tomatoes go?", str(stranger.id), str(w.channel_id)
        )
        assert "north bed" not in outsider.to_prompt_string()

        assert "no longer linked" in await project(w, w.alice, "unlink")
        assert await cortex.projects.project_for_channel(str(w.channel_id)) is None
