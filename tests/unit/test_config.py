"""Settings: spec names and defaults, parsing, one message naming every bad field."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clara_core.config import PROVIDERS, Settings, env_names, load_settings
from clara_core.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    # Tests read only what they set: drop any Clara variable from the outer env.
    for name in env_names().values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PROACTIVE_ENABLED", raising=False)


def test_spec_defaults():
    s = load_settings(env_file=None)
    assert s.llm_provider == "openrouter"
    assert s.openrouter_model == "anthropic/claude-sonnet-5.5"
    assert s.nanogpt_model == "moonshotai/Kimi-K2-Instruct-0905"
    assert s.custom_openai_base_url == "https://api.openai.com/v1"
    assert s.custom_openai_model == "gpt-4o"
    assert s.anthropic_model == "claude-sonnet-5-5"
    assert s.model_tier is None and s.auto_tier_selection is False
    assert s.discord_max_messages == 25
    assert s.discord_stop_phrases == ["clara stop", "stop clara", "nevermind", "never mind"]
    assert s.discord_summary_age_minutes == 30 and s.discord_channel_history_limit == 50
    assert s.session_idle_minutes == 30
    assert s.sandbox_mode == "auto" and s.docker_sandbox_image == "python:3.12-slim"
    assert (s.docker_sandbox_timeout, s.docker_sandbox_memory, s.docker_sandbox_cpu) == (
        900,
        "512m",
        1.0,
    )
    assert s.sandbox_timeout == 60
    assert s.clara_max_file_size == 50 * 1024 * 1024
    assert s.ors_enabled is False and s.ors_base_interval_minutes == 15
    assert s.ors_min_speak_gap_hours == 2 and s.ors_active_days == 7
    assert s.user_id == "demo-user" and s.default_project == "Default Project"
    assert s.discord_api_base == "https://discord.com/api/v10"
    assert s.discord_gateway_url == "wss://gateway.discord.gg/"
    assert s.database_url is None and s.redis_url is None


def test_lists_sizes_and_aliases(monkeypatch):
    monkeypatch.setenv("DISCORD_ALLOWED_CHANNELS", " 123, 456 ,")
    monkeypatch.setenv("DISCORD_STOP_PHRASES", "Halt Clara, STOP")
    monkeypatch.setenv("CLARA_MAX_FILE_SIZE", "10MiB")
    monkeypatch.setenv("PROACTIVE_ENABLED", "true")
    monkeypatch.setenv("MODEL_TIER", "HIGH")
    monkeypatch.setenv("LLM_FALLBACK_PROVIDERS", "anthropic, nanogpt")
    s = load_settings(env_file=None)
    assert s.discord_allowed_channels == [123, 456]
    assert s.discord_stop_phrases == ["halt clara", "stop"]
    assert s.clara_max_file_size == 10 * 1024 * 1024
    assert s.ors_enabled is True
    assert s.model_tier == "high"
    assert s.llm_fallback_providers == ["anthropic", "nanogpt"]


def test_dotenv_file_is_read_and_empty_values_mean_unset(tmp_path):
    env = tmp_path / ".env"
    env.write_text("DISCORD_MAX_MESSAGES=7\nMODEL_TIER=\nDATABASE_URL=\n")
    s = load_settings(env_file=env)
    assert s.discord_max_messages == 7
    assert s.model_tier is None and s.database_url is None


def test_every_bad_field_is_named_in_one_error(monkeypatch):
    monkeypatch.setenv("DISCORD_MAX_MESSAGES", "many")
    monkeypatch.setenv("LLM_PROVIDER", "skynet")
    monkeypatch.setenv("CLARA_TIMEZONE", "Mars/Olympus")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///clara.db")
    monkeypatch.setenv("DOCKER_SANDBOX_MEMORY", "lots")
    monkeypatch.setenv("DISCORD_ALLOWED_ROLES", "1,two")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    text = str(info.value)
    for name in (
        "DISCORD_MAX_MESSAGES",
        "LLM_PROVIDER",
        "CLARA_TIMEZONE",
        "DATABASE_URL",
        "DOCKER_SANDBOX_MEMORY",
        "DISCORD_ALLOWED_ROLES",
    ):
        assert name in text
    assert len(info.value.problems) == 6
    assert "IANA" in text and "pgvector" in text  # says how to fix, not only what


def test_secrets_are_not_echoed_in_errors(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://root:hunter2-secret@db/clara")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    assert "hunter2-secret" not in str(info.value)


def test_missing_token_and_provider_key_name_the_variables(monkeypatch):
    for provider, fields in PROVIDERS.items():
        monkeypatch.setenv("LLM_PROVIDER", provider)
        problems = load_settings(env_file=None).missing_for_discord()
        assert any("DISCORD_BOT_TOKEN" in p for p in problems)
        assert any(fields.api_key.upper() in p for p in problems)
    monkeypatch.setenv("LLM_PROVIDER", "anthropic")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "t")
    assert load_settings(env_file=None).missing_for_discord() == []
    monkeypatch.setenv("LLM_FALLBACK_PROVIDERS", "openrouter")
    assert load_settings(env_file=None).missing_for_discord() == [
        "OPENROUTER_API_KEY is not set: LLM_PROVIDER fallback=openrouter needs its API key."
    ]


def test_provider_fields_exist_on_settings():
    for fields in PROVIDERS.values():
        for attr in (fields.api_key, fields.model, fields.base_url):
            assert attr in Settings.model_fields
        for tier in ("high", "mid", "low"):
            assert f"{fields.tier_prefix}_{tier}" in Settings.model_fields


def test_relative_paths_become_absolute(tmp_path):
    s = load_settings(env_file=None).resolve_paths(tmp_path)
    assert s.clara_data_dir == tmp_path / "data"
    assert s.clara_files_dir == tmp_path / "clara_files"


@given(st.lists(st.integers(min_value=1, max_value=2**63 - 1), max_size=8))
def test_snowflake_lists_round_trip(ids):
    raw = ", ".join(str(i) for i in ids)
    s = Settings(_env_file=None, discord_allowed_servers=raw)
    assert s.discord_allowed_servers == ids


@pytest.mark.parametrize("bad", ["Alice Smith", "bob:*", "x" * 65, "ana/../bob"])
def test_user_id_follows_cortex_rule(monkeypatch, bad):
    from clara_core.cortex.types import CortexError, check_user_id

    with pytest.raises(CortexError):
        check_user_id(bad)  # what Cortex refuses, config refuses: one rule
    monkeypatch.setenv("USER_ID", bad)
    monkeypatch.setenv("CLARA_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None)
    problems = caught.value.problems
    assert any(p.startswith(f"USER_ID={bad!r}:") for p in problems), problems
    assert any(p.startswith("CLARA_TIMEZONE") for p in problems)  # every bad field, one message


@pytest.mark.parametrize("good", ["demo-user", "alice.smith", "bob@example.org", "u_1"])
def test_valid_user_ids_pass(monkeypatch, good):
    monkeypatch.setenv("USER_ID", good)
    assert load_settings(env_file=None).user_id == good


def test_local_embedder_dims_checked_at_load(monkeypatch):
    monkeypatch.setenv("CORTEX_EMBEDDING_DIMS", "256")
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None)
    assert any(
        p.startswith("CORTEX_EMBEDDING_DIMS='256': the local embedder makes 384")
        for p in caught.value.problems
    )
    # Other sizes are the OpenAI embedder's business.
    monkeypatch.setenv("CORTEX_EMBEDDING_PROVIDER", "openai")
    assert load_settings(env_file=None).cortex_embedding_dims == 256


def test_sandbox_mode_takes_the_later_specs_names(monkeypatch):
    monkeypatch.setenv("SANDBOX_MODE", "Docker")  # later spec: docker, incus, incus-vm, auto
    assert load_settings(env_file=None).sandbox_mode == "local"
    monkeypatch.setenv("SANDBOX_MODE", "incus")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    assert "SANDBOX_MODE" in str(info.value) and "not supported" in str(info.value)
