"""What start-up imports, checked in a fresh interpreter (issue 9 §7).

Clara connects to Discord before storage and the pipeline are ready, so what the
gateway connect imports decides how soon IDENTIFY goes out; and an SDK for a
wire no configured provider speaks is a second of CPU on every start.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.support.clara_process import REPO


def _modules_after(code: str) -> set[str]:
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_discord_connect_path_imports_no_storage_or_pipeline():
    modules = _modules_after(
        """
        from clara_core.discord_adapter.runner import ClaraDiscordClient, DiscordRunner
        """
    )
    assert "discord" in modules
    heavy = {"sqlalchemy", "alembic", "redis", "openai", "anthropic", "numpy", "onnxruntime"}
    assert not heavy & {m.split(".")[0] for m in modules}
    assert "clara_core.discord_adapter.conversation" not in modules


def test_only_the_sdk_of_the_configured_wire_is_imported():
    modules = _modules_after(
        """
        from clara_core.config import load_settings
        from clara_core.llm.service import LLMService

        settings = load_settings(
            env_file=None,
            llm_provider="openai",
            custom_openai_api_key="k",
            custom_openai_base_url="http://127.0.0.1:9/v1",
        )
        LLMService(settings)
        """
    )
    assert "openai" in modules
    assert "anthropic" not in modules


def test_an_anthropic_fallback_loads_its_sdk_at_start_up():
    modules = _modules_after(
        """
        from clara_core.config import load_settings
        from clara_core.llm.service import LLMService

        settings = load_settings(
            env_file=None,
            llm_provider="openai",
            custom_openai_api_key="k",
            custom_openai_base_url="http://127.0.0.1:9/v1",
            llm_fallback_providers=["anthropic"],
            anthropic_api_key="k",
        )
        LLMService(settings)
        """
    )
    assert {"openai", "anthropic"} <= modules


def test_httpx_is_imported_whole_with_the_llm_providers():
    """The openai SDK looks up ``sys.modules["httpx"]`` on every request; a thread
    importing httpx at that moment (huggingface_hub, tavily, mcp) left it half
    initialised and answers right after start-up failed ("partially initialized
    module 'httpx' has no attribute 'Timeout'", seen when a restarted shard
    answered what it missed).  The providers import it whole first."""
    modules = _modules_after(
        """
        import sys
        import clara_core.llm.providers.base
        httpx = sys.modules["httpx"]  # KeyError: not imported by the providers
        assert httpx.Timeout and httpx.Response and httpx.Client
        """
    )
    assert {"httpx", "clara_core.llm.providers.base"} <= modules
