"""Nothing is lost: real PostgreSQL and Redis servers are stopped and started mid-run.

Each test runs its own embedded server(s) in a temporary directory, so stopping
them touches nothing else, then counts every memory afterwards.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import stat
import time
from pathlib import Path

import pytest

from clara_core.cortex.types import MemoryType
from storage import migrations
from storage.db import create_engine
from storage.embedded import EmbeddedPostgres, EmbeddedRedis
from storage.redis import create_redis
from tests.support.cortex_manager import memory_manager


async def _until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


@pytest.fixture
async def own_postgres(tmp_path: Path):
    server = EmbeddedPostgres(tmp_path / "pgdata")
    url = await server.start()
    engine = create_engine(url, pool_size=2)
    await migrations.upgrade(engine)
    try:
        yield server, engine
    finally:
        await engine.dispose()
        await server.stop()


@pytest.fixture
async def own_redis(tmp_path: Path):
    server = EmbeddedRedis(tmp_path / "redisdata")
    url = await server.start()
    client = create_redis(url)
    try:
        yield server, client
    finally:
        await client.aclose()
        await server.stop()


async def test_postgres_outage_queues_writes_durably_and_flushes_them_in_order(
    own_postgres, redis, tmp_path
):
    server, engine = own_postgres
    outbox = tmp_path / "outbox"
    async with memory_manager(redis=redis, engine=engine, outbox_dir=outbox, watch=True) as cortex:
        before = [
            (
                await cortex.store("alice", f"fact before the outage #{i}", emotional_score=0.2)
            ).memory_id
            for i in range(10)
        ]
        await cortex.update_identity("alice", "city", "Porto")
        await server.stop()

        during = []
        for i in range(20):
            result = await cortex.store(
                "alice", f"fact during the outage #{i}", emotional_score=0.4
            )
            assert result.success and result.queued
            during.append(result.memory_id)
        await cortex.update_identity("alice", "city", "Lisbon")  # supersedes Porto, queued
        gone = await cortex.forget("alice", before[0])  # a delete queued behind the writes
        assert gone.queued
        assert cortex.outbox.pending == 22

        # Reads degrade to the hot tier instead of failing.
        ctx = await cortex.get_context("alice", query="what happened during the outage?")
        assert ctx.identity["city"] == "Lisbon"
        assert len(ctx.working) == 10  # the hot tier's recent memories, capped at 10
        assert all(m.content.startswith("fact during the outage") for m in ctx.working)
        assert ctx.retrieved == [] and "long-term memory is unavailable right now" in ctx.notes

    # Clara stops while PostgreSQL is still down; the outbox is on disk.
    assert len(list(outbox.glob("*.json"))) == 22
    await server.start()
    async with memory_manager(redis=redis, engine=engine, outbox_dir=outbox) as cortex:
        assert cortex.outbox.pending == 0  # flushed by initialize()
        ids = {m.id for m in await cortex.warm.get_memories("alice", limit=100)}
        assert ids == (
            set(before[1:])
            | set(during)
            | set(await cortex.warm.identity_memory_ids("alice", "city"))
        )
        assert await cortex.warm.identity_facts("alice") == {"city": "Lisbon"}
        assert await cortex.warm.count("alice") == 9 + 20 + 2  # Porto kept as superseded


async def test_postgres_returning_while_running_flushes_without_a_restart(
    own_postgres, redis, tmp_path
):
    server, engine = own_postgres
    async with memory_manager(
        redis=redis, engine=engine, outbox_dir=tmp_path / "outbox", watch=True
    ) as cortex:
        await server.stop()
        for i in range(15):
            assert (await cortex.store("bob", f"queued note {i}", emotional_score=0.1)).queued
        await server.start()

        async def flushed() -> bool:
            return cortex.outbox.pending == 0 and cortex.pg_health.up

        await _until(flushed)
        assert await cortex.warm.count("bob") == 15
        # writes go straight to PostgreSQL again
        assert not (await cortex.store("bob", "after the outage", emotional_score=0.1)).queued
        found = await cortex.search("bob", "queued note 7")
        assert "queued note 7" in {m.content for m in found.memories}


async def test_redis_outage_answers_from_postgres_and_refills_redis(own_redis, engine, tmp_path):
    server, client = own_redis
    async with memory_manager(
        redis=client, engine=engine, outbox_dir=tmp_path / "outbox", watch=True
    ) as cortex:
        await cortex.update_identity("carol", "name", "Carol")
        await cortex.store(
            "carol", "My dog Pixel is twelve years old", MemoryType.SEMANTIC, emotional_score=0.5
        )
        await server.stop()

        ctx = await cortex.get_context("carol", query="how old is my dog?")
        assert ctx.identity == {"name": "Carol"}  # rebuilt from PostgreSQL
        assert ctx.retrieved and "Pixel" in ctx.retrieved[0].content
        assert "Pixel" in ctx.working[0].content  # recent memories from PostgreSQL

        stored = await cortex.store(
            "carol", "Pixel had surgery today and is recovering", emotional_score=0.8
        )
        assert stored.success and not stored.queued
        await cortex.update_identity("carol", "pronouns", "she/her")

        # Redis comes back empty (its files lost): Cortex refills it.
        redis_dir = server.redis_dir
        for leftover in ("appendonlydir", "dump.rdb"):
            path = redis_dir / leftover
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        await server.start()

        async def refilled() -> bool:
            return cortex.redis_health.up and not cortex._rehydrate_users

        await _until(refilled)
        assert await cortex.hot.get_identity("carol") == {
            "name": "Carol",
            "pronouns": "she/her",
            "updated_at": (await cortex.hot.get_identity("carol"))["updated_at"],
        }
        working = {m.content for m in await cortex.hot.get_working("carol")}
        assert "Pixel had surgery today and is recovering" in working
        assert await cortex.warm.count("carol") == 4  # nothing lost in PostgreSQL either


async def test_forget_during_an_outage_removes_queued_words_from_disk(
    own_postgres, redis, tmp_path
):
    server, engine = own_postgres
    outbox = tmp_path / "outbox"
    async with memory_manager(redis=redis, engine=engine, outbox_dir=outbox) as cortex:
        await cortex.store("dave", "stored before", emotional_score=0.1)
        await server.stop()
        await cortex.store("dave", "my secret diary entry", emotional_score=0.9)
        await cortex.store("erin", "erin's note", emotional_score=0.1)
        result = await cortex.forget("dave")
        assert result.queued
        on_disk = "".join(p.read_text() for p in outbox.glob("*.json"))
        assert "secret diary" not in on_disk and "erin's note" in on_disk
        await server.start()
        assert await cortex.flush_outbox() == 2
        assert await cortex.warm.count("dave") == 0 and await cortex.warm.count("erin") == 1


async def _park(cortex, user_id: str) -> None:
    """Queue a write that can never apply (a malformed id: not an outage), then flush:
    the writer sets it aside in failed/ instead of blocking the queue behind it."""
    await cortex.outbox.append(
        {"op": "status", "user_id": user_id, "ids": ["not-a-uuid"], "status": "archived"}
    )
    assert await cortex.flush_outbox() == 1 and cortex.outbox.pending == 0


async def test_parked_writes_are_private_and_forget_removes_exactly_the_owners(
    redis, engine, tmp_path
):
    outbox = tmp_path / "outbox"
    async with memory_manager(redis=redis, engine=engine, outbox_dir=outbox) as cortex:
        for user in ("demo", "demo-user", "demo.x", "demo", "demo-user"):
            await _park(cortex, user)
        parked = outbox / "failed"
        files = sorted(parked.iterdir())
        assert len(files) == 5
        assert stat.S_IMODE(parked.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
        assert all(p.suffix == ".json" for p in files)  # no temporary file left behind

        # An entry parked by an older version ("<user>-<hex>.json", 0644) is matched by
        # its content, not its name: "demo-" + hex would have matched the old glob too.
        legacy = parked / f"demo-user-{'0' * 32}.json"
        legacy.write_text(json.dumps({"op": "forget", "user_id": "demo-user", "memory_id": "x"}))

        await cortex.forget("demo")
        owners = sorted(json.loads(p.read_text())["user_id"] for p in parked.iterdir())
        assert owners == ["demo-user", "demo-user", "demo-user", "demo.x"]

        await cortex.forget("demo-user")
        owners = [json.loads(p.read_text())["user_id"] for p in parked.iterdir()]
        assert owners == ["demo.x"]
