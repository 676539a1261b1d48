"""``discord_bot.py cortex bootstrap`` and ``cortex clear`` as real processes.

The processes use the test's PostgreSQL database and Redis (DATABASE_URL /
REDIS_URL), so the test can count rows and keys between the commands; the
profile is read by the fake LLM speaking the OpenAI wire.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text

from clara_core.cortex.extraction import FACTS_ANSWER
from sandbox.workspace import user_key
from storage.models import Base, MemoryRecord
from storage.user_data import SHARED_CONTENT_TABLES, USER_COLUMNS
from tests.fakes.fake_llm import ErrorReply, FakeLLM, RecordedRequest, Reply
from tests.support.clara_process import ENTRY, clara_env

pytestmark = [pytest.mark.slow, pytest.mark.storage]

SAM, KIM, LEE = "111", "222", "333"  # LEE: only one table names him, Redis does not
TABLES = {t.name: t for t in Base.metadata.sorted_tables}
SAM_PROFILE = "My name is Sam and I live in Amsterdam.\n\nI have a grey cat called Miso.\nI go climbing every weekend."


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # stdin is no terminal (as under cron or CI), whatever the test runner has.
    return subprocess.run(
        [sys.executable, str(ENTRY), "cortex", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _fact(content, kind="semantic", key=None, value=None):
    return {
        "content": content,
        "type": kind,
        "key": key,
        "value": value,
        "corrects": None,
        "emotion": 0.4,
    }


def extraction_answer(request: RecordedRequest) -> Reply:
    """Facts for the part of the profile in the prompt (parts are read one per call)."""
    prompt = request.messages[-1]["content"]
    facts = []
    if "Amsterdam" in prompt:
        facts += [
            _fact("Their name is Sam", "identity", "name", "Sam"),
            _fact("They live in Amsterdam", "identity", "location", "Amsterdam"),
        ]
    if "Miso" in prompt:
        facts.append(_fact("They have a grey cat called Miso"))
    if "climbing" in prompt:
        facts.append(_fact("They go climbing every weekend"))
    if "Kim" in prompt:
        facts.append(_fact("Their name is Kim", "identity", "name", "Kim"))
    return Reply(json.dumps({"facts": facts}))


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


async def count_rows(engine, user: str) -> dict[str, int]:
    """Rows naming ``user``, per (table, column) of USER_COLUMNS."""
    async with engine.connect() as conn:
        out = {}
        for table, column in USER_COLUMNS:
            t = TABLES[table]
            q = select(func.count()).select_from(t).where(t.c[column] == user)
            out[f"{table}.{column}"] = int((await conn.execute(q)).scalar())
        return out


async def table_total(engine, table: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(TABLES[table]))).scalar())


async def seed(engine, user: str, *, with_content: bool = True) -> None:
    """A row in every user table for ``user`` (memories come from bootstrap)."""
    now = datetime.now(UTC)
    t = TABLES
    async with engine.begin() as conn:
        pid = uuid.uuid4().hex
        await conn.execute(insert(t["projects"]).values(id=pid, owner_id=user, name=f"p{user}"))
        await conn.execute(insert(t["project_members"]).values(project_id=pid, user_id=user))
        sid = uuid.uuid4().hex
        await conn.execute(
            insert(t["sessions"]).values(id=sid, project_id=pid, user_id=user, context_id="dm")
        )
        await conn.execute(
            insert(t["messages"]).values(session_id=sid, user_id=user, role="user", content="hi")
        )
        await conn.execute(insert(t["user_preferences"]).values(user_id=user))
        await conn.execute(
            insert(t["companion_state"]).values(
                scope=f"dm:{user}", levels={"dopamine": 0.5}, at=now, owner_user_id=user
            )
        )
        await conn.execute(
            insert(t["companion_history"]).values(
                scope=f"dm:{user}", at=now, levels={"dopamine": 0.5}, cause="message", user_id=user
            )
        )
        await conn.execute(
            insert(t["proactive_messages"]).values(
                user_id=user, at=now, content="hey", reason="r", status="sent"
            )
        )
        await conn.execute(
            insert(t["proactive_assessments"]).values(
                user_id=user, at=now, action="wait", reason="r", next_check_at=now
            )
        )
        await conn.execute(
            insert(t["proactive_notes"]).values(
                user_id=user, kind="observation", text="n", relevance=0.5, created_at=now
            )
        )
        await conn.execute(
            insert(t["user_interaction_patterns"]).values(user_id=user, next_check_at=now)
        )
        await conn.execute(
            insert(t["mcp_servers"]).values(
                name=f"srv{user}", source="npm", package="x", transport="stdio", installed_by=user
            )
        )
        await conn.execute(
            insert(t["consolidation_logs"]).values(run_id=uuid.uuid4().hex, job="j", user_id=user)
        )
        ids = (
            await conn.execute(select(MemoryRecord.id).where(MemoryRecord.user_id == user).limit(2))
        ).scalars()
        ids = list(ids)
        if len(ids) == 2:
            await conn.execute(
                insert(t["contradictions"]).values(user_id=user, memory_a=ids[0], memory_b=ids[1])
            )
        if with_content:
            await conn.execute(
                insert(t["channel_summaries"]).values(channel_id=f"c{user}", summary="talk")
            )


def test_every_user_column_of_the_schema_is_listed():
    """``cortex clear --all`` finds users through USER_COLUMNS: a new table naming a
    user must be added there."""
    names = {"user_id", "owner_id", "owner_user_id", "installed_by"}
    in_schema = {
        (t.name, c.name) for t in Base.metadata.sorted_tables for c in t.columns if c.name in names
    }
    assert in_schema == set(USER_COLUMNS)


async def test_bootstrap_dry_run_apply_and_idempotence(
    tmp_path, database_url, redis_url, engine, redis
):
    (tmp_path / "sam.txt").write_text(SAM_PROFILE)
    (tmp_path / "empty.txt").write_text("  \n\n")
    async with FakeLLM(api_keys={"k"}) as fake:
        fake.default = extraction_answer
        env = clara_env(
            tmp_path,
            LLM_PROVIDER="openai",
            CUSTOM_OPENAI_API_KEY="k",
            CUSTOM_OPENAI_BASE_URL=fake.openai_base_url,
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
        )

        async def clara(*args: str):
            return await asyncio.to_thread(run, *args, env=env, cwd=tmp_path)

        # Refused before any model call or storage: exit 2, one plain line.
        for args, message in (
            (("--user", SAM, "missing.txt"), "missing.txt: no such file"),
            (("--user", SAM, "empty.txt"), "empty.txt: the file is empty"),
            (("--user", "not a user!", "sam.txt"), "invalid user id 'not a user!'"),
        ):
            result = await clara("bootstrap", *args)
            assert result.returncode == 2, (args, result.stderr)
            assert message in result.stderr and "Traceback" not in result.stderr
        assert fake.requests == []

        # Dry run: two parts (a 60-character chunk), one model call each, nothing stored.
        out = _ok(await clara("bootstrap", "--user", SAM, "sam.txt", "--chunk-chars", "60"))
        assert "2 part(s) read, 4 fact(s) for user 111" in out
        assert "identity  name=Sam" in out and "semantic  They have a grey cat called Miso" in out
        assert "dry run: nothing was stored" in out
        assert (tmp_path / "sam.facts.json").is_file()  # the facts to review and apply
        assert len(fake.requests) == 2
        fmt = fake.requests[0].body["response_format"]  # the extraction's structured output
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == FACTS_ANSWER.name
        assert "Miso" not in fake.requests[0].messages[-1]["content"]  # chunked
        assert (await count_rows(engine, SAM))["memories.user_id"] == 0
        assert await redis.keys("cortex:*") == []

        doc = json.loads(
            _ok(await clara("bootstrap", "--user", SAM, "sam.txt", "--json", "--chunk-chars", "60"))
        )
        assert {f["content"] for f in doc["facts"]} >= {"They go climbing every weekend"}
        assert doc["user"] == SAM and len(doc["facts"]) == 4

        # --apply with the profile: read and stored in one step (said), through Cortex
        # (warm rows + the identity in Redis).
        out = _ok(
            await clara("bootstrap", "--user", SAM, "sam.txt", "--apply", "--chunk-chars", "60")
        )
        assert "stored 4 new fact(s) for user 111; 0 already known" in out
        assert "read and stored in one step, without a review" in out
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(MemoryRecord.content, MemoryRecord.memory_type, MemoryRecord.status)
                    .where(MemoryRecord.user_id == SAM)
                    .order_by(MemoryRecord.content)
                )
            ).all()
        assert [(c, t, s) for c, t, s in rows] == [
            ("They go climbing every weekend", "semantic", "active"),
            ("They have a grey cat called Miso", "semantic", "active"),
            ("location: Amsterdam", "identity", "active"),
            ("name: Sam", "identity", "active"),
        ]
        assert await redis.hget("cortex:111:identity", "name") is not None

        # Again: every fact is known, nothing is added (not even a superseding identity).
        out = _ok(
            await clara("bootstrap", "--user", SAM, "sam.txt", "--apply", "--chunk-chars", "60")
        )
        assert "stored 0 new fact(s) for user 111; 4 already known" in out
        assert (await count_rows(engine, SAM))["memories.user_id"] == 4


async def test_clear_one_user_then_everyone(tmp_path, database_url, redis_url, engine, redis):
    (tmp_path / "sam.txt").write_text(SAM_PROFILE)
    (tmp_path / "kim.txt").write_text("My name is Kim.")
    async with FakeLLM(api_keys={"k"}) as fake:
        fake.default = extraction_answer
        env = clara_env(
            tmp_path,
            LLM_PROVIDER="openai",
            CUSTOM_OPENAI_API_KEY="k",
            CUSTOM_OPENAI_BASE_URL=fake.openai_base_url,
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            SANDBOX_MODE="bwrap",
        )

        async def clara(*args: str):
            return await asyncio.to_thread(run, *args, env=env, cwd=tmp_path)

        _ok(await clara("bootstrap", "--user", SAM, "sam.txt", "--apply"))
        _ok(await clara("bootstrap", "--user", KIM, "kim.txt", "--apply"))
    await seed(engine, SAM)
    await seed(engine, KIM)
    async with engine.begin() as conn:  # a user only one table still names
        await conn.execute(
            insert(TABLES["proactive_notes"]).values(
                user_id=LEE,
                kind="observation",
                text="n",
                relevance=0.5,
                created_at=datetime.now(UTC),
            )
        )
    await redis.sadd("mood:owner:222", "dm:222")
    for user in (SAM, KIM):
        (tmp_path / "clara_files" / user).mkdir(parents=True)
        (tmp_path / "clara_files" / user / "notes.txt").write_text("x")
        ws = tmp_path / "clara_sandboxes" / "ws" / user_key(user)
        ws.mkdir(parents=True)
        (ws / "script.py").write_text("print(1)")

    sam_before, kim_before = await count_rows(engine, SAM), await count_rows(engine, KIM)
    assert all(n >= 1 for n in sam_before.values()), sam_before  # every table has Sam
    # Kim has one memory, so no contradiction: every other table has him.
    assert all(n >= 1 for k, n in kim_before.items() if not k.startswith("contradictions"))
    mcp_total = await table_total(engine, "mcp_servers")

    # No terminal to ask on and no --yes: refused, nothing deleted.
    result = await clara("clear", "--user", SAM)
    assert result.returncode == 2 and "add --yes" in result.stderr
    assert await count_rows(engine, SAM) == sam_before

    out = _ok(await clara("clear", "--user", SAM, "--yes"))
    assert "cleared user 111:" in out
    lines = {
        line.rsplit(None, 1)[0].strip(): line.rsplit(None, 1)[1] for line in out.splitlines()[1:]
    }
    assert lines["memories (long-term, identity included)"] == "4"
    assert lines["conversations"] == "1" and lines["messages"] == "1" and lines["files"] == "1"
    assert lines["Sandbox workspace"] == "1"
    assert lines["Proactive messages and notes"] == "4"
    assert lines["Mood of your DMs"] == "2"
    assert lines["Your name on MCP servers you installed"] == "1"
    assert set((await count_rows(engine, SAM)).values()) == {0}
    assert await count_rows(engine, KIM) == kim_before  # the other user's rows untouched
    assert await table_total(engine, "mcp_servers") == mcp_total  # the servers stay
    assert await redis.keys("cortex:111:*") == [] and await redis.exists("cortex:222:identity")
    assert not (tmp_path / "clara_files" / SAM).exists()
    assert (tmp_path / "clara_files" / KIM / "notes.txt").exists()
    assert not (tmp_path / "clara_sandboxes" / "ws" / user_key(SAM)).exists()
    assert (tmp_path / "clara_sandboxes" / "ws" / user_key(KIM) / "script.py").exists()

    out = _ok(await clara("clear", "--all", "--yes"))
    assert "cleared 2 user(s):" in out  # Kim and Lee (Sam is gone already)
    for user in (SAM, KIM, LEE):
        assert set((await count_rows(engine, user)).values()) == {0}, user
    for table in SHARED_CONTENT_TABLES:
        assert await table_total(engine, table) == 0
    for table, _ in USER_COLUMNS:
        if table != "mcp_servers":
            assert await table_total(engine, table) == 0, table
    assert await table_total(engine, "mcp_servers") == mcp_total  # configuration stays
    assert await table_total(engine, "cortex_meta") >= 1  # the embedder record stays
    async with engine.connect() as conn:  # the schema stays at its migration
        assert (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar() == 1
    assert [k for k in await redis.keys("*") if k.startswith(("cortex:", "mood:owner"))] == []
    assert list((tmp_path / "clara_files").iterdir()) == []
    assert list((tmp_path / "clara_sandboxes" / "ws").iterdir()) == []


def test_clear_asks_on_a_terminal_and_no_deletes_nothing(tmp_path):
    """The question is asked on a terminal (a pseudo-terminal here); any answer but
    yes cancels before storage is even opened."""
    import os
    import pty

    primary, secondary = pty.openpty()
    try:
        os.write(primary, b"no\n")
        result = subprocess.run(
            [sys.executable, str(ENTRY), "cortex", "clear", "--all"],
            env=clara_env(tmp_path),
            cwd=tmp_path,
            stdin=secondary,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.close(secondary)
        os.close(primary)
    assert result.returncode == 1, result.stderr
    assert "This deletes everything Clara stores about EVERY user" in result.stdout
    assert "cancelled: nothing was deleted" in result.stdout
    assert not (tmp_path / "data").exists()  # no storage was opened


async def test_bootstrap_says_when_the_model_fails(tmp_path):
    (tmp_path / "p.txt").write_text("My name is Sam.")
    async with FakeLLM(api_keys={"k"}) as fake:
        fake.default = ErrorReply(400, "model not found")
        env = clara_env(
            tmp_path,
            LLM_PROVIDER="openai",
            CUSTOM_OPENAI_API_KEY="k",
            CUSTOM_OPENAI_BASE_URL=fake.openai_base_url,
        )
        result = await asyncio.to_thread(
            run, "bootstrap", "--user", SAM, "p.txt", env=env, cwd=tmp_path
        )
    assert result.returncode == 1
    assert "cortex bootstrap failed: reading part 1 of 1 failed:" in result.stderr
    assert "Traceback" not in result.stderr


async def _memories(engine, user: str) -> list[tuple[str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(MemoryRecord.content, MemoryRecord.memory_type)
            .where(MemoryRecord.user_id == user, MemoryRecord.status == "active")
            .order_by(MemoryRecord.content)
        )
        return [(c, t) for c, t in rows.all()]


async def test_bootstrap_applies_exactly_the_reviewed_facts(
    tmp_path, database_url, redis_url, engine, redis
):
    """Review, then apply: the dry run writes the facts the model read to a file; the
    operator edits it; --apply FILE.json stores exactly what the file says, without
    asking the model, once (a second apply stores nothing new)."""
    (tmp_path / "sam.txt").write_text(SAM_PROFILE)
    async with FakeLLM(api_keys={"k"}) as fake:
        fake.default = extraction_answer
        llm_env = {
            "LLM_PROVIDER": "openai",
            "CUSTOM_OPENAI_API_KEY": "k",
            "CUSTOM_OPENAI_BASE_URL": fake.openai_base_url,
        }
        storage_env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
        with_llm = clara_env(tmp_path, **llm_env)
        # Applying reviewed facts needs storage, not a model: no LLM key at all.
        without_llm = clara_env(tmp_path, **storage_env)

        async def clara(*args: str, env: dict[str, str]):
            return await asyncio.to_thread(run, *args, env=env, cwd=tmp_path)

        out = _ok(await clara("bootstrap", "--user", SAM, "sam.txt", env=with_llm))
        facts_file = tmp_path / "sam.facts.json"  # beside the profile
        assert "The facts are in sam.facts.json" in out
        assert f"cortex bootstrap --user {SAM} --apply sam.facts.json" in out
        calls = len(fake.requests)
        doc = json.loads(facts_file.read_text())
        assert doc["user"] == SAM and len(doc["facts"]) == 4

        # The operator's review: one fact dropped, one reworded, an identity
        # corrected, one added.
        by_content = {f["content"]: f for f in doc["facts"]}
        del by_content["They go climbing every weekend"]
        by_content["They have a grey cat called Miso"]["content"] = "Their grey cat Miso is 3"
        by_content["They live in Amsterdam"].update(content="They live in Utrecht", value="Utrecht")
        edited = [
            *by_content.values(),
            {"content": "They are vegetarian", "type": "semantic", "key": None, "value": None},
        ]
        facts_file.write_text(json.dumps({**doc, "facts": edited}, indent=2))

        out = _ok(
            await clara("bootstrap", "--user", SAM, "--apply", str(facts_file), env=without_llm)
        )
        assert "stored 4 new fact(s) for user 111; 0 already known" in out
        assert len(fake.requests) == calls, "applying reviewed facts asked the model"
        assert await _memories(engine, SAM) == [
            ("Their grey cat Miso is 3", "semantic"),
            ("They are vegetarian", "semantic"),
            ("location: Utrecht", "identity"),
            ("name: Sam", "identity"),
        ]

        # Applied twice: nothing new.
        out = _ok(
            await clara("bootstrap", "--user", SAM, "--apply", str(facts_file), env=without_llm)
        )
        assert "stored 0 new fact(s) for user 111; 4 already known" in out
        assert (await count_rows(engine, SAM))["memories.user_id"] == 4

        # A broken file is refused before anything is stored, naming what is wrong.
        bad = tmp_path / "bad.json"
        for content, message in (
            ('{"facts": [{"content": "x", "type": "semantic"},]}', "bad.json: not valid JSON:"),
            ('[{"content": "x"}]', 'expected an object with a "facts" list'),
            (
                json.dumps(
                    {
                        "facts": [
                            {"content": "a", "type": "semantic"},
                            {"content": "b", "type": "opinion"},
                        ]
                    }
                ),
                "facts[1].type: 'opinion' is not one of identity, semantic, episodic",
            ),
            (
                json.dumps({"facts": [{"content": "Name is Sam", "type": "identity"}]}),
                "facts[0].key: an identity fact needs a key",
            ),
            (
                json.dumps({"user": KIM, "facts": [{"content": "x", "type": "semantic"}]}),
                f"the facts are about user {KIM}, not {SAM}",
            ),
        ):
            bad.write_text(content)
            result = await clara("bootstrap", "--user", SAM, "--apply", str(bad), env=without_llm)
            assert result.returncode == 2, (content, result.stdout + result.stderr)
            assert message in result.stderr, result.stderr
            assert "Traceback" not in result.stderr
        assert (await count_rows(engine, SAM))["memories.user_id"] == 4
        assert len(fake.requests) == calls
