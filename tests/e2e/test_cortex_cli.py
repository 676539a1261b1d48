"""``discord_bot.py cortex …`` as a real process on a fresh embedded data directory.

Each launch that touches storage starts embedded PostgreSQL and Redis (~3 s), so
one test walks through the commands an operator runs after a migration instead
of starting a fresh process tree per assertion.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.fakes.fake_llm import FakeLLM, Reply
from tests.support.clara_process import clara_env, run_clara

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mem0_export.json"
EMBEDDING_KEY = "sk-test-embeddings-e2e-0123456789"


def _ok(result) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


async def test_operator_walkthrough_import_inspect_consolidate_reembed(tmp_path):
    async with FakeLLM(api_keys={"k", EMBEDDING_KEY}, default=Reply("[]")) as fake:
        env = clara_env(
            tmp_path,
            LLM_PROVIDER="openai",
            CUSTOM_OPENAI_API_KEY="k",
            CUSTOM_OPENAI_BASE_URL=fake.openai_base_url,
        )

        async def clara(*args: str):
            return await asyncio.to_thread(run_clara, "cortex", *args, env=env, cwd=tmp_path)

        out = _ok(await clara("import-mem0", str(FIXTURE)))
        assert "43 entries, 39 valid, 3 rejected, 1 duplicated in the file" in out
        assert "dry run: nothing was written" in out
        assert "invalid user id 'not a valid id!'" in out
        assert not (tmp_path / "data").exists()  # a dry run needs no database at all

        applied = await clara("import-mem0", str(FIXTURE), "--apply", "--batch", "16")
        out = _ok(applied)
        assert "imported 39 new memories" in out
        assert "result: all 39 valid memories are stored" in out
        assert "spot check, search by own text (top 3): 5/" in out
        assert "importing [" in applied.stderr and "39/39" in applied.stderr  # progress bar

        identity = json.loads(_ok(await clara("identity", "sam_k", "--json")))
        assert identity == {
            "name": "Sam",
            "location": "Amsterdam",
            "employer": "Spotify",
            "preferred_name": "Sammy",
        }

        lines = _ok(await clara("search", "maria.s", "her cat Miso", "--limit", "3")).splitlines()
        assert lines[0].split() == ["score", "sim", "type", "date", "content"]
        assert "episodic" in lines[1]
        assert lines[1].endswith("2023-11-25  Adopted a grey cat called Miso from the shelter")

        # The memories are old (outside the pattern lookback): a run that needs no model
        # answer, but goes through the real runner and writes its log row.
        out = _ok(await clara("consolidate", "sam_k"))
        assert "1 user(s) consolidated, 0 failed" in out
        assert any(line.startswith("sam_k") and line.endswith("ok") for line in out.splitlines())

        stats = _ok(await clara("stats"))
        assert "memories: 39  users: 3" in stats
        assert "all-MiniLM-L6-v2-int8: 39" in stats and "outbox pending: 0" in stats
        assert "consolidation, last 24 h: users processed 1, runs 1," in stats

        # The operator switches to a 256-dimensional embedder: every command but reembed
        # refuses (naming the fix), reembed converts the column, and Cortex works again.
        other = clara_env(
            tmp_path,
            CORTEX_EMBEDDING_PROVIDER="openai",
            CORTEX_EMBEDDING_API_KEY=EMBEDDING_KEY,
            CORTEX_EMBEDDING_BASE_URL=fake.openai_base_url,
            CORTEX_EMBEDDING_DIMS="256",
        )

        async def switched(*args: str):
            return await asyncio.to_thread(run_clara, "cortex", *args, env=other, cwd=tmp_path)

        refused = await switched("search", "josh", "coffee")
        assert refused.returncode == 2, refused.stderr
        assert "cortex reembed" in refused.stderr and "Traceback" not in refused.stderr

        converted = await switched("reembed", "--batch", "10")
        out = _ok(converted)
        assert "ALL 39 stored vectors are rewritten" in converted.stderr
        assert "embedded 39 memories" in out and "rebuilt the vector index" in out
        assert "recorded embedder text-embedding-3-small (256 dims)" in out

        lines = _ok(await switched("search", "josh", "dark roast coffee")).splitlines()
        assert lines[1].endswith("Prefers dark roast coffee, black")
        for result in (refused, converted):
            assert EMBEDDING_KEY not in result.stdout + result.stderr


def test_plain_errors_before_anything_starts(tmp_path):
    env = clara_env(tmp_path)
    no_key = run_clara("cortex", "consolidate", env=env, cwd=tmp_path)
    assert no_key.returncode == 2 and "OPENROUTER_API_KEY is not set" in no_key.stderr

    missing = run_clara("cortex", "import-mem0", str(tmp_path / "nope.json"), env=env, cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"cortex import-mem0: {tmp_path / 'nope.json'}: no such file"

    bad_user = run_clara("cortex", "identity", "not a user", env=env, cwd=tmp_path)
    assert bad_user.returncode == 2 and "invalid user id" in bad_user.stderr
    assert not (tmp_path / "data").exists()  # all refused before starting anything
