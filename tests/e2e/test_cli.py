"""Clara's real process: start-up checks, config errors, doctor, migrate."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from storage import migrations
from storage.services import Storage
from tests.fakes.fake_llm import FakeLLM
from tests.support.clara_process import ENTRY, clara_env, run_clara

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
    # Proactive sends a crash left pending are counted (none on a fresh database).
    assert any(x.startswith("[ok  ] proactive messages") and "none lost" in x for x in ok)
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
    # Every revision is pending on a fresh database, from 0001 up to the head.
    head = next(x.split()[1] for x in status.stdout.splitlines() if x.startswith("head:"))
    assert status.returncode == 0 and "pending: 0001, 0002, 0003, 0004" in status.stdout
    assert status.stdout.rstrip().endswith(head)
    up = run_clara("migrate", "upgrade", env=env, cwd=tmp_path)
    assert up.returncode == 0 and f"current: {head}" in up.stdout and "pending: none" in up.stdout
    down = run_clara("migrate", "downgrade", "base", env=env, cwd=tmp_path)
    assert down.returncode == 0 and "current: (empty database)" in down.stdout
    bad = run_clara("migrate", "downgrade", "nonsense", env=env, cwd=tmp_path)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


async def test_doctor_prints_no_url_secret_and_survives_url_credentials(tmp_path):
    # Credentials in a base URL made doctor crash (aiohttp refuses them next to an
    # Authorization header); a ?api_key=... in a base URL was printed as is.
    async with FakeLLM(api_keys={"right-key-123"}) as fake:
        port = fake.openai_base_url.split(":")[2].split("/")[0]
        env = clara_env(
            tmp_path,
            DISCORD_BOT_TOKEN="bot-token-abcdef",
            DISCORD_API_BASE="http://tok3nuser@127.0.0.1:9/api/v10?token=disc0rd-query-secret",
            LLM_PROVIDER="openai",
            CUSTOM_OPENAI_API_KEY="wrong-key-456",  # the fake answers 401
            CUSTOM_OPENAI_BASE_URL=(
                f"http://clara:url-pa55word@127.0.0.1:{port}/v1?api_key=query-secret-789&x=1"
            ),
            LLM_FALLBACK_PROVIDERS="anthropic",
            ANTHROPIC_API_KEY="anthropic-key-000",
            ANTHROPIC_BASE_URL="http://127.0.0.1:9/v1?access_token=anthr0pic-query-secret",
        )
        result = await asyncio.to_thread(run_clara, "doctor", env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 1  # the checks fail, doctor itself does not
    lines = result.stdout.splitlines()
    llm = next(x for x in lines if x.startswith("[FAIL] llm:openai"))
    assert "credentials rejected (401)" in llm
    # The key goes in the header; the URL shown has neither userinfo nor query secret.
    assert f"by http://127.0.0.1:{port}/v1/models?api_key=***&x=1" in llm
    assert any(x.startswith("[FAIL] discord") and "token=***" in x for x in lines)
    assert any(x.startswith("[FAIL] llm:anthropic") and "access_token=***" in x for x in lines)
    for secret in (
        "url-pa55word",
        "query-secret-789",
        "disc0rd-query-secret",
        "tok3nuser",
        "anthr0pic-query-secret",
        "wrong-key-456",
        "bot-token-abcdef",
        "anthropic-key-000",
    ):
        assert secret not in output, (secret, output)


def _no_traceback(result) -> None:
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("shape", ["file", "under_a_file", "proc"])
def test_unusable_data_dir_is_a_plain_config_error(tmp_path, shape):
    blocker = tmp_path / "blocker"
    blocker.write_text("I am a file")
    data_dir = {
        "file": blocker,  # a regular file where the directory should be
        "under_a_file": blocker / "data",  # a missing parent that cannot be created
        "proc": Path("/proc/1"),  # exists, but no file can be created there, even by root
    }[shape]
    env = clara_env(tmp_path, CLARA_DATA_DIR=str(data_dir))
    commands = ((), ("--console",), ("--daemon",), ("migrate",), ("cortex", "identity", "ana"))
    for args in commands:
        result = run_clara(*args, env=env, cwd=tmp_path, timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        assert f"CLARA_DATA_DIR={data_dir} cannot be used" in result.stderr, (args, result.stderr)
        _no_traceback(result)
    doctor = run_clara("doctor", env=env, cwd=tmp_path, timeout=60)
    assert doctor.returncode == 1 and "[FAIL] data dir" in doctor.stdout
    assert f"CLARA_DATA_DIR={data_dir} cannot be used" in doctor.stdout
    _no_traceback(doctor)
    assert blocker.read_text() == "I am a file"


@pytest.mark.skipif(
    shutil.which("unshare") is None
    or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0,
    reason="needs a private mount namespace (unshare -m) for a read-only bind mount",
)
def test_read_only_data_dir_is_refused_even_for_root(tmp_path):
    # Root ignores permission bits, so "read-only" is made real: a read-only bind mount
    # in a private mount namespace.  The check must write to find out.
    data_dir = tmp_path / "ro-data"
    data_dir.mkdir()
    env = clara_env(tmp_path, CLARA_DATA_DIR=str(data_dir))
    for args in ((), ("--console",), ("--daemon",), ("migrate",)):
        script = (
            f'mount --bind -o ro "{data_dir}" "{data_dir}" && '
            f'exec "{sys.executable}" "{ENTRY}" {" ".join(args)}'
        )
        result = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, (args, result.stderr)
        assert "read-only file system" in result.stderr and "CLARA_DATA_DIR" in result.stderr
        _no_traceback(result)
    assert list(data_dir.iterdir()) == []  # no probe left behind


def test_config_errors_found_late_are_config_errors(tmp_path):
    # CORTEX_EMBEDDING_DIMS the local embedder can't make used to surface only when the
    # embedder loaded (after storage started: exit 1); a USER_ID Cortex refuses turned
    # the console's memory off silently.  Both are now named at once, exit 2.
    env = clara_env(
        tmp_path,
        CORTEX_EMBEDDING_DIMS="256",
        USER_ID="bob:*",
        LLM_PROVIDER="openai",
        CUSTOM_OPENAI_API_KEY="k",
    )
    for args in ((), ("--console",)):
        result = run_clara(*args, env=env, cwd=tmp_path, timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        assert "CORTEX_EMBEDDING_DIMS='256': the local embedder makes 384" in result.stderr
        assert "USER_ID='bob:*'" in result.stderr
        _no_traceback(result)
    assert not (tmp_path / "data" / "postgres").exists()  # found before anything started
