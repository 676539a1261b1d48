"""Conversation history survives a PostgreSQL outage: a real embedded PostgreSQL is
stopped and started mid-conversation, and every turn is counted in the sessions
tables afterwards."""

from __future__ import annotations

import asyncio
import logging
import shutil
import stat
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from clara_core.pipeline.session_log import OUTBOX_DIR, SessionLog
from storage import migrations
from storage.db import create_engine, session_factory
from storage.embedded import EmbeddedPostgres
from storage.models import ConversationSession, Message
from storage.sessions import SessionStore
from tests.fakes.fake_llm import Reply
from tests.support.discord_app import clara_on_discord
from tests.support.slash import command, press

pytestmark = [pytest.mark.slow, pytest.mark.storage]

OUTAGE_LOG = "conversation history is queued on disk"


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


async def _rows(engine) -> list[tuple]:
    async with session_factory(engine)() as db:
        query = select(Message.session_id, Message.role, Message.user_id, Message.content)
        return list((await db.execute(query.order_by(Message.id))).all())


async def _sessions(engine) -> int:
    async with session_factory(engine)() as db:
        return int(await db.scalar(select(func.count()).select_from(ConversationSession)))


async def _until(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"{what} not reached in time"
        await asyncio.sleep(0.1)


async def _turn(w, question: str, answer: str) -> None:
    w.llm.enqueue(Reply(answer))
    await w.mention(w.alice, question)
    await w.wait_reply_text(answer)


async def test_turns_said_while_postgres_is_down_reach_the_session(own_postgres, tmp_path, caplog):
    server, engine = own_postgres
    data = tmp_path / "data"
    store = SessionStore(engine)
    caplog.set_level(logging.INFO, logger="clara_core")
    async with clara_on_discord(sessions=store, clara_data_dir=data) as w:
        history = w.client.conversation.history
        history.retry_interval = 0.2  # probe often: the test waits for the replay
        await _turn(w, "before the outage", "answer 0")
        await _until(lambda: _count(engine, 2), what="turn 0 stored")

        await server.stop()
        for i in range(1, 5):  # the answers keep coming while PostgreSQL is down
            await _turn(w, f"during the outage #{i}", f"answer {i}")
        await _until(lambda: _pending(history, 4), what="4 queued turns")
        queued = sorted((data / OUTBOX_DIR).glob("*.json"))
        assert len(queued) == 4
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in queued)
        outage_logs = [r for r in caplog.records if OUTAGE_LOG in r.getMessage()]
        assert len(outage_logs) == 1  # once per outage, not per turn

        await server.start()
        await _until(lambda: _pending(history, 0), what="the queue replayed")
        await _turn(w, "after the outage", "answer 5")
        await _until(lambda: _count(engine, 12), what="all turns stored")

    rows = await _rows(engine)
    said = [(role, content) for _, role, _, content in rows]
    expected = [("user", "before the outage"), ("assistant", "answer 0")]
    for i in range(1, 5):
        expected += [("user", f"during the outage #{i}"), ("assistant", f"answer {i}")]
    expected += [("user", "after the outage"), ("assistant", "answer 5")]
    assert said == expected  # every turn, in the order it was said
    assert len({session_id for session_id, *_ in rows}) == 1  # all in the one session
    assert await _sessions(engine) == 1
    assert not list((data / OUTBOX_DIR).glob("*.json"))
    assert any("reachable again" in r.getMessage() for r in caplog.records)


async def _count(engine, n: int) -> bool:
    return len(await _rows(engine)) == n


async def _pending(history: SessionLog, n: int) -> bool:
    return history.pending == n


async def test_replay_is_idempotent_and_survives_a_restart(own_postgres, tmp_path):
    """Clara stops with turns queued; the next start replays them.  A queue file that
    outlives its commit (a crash between the two) is not stored twice."""
    server, engine = own_postgres
    data = tmp_path / "data"
    store = SessionStore(engine)
    async with clara_on_discord(sessions=store, clara_data_dir=data) as w:
        await server.stop()
        await _turn(w, "said during the outage", "noted")
        await _until(lambda: _pending(w.client.conversation.history, 1), what="a queued turn")
    (entry,) = (data / OUTBOX_DIR).glob("*.json")
    kept = tmp_path / "kept.json"
    shutil.copy(entry, kept)

    await server.start()
    async with clara_on_discord(sessions=store, clara_data_dir=data) as w:
        # replayed at start-up, without anyone talking
        await _until(lambda: _count(engine, 2), what="the queued turn replayed after a restart")

    shutil.copy(kept, entry)  # as if Clara crashed after the commit, before the delete
    log = SessionLog(store, data / OUTBOX_DIR, project="default", idle_minutes=30)
    await log.start()
    assert log.pending == 1
    assert await log.flush() == 1 and log.pending == 0
    await log.close()
    rows = await _rows(engine)
    assert [(r[1], r[3]) for r in rows] == [
        ("user", "said during the outage"),
        ("assistant", "noted"),
    ]


async def test_forget_drops_the_users_queued_turns(own_postgres, tmp_path):
    server, engine = own_postgres
    data = tmp_path / "data"
    store = SessionStore(engine)
    async with clara_on_discord(sessions=store, clara_data_dir=data, engine=engine) as w:
        history = w.client.conversation.history
        history.retry_interval = 0.2
        await server.stop()
        await _turn(w, "alice's secret", "kept safe")
        w.llm.enqueue(Reply("hi bob"))
        await w.mention(w.bob, "bob's note")
        await w.wait_reply_text("hi bob")
        await _until(lambda: _pending(history, 2), what="2 queued turns")

        ask = await command(w, w.alice, "forget")
        await press(w, ask, "Confirm", w.alice)
        assert history.pending == 1
        assert "alice's secret" not in "".join(
            p.read_text() for p in (data / OUTBOX_DIR).glob("*.json")
        )

        await server.start()
        await _until(lambda: _pending(history, 0), what="the queue replayed")
        await _until(lambda: _count(engine, 2), what="bob's turn stored")
    rows = await _rows(engine)
    assert {r[3] for r in rows} == {"bob's note", "hi bob"}
    assert str(w.alice.id) not in {r[2] for r in rows}
