"""Clara's real process: start-up checks, config errors, doctor, migrate."""

from __future__ import annotations

import asyncio

import pytest

from storage import migrations
from storage.services import Storage
from tests.support.clara_process import clara_env, run_clara

pytestmark = pytest.mark.slow


def test_first_run_migrates_then_names_the_missing_settings(tmp_path):
    result = run_clara(env=clara_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "DISCORD_BOT_TOKEN is not set" in result.stderr
    assert "OPENROUTER_API_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr
    # It migrated the embedded database before exiting, and stopped the servers.
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()
    assert not (tmp_path / "data" / "run" / "endpoints.json").exists()

    async def check():
        storage = await Storage.open(tmp_path / "data")
        try:
            return await migrations.status(storage.engine)
        finally:
            await storage.close()

    assert asyncio.run(check()).up_to_date


def test_provider_specific_key_is_named(tmp_path):
    env = clara_env(tmp_path, LLM_PROVIDER="anthropic", DISCORD_BOT_TOKEN="t")
    result = run_clara(env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "ANTHROPIC_API_KEY is not set" in result.stderr
    assert "DISCORD_BOT_TOKEN" not in result.stderr


def test_invalid_config_fails_fast_naming_every_field(tmp_path):
    env = clara_env(
        tmp_path, DISCORD_MAX_MESSAGES="lots", SANDBOX_MODE="yolo", ORS_ACTIVE_DAYS="-3"
    )
    for args in ((), ("doctor",), ("migrate",)):
        result = run_clara(*args, env=env, cwd=tmp_path)
        output = result.stdout + result.stderr
        for name in ("DISCORD_MAX_MESSAGES", "SANDBOX_MODE", "ORS_ACTIVE_DAYS"):
            assert name in output, (args, output)
        assert result.returncode == (1 if args == ("doctor",) else 2)
    assert not (tmp_path / "data" / "postgres").exists()  # nothing started


def test_dotenv_in_working_directory_is_used(tmp_path):
    (tmp_path / ".env").write_text("LLM_PROVIDER=nanogpt\n")
    result = run_clara(env=clara_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "NANOGPT_API_KEY is not set" in result.stderr


def test_doctor_reports_each_check(tmp_path):
    result = run_clara("doctor", env=clara_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 1  # token and key missing
    lines = result.stdout.splitlines()
    assert any(line.startswith("[ok  ] postgres") and "PostgreSQL 18" in line for line in lines)
    assert any(line.startswith("[ok  ] pgvector") for line in lines)
    assert any(line.startswith("[ok  ] redis ") for line in lines)
    assert any(line.startswith("[FAIL] discord") and "DISCORD_BOT_TOKEN" in line for line in lines)
    assert any(line.startswith("[FAIL] llm:openrouter") for line in lines)


def test_doctor_checks_the_embedder_against_the_stored_vectors(tmp_path):
    env = clara_env(tmp_path)
    assert run_clara("migrate", "upgrade", env=env, cwd=tmp_path).returncode == 0
    ok = run_clara("doctor", env=env, cwd=tmp_path).stdout.splitlines()
    assert any(
        x.startswith("[ok  ] cortex embedder") and "all-MiniLM-L6-v2-int8, 384 dims" in x
        for x in ok
    )
    assert any(x.startswith("[ok  ] cortex outbox") for x in ok)
    changed = {
        **env,
        "CORTEX_EMBEDDING_PROVIDER": "openai",
        "CORTEX_EMBEDDING_API_KEY": "sk-test",
        "CORTEX_EMBEDDING_DIMS": "256",
    }
    out = run_clara("doctor", env=changed, cwd=tmp_path).stdout
    line = next(x for x in out.splitlines() if "cortex embedder" in x)
    assert line.startswith("[FAIL]") and "cortex reembed" in line and "256" in line
    assert "sk-test" not in out


def test_doctor_checks_the_llm_endpoint_it_is_given(tmp_path):
    env = clara_env(
        tmp_path,
        LLM_PROVIDER="openai",
        CUSTOM_OPENAI_API_KEY="k",
        CUSTOM_OPENAI_BASE_URL="http://127.0.0.1:9/v1",  # nothing listens on the discard port
    )
    result = run_clara("doctor", env=env, cwd=tmp_path)
    assert "[FAIL] llm:openai" in result.stdout and "cannot reach" in result.stdout


def test_migrate_commands(tmp_path):
    env = clara_env(tmp_path)
    status = run_clara("migrate", "status", env=env, cwd=tmp_path)
    assert status.returncode == 0 and "pending: 0001, 0002, 0003, 0004" in status.stdout
    up = run_clara("migrate", "upgrade", env=env, cwd=tmp_path)
    assert up.returncode == 0 and "current: 0004" in up.stdout and "pending: none" in up.stdout
    down = run_clara("migrate", "downgrade", "base", env=env, cwd=tmp_path)
    assert down.returncode == 0 and "current: (empty database)" in down.stdout
    bad = run_clara("migrate", "downgrade", "nonsense", env=env, cwd=tmp_path)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
