"""/clara memory and /clara forget: the real client against the fake Discord, with a
real MemoryManager on real Redis + PostgreSQL and a real file store."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from clara_core.cortex.manager import MemoryManager, NewMemory
from clara_core.cortex.types import MemoryType
from storage import migrations
from storage.db import create_engine
from storage.embedded import EmbeddedPostgres
from storage.local_files import LocalFileStore
from storage.models import ConversationSession, MemoryRecord, Message, UserPreferences
from storage.preferences import Preferences
from storage.sessions import SessionStore
from tests.fakes.fake_discord import FakeUser
from tests.fakes.fake_discord.models import FakeMessage
from tests.support.cortex_manager import memory_manager
from tests.support.discord_app import clara_on_discord
from tests.support.slash import EPHEMERAL, buttons, command, press

pytestmark = pytest.mark.storage


@pytest.fixture
async def cortex(redis, engine, tmp_path):
    async with memory_manager(redis=redis, engine=engine, outbox_dir=tmp_path / "outbox") as m:
        yield m


# -- helpers ------------------------------------------------------------------


async def seed(cortex: MemoryManager, user: str, contents: list[str]) -> list[str]:
    """Store ``contents``, the first one newest; returns their ids in that order."""
    now = cortex.clock()
    results = await cortex.store_many(
        user,
        [
            NewMemory(
                c, MemoryType.SEMANTIC, emotional_score=0.3, created_at=now - timedelta(minutes=i)
            )
            for i, c in enumerate(contents)
        ],
    )
    return [r.memory_id for r in results]  # type: ignore[misc]


async def count(engine: AsyncEngine, model: Any, user: str) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    select(func.count()).select_from(model).where(model.user_id == user)
                )
            ).scalar_one()
        )


def uid(user: FakeUser) -> str:
    return str(user.id)  # how the conversation layer keys a Discord user


# -- /clara memory --------------------------------------------------------------


async def test_memory_shows_the_callers_identity_and_memories_and_nobody_elses(cortex):
    async with clara_on_discord(memory=cortex) as w:
        alice, bob = uid(w.alice), uid(w.bob)
        await cortex.update_identity(alice, "name", "Alice")
        await cortex.update_identity(alice, "city", "Lisbon")
        alice_ids = await seed(cortex, alice, ["Alice adopted a grey cat called Miso"])
        await cortex.update_identity(bob, "name", "Bob")
        bob_ids = await seed(cortex, bob, ["Bob is planning a surprise party for Carol"])

        mine = (await command(w, w.alice, "memory")).content
        assert "• name: Alice" in mine and "• city: Lisbon" in mine
        assert f"`{alice_ids[0][:8]}`" in mine and "grey cat called Miso" in mine
        assert "2026-11-22" in mine and "page 1 of 1" in mine
        assert "Bob" not in mine and "surprise party" not in mine and bob_ids[0][:8] not in mine

        theirs = await command(w, w.bob, "memory")
        assert "• name: Bob" in theirs.content and "surprise party" in theirs.content
        for leak in ("Alice", "Lisbon", "Miso", alice_ids[0][:8]):
            assert leak not in theirs.content
        assert theirs.components == []  # one page: no buttons


async def test_memory_pages_through_25_memories_with_buttons(cortex):
    async with clara_on_discord(memory=cortex) as w:
        alice = uid(w.alice)
        # "memory #25" is the newest.
        await seed(cortex, alice, [f"memory #{n:02d} about something" for n in range(25, 0, -1)])

        def shown(message: FakeMessage) -> list[int]:
            return [int(x.split()[0]) for x in message.content.split("memory #")[1:]]

        page = await command(w, w.alice, "memory")
        assert "page 1 of 3" in page.content and "(25, newest first)" in page.content
        assert shown(page) == list(range(25, 15, -1))
        assert buttons(page)["Previous"]["disabled"] and not buttons(page)["Next"]["disabled"]

        inter = await press(w, page, "Next", w.alice)
        assert inter.callback is not None and inter.callback.type == 7  # UPDATE_MESSAGE
        assert "page 2 of 3" in page.content and shown(page) == list(range(15, 5, -1))
        assert not buttons(page)["Previous"]["disabled"]

        await press(w, page, "Next", w.alice)
        assert "page 3 of 3" in page.content and shown(page) == list(range(5, 0, -1))
        assert buttons(page)["Next"]["disabled"]

        await press(w, page, "Previous", w.alice)
        assert "page 2 of 3" in page.content

        # Bob cannot page through Alice's memories with her buttons.
        refused = await press(w, page, "Next", w.bob)
        assert refused.callback is not None and "someone else" in refused.callback.data["content"]
        assert "page 2 of 3" in page.content

        direct = await command(w, w.alice, "memory", page=3)
        assert "page 3 of 3" in direct.content
        past_the_end = await command(w, w.alice, "memory", page=99)
        assert "page 3 of 3" in past_the_end.content


async def test_long_memories_are_shortened_to_fit_one_message(cortex):
    async with clara_on_discord(memory=cortex) as w:
        alice = uid(w.alice)
        await cortex.update_identity(alice, "bio", "x" * 3000)
        await seed(cortex, alice, [f"long memory {i} " + "blah " * 400 for i in range(12)])
        page = await command(w, w.alice, "memory")
        assert len(page.content) <= 2000
        assert page.content.count("…") >= 10 and "page 1 of 2" in page.content
        # The identity fact is a memory too (the newest), then the nine newest others.
        assert "· bio: xxx" in page.content
        assert all(f"long memory {i} " in page.content for i in range(9))


async def test_memory_off_is_said_plainly():
    async with clara_on_discord() as w:
        page = await command(w, w.alice, "memory")
        assert "Memory is off" in page.content
        one = await command(w, w.alice, "forget", memory_id="0123abcd")
        assert "Memory is off" in one.content


# -- /clara forget <id> -------------------------------------------------------------


async def test_forget_one_memory_by_short_id_after_confirming(cortex):
    async with clara_on_discord(memory=cortex) as w:
        alice = uid(w.alice)
        gone_id, kept_id = await seed(cortex, alice, ["I hate olives", "I love figs"])
        assert gone_id in {m.id for m in await cortex.hot.get_working(alice)}

        ask = await command(w, w.alice, "forget", memory_id=gone_id[:8])
        assert "I hate olives" in ask.content and set(buttons(ask)) == {"Confirm", "Cancel"}
        confirm_id = buttons(ask)["Confirm"]["custom_id"]
        await press(w, ask, "Confirm", w.alice)
        assert f"Forgotten: memory `{gone_id[:8]}`" in ask.content and ask.components == []

        assert await cortex.warm.get(alice, gone_id) is None
        assert gone_id not in {m.id for m in await cortex.hot.get_working(alice)}
        assert await cortex.warm.get(alice, kept_id) is not None
        assert kept_id in {m.id for m in await cortex.hot.get_working(alice)}

        # The used confirmation cannot be replayed.
        again = await w.discord.click_component(ask.id, confirm_id, w.alice.id)
        await w.discord.wait_until(lambda: again.acknowledged, timeout=15, what="the replay")
        assert "no longer valid" in again.callback.data["content"]  # type: ignore[union-attr]
        assert await cortex.warm.get(alice, kept_id) is not None


async def test_cancel_deletes_nothing(cortex):
    async with clara_on_discord(memory=cortex) as w:
        alice = uid(w.alice)
        (memory_id,) = await seed(cortex, alice, ["I hate olives"])
        ask = await command(w, w.alice, "forget", memory_id=memory_id)  # the full id works too
        await press(w, ask, "Cancel", w.alice)
        assert "nothing was deleted" in ask.content and ask.components == []
        assert await cortex.warm.get(alice, memory_id) is not None
        assert memory_id in {m.id for m in await cortex.hot.get_working(alice)}


async def test_only_the_caller_can_confirm(cortex):
    async with clara_on_discord(memory=cortex) as w:
        alice = uid(w.alice)
        (memory_id,) = await seed(cortex, alice, ["I hate olives"])
        ask = await command(w, w.alice, "forget", memory_id=memory_id[:8])

        refused = await press(w, ask, "Confirm", w.bob)
        assert refused.callback is not None
        assert "Only the person who ran /clara forget" in refused.callback.data["content"]
        assert refused.callback.data["flags"] & EPHEMERAL
        assert set(buttons(ask)) == {"Confirm", "Cancel"}  # untouched, still Alice's to answer
        assert await cortex.warm.get(alice, memory_id) is not None

        await press(w, ask, "Confirm", w.alice)  # bob's press did not use it up
        assert await cortex.warm.get(alice, memory_id) is None


async def test_another_users_memory_id_is_not_found(cortex):
    async with clara_on_discord(memory=cortex) as w:
        alice = uid(w.alice)
        (memory_id,) = await seed(cortex, alice, ["Alice's secret"])
        for ref in (memory_id[:8], memory_id, "not-an-id", "0000000000"):
            answer = await command(w, w.bob, "forget", memory_id=ref)
            assert "couldn't find that memory among yours" in answer.content
            assert answer.components == [] and "secret" not in answer.content
        assert await cortex.warm.get(alice, memory_id) is not None


async def test_an_expired_confirmation_does_nothing(cortex):
    async with clara_on_discord(memory=cortex, forget_confirm_timeout=0.3) as w:
        alice = uid(w.alice)
        (memory_id,) = await seed(cortex, alice, ["I hate olives"])
        one = await command(w, w.alice, "forget", memory_id=memory_id[:8])
        everything = await command(w, w.alice, "forget")
        await asyncio.sleep(0.4)
        for ask in (one, everything):
            await press(w, ask, "Confirm", w.alice)
            assert "expired, so nothing was deleted" in ask.content and ask.components == []
        assert await cortex.warm.get(alice, memory_id) is not None
        assert await cortex.warm.count(alice) == 1


# -- /clara forget (everything) -------------------------------------------------------


async def _seed_everything(
    cortex: MemoryManager, engine: AsyncEngine, files: LocalFileStore, user: str, name: str
) -> None:
    await cortex.update_identity(user, "name", name)
    await seed(cortex, user, [f"{name} likes tea", f"{name} works nights"])
    sessions = SessionStore(engine)
    for context in ("discord:1", "discord:dm:2"):
        session = await sessions.get_or_start(user, context, project="Default", idle_minutes=30)
        await sessions.add_messages(
            session.id,
            [("user", user, f"hi from {name}", None), ("assistant", "clara", "hi", None)],
        )
    await Preferences(engine).set_default_tier(user, "high")
    await files.save(user, "notes.txt", f"{name}'s notes".encode())
    await files.save(user, "todo.md", b"- things")


async def test_forget_everything_clears_every_store_of_the_caller_only(
    cortex, engine, tmp_path: Path
):
    files_dir = tmp_path / "files"
    async with clara_on_discord(memory=cortex, engine=engine, clara_files_dir=files_dir) as w:
        alice, bob = uid(w.alice), uid(w.bob)
        files = LocalFileStore(files_dir, max_size=1 << 20)
        await _seed_everything(cortex, engine, files, alice, "Alice")
        await _seed_everything(cortex, engine, files, bob, "Bob")
        bob_before = {
            m.__name__: await count(engine, m, bob)
            for m in (MemoryRecord, ConversationSession, Message, UserPreferences)
        }

        ask = await command(w, w.alice, "forget")
        assert "deletes **everything**" in ask.content
        await press(w, ask, "Confirm", w.alice)
        text = ask.content
        assert "I've forgotten you" in text, text
        assert "Memories and identity: 3 deleted" in text
        assert "2 conversations, 2 messages" in text  # alice's own "hi"s; clara's go by cascade
        assert "Preferences: deleted" in text and "Files: 2 deleted" in text
        assert ask.components == []

        for model in (MemoryRecord, ConversationSession, Message, UserPreferences):
            assert await count(engine, model, alice) == 0, model.__name__
        assert await cortex.get_identity(alice) == {}
        assert await cortex.hot.get_working(alice) == []
        assert await files.list(alice) == [] and not files.user_dir(alice).exists()
        async with engine.connect() as conn:  # clara's replies in alice's sessions went too
            assert (await conn.execute(select(func.count()).select_from(Message))).scalar_one() == 4

        bob_after = {
            m.__name__: await count(engine, m, bob)
            for m in (MemoryRecord, ConversationSession, Message, UserPreferences)
        }
        assert bob_after == bob_before and bob_before["MemoryRecord"] == 3
        assert await cortex.get_identity(bob) == {"name": "Bob"}
        assert len(await cortex.hot.get_working(bob)) == 2
        assert [f.name for f in await files.list(bob)] == ["notes.txt", "todo.md"]
        assert await Preferences(engine).default_tier(bob) == "high"


async def test_bob_cannot_confirm_alices_forget_everything(cortex, engine):
    async with clara_on_discord(memory=cortex, engine=engine) as w:
        alice = uid(w.alice)
        await seed(cortex, alice, ["Alice likes tea"])
        ask = await command(w, w.alice, "forget")
        refused = await press(w, ask, "Confirm", w.bob)
        assert "Only the person" in refused.callback.data["content"]  # type: ignore[union-attr]
        assert await count(engine, MemoryRecord, alice) == 1
        await press(w, ask, "Cancel", w.alice)
        assert await count(engine, MemoryRecord, alice) == 1


# -- PostgreSQL down ------------------------------------------------------------------


@pytest.fixture
async def own_postgres(tmp_path: Path):
    """A PostgreSQL of this test's own, so stopping it touches nothing else."""
    server = EmbeddedPostgres(tmp_path / "pgdata")
    engine = create_engine(await server.start(), pool_size=2)
    await migrations.upgrade(engine)
    try:
        yield server, engine
    finally:
        await engine.dispose()
        await server.stop()


async def test_forget_everything_while_postgres_is_down_is_queued(own_postgres, redis, tmp_path):
    server, engine = own_postgres
    async with memory_manager(redis=redis, engine=engine, outbox_dir=tmp_path / "outbox") as cortex:
        async with clara_on_discord(memory=cortex, engine=engine) as w:
            alice = uid(w.alice)
            tea, _ = await seed(cortex, alice, ["Alice likes tea", "Alice works nights"])
            await Preferences(engine).set_default_tier(alice, "high")
            await server.stop()

            # A short id needs PostgreSQL to be resolved; a full id can be queued.
            short = await command(w, w.alice, "forget", memory_id=tea[:8])
            assert "can't look that memory up" in short.content and short.components == []
            one = await command(w, w.alice, "forget", memory_id=tea.upper())
            await press(w, one, "Confirm", w.alice)
            assert "queued: it will complete as soon as storage is back" in one.content
            assert tea not in {m.id for m in await cortex.hot.get_working(alice)}

            ask = await command(w, w.alice, "forget")
            await press(w, ask, "Confirm", w.alice)
            text = ask.content
            assert "Partly done" in text, text
            assert "queued and will complete as soon as storage is back" in text
            assert "the database is unreachable right now, so nothing there was deleted" in text
            assert await cortex.hot.get_working(alice) == []  # Redis was cleared at once

        await server.start()
        assert await cortex.flush_outbox() >= 1  # the queued forget runs when PG is back
        assert await count(engine, MemoryRecord, alice) == 0
        # The core tables have no queue: the answer told alice to run it again.
        assert await Preferences(engine).default_tier(alice) == "high"
