"""Core tables on real PostgreSQL: relations, constraints, cascades, deletion."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from storage.models import ChannelSummary, ConversationSession, Message, Project
from storage.preferences import Preferences
from storage.user_data import delete_user_data

pytestmark = pytest.mark.storage


async def _conversation(db, user: str, context: str = "dm:1") -> ConversationSession:
    project = Project(owner_id=user, name=f"{user}'s project")
    session = ConversationSession(project=project, user_id=user, context_id=context)
    session.messages = [
        Message(user_id=user, role="user", content=f"hi from {user}"),
        Message(user_id="clara", role="assistant", content="hello!", meta={"tier": "mid"}),
    ]
    db.add(project)
    await db.commit()
    return session


async def test_session_with_messages_round_trips(db):
    session = await _conversation(db, "u1")
    rows = (
        (
            await db.execute(
                select(Message).where(Message.session_id == session.id).order_by(Message.id)
            )
        )
        .scalars()
        .all()
    )
    assert [(m.role, m.content) for m in rows] == [("user", "hi from u1"), ("assistant", "hello!")]
    assert rows[1].meta == {"tier": "mid"}
    assert rows[0].created_at.tzinfo is not None


async def test_message_role_is_constrained(db):
    session = await _conversation(db, "u1")
    db.add(Message(session_id=session.id, user_id="u1", role="wizard", content="x"))
    with pytest.raises(IntegrityError):
        await db.commit()
    await db.rollback()


async def test_project_names_unique_per_owner(db):
    db.add_all([Project(owner_id="a", name="p"), Project(owner_id="b", name="p")])
    await db.commit()
    db.add(Project(owner_id="a", name="p"))
    with pytest.raises(IntegrityError):
        await db.commit()
    await db.rollback()


async def test_deleting_a_project_cascades_to_sessions_and_messages(db):
    session = await _conversation(db, "u1")
    await db.execute(text("DELETE FROM projects WHERE id = :id"), {"id": session.project_id})
    await db.commit()
    assert (await db.scalar(select(func.count()).select_from(Message))) == 0
    assert (await db.scalar(select(func.count()).select_from(ConversationSession))) == 0


async def test_channel_summary_is_one_per_channel(db):
    cutoff = datetime(2026, 1, 1, tzinfo=UTC)
    db.add(
        ChannelSummary(channel_id="c1", summary="they talked about cats", summary_cutoff_at=cutoff)
    )
    await db.commit()
    db.add(ChannelSummary(channel_id="c1", summary="dup"))
    with pytest.raises(IntegrityError):
        await db.commit()
    await db.rollback()
    row = await db.scalar(select(ChannelSummary).where(ChannelSummary.channel_id == "c1"))
    assert row.summary_cutoff_at == cutoff


async def test_delete_user_data_removes_only_that_user(db):
    await _conversation(db, "alice")
    bob = await _conversation(db, "bob")
    # alice also spoke in bob's session (a group conversation)
    db.add(Message(session_id=bob.id, user_id="alice", role="user", content="alice in bob's"))
    await db.commit()

    await Preferences(db.bind).set_default_tier("alice", "high")
    await Preferences(db.bind).set_default_tier("bob", "low")
    counts = await delete_user_data(db, "alice")
    assert (counts.sessions, counts.projects, counts.preferences) == (1, 1, 1)
    assert counts.messages == 2  # her own message in her session + the one in bob's

    remaining = (await db.execute(select(Message.user_id, Message.content))).all()
    assert all(user != "alice" for user, _ in remaining)
    assert ("bob", "hi from bob") in remaining
    assert (
        await db.scalar(select(func.count()).select_from(Project).where(Project.owner_id == "bob"))
        == 1
    )


async def test_pgvector_distance_and_hnsw_index(engine):
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE vec_probe (id int primary key, v vector(3))"))
        await conn.execute(
            text("INSERT INTO vec_probe VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0.9,0.1,0]')")
        )
        await conn.execute(text("CREATE INDEX ON vec_probe USING hnsw (v vector_cosine_ops)"))
        ids = (
            (await conn.execute(text("SELECT id FROM vec_probe ORDER BY v <=> '[1,0,0]' LIMIT 2")))
            .scalars()
            .all()
        )
    assert ids == [1, 3]
