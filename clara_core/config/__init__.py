"""Clara's configuration: environment variables and ``.env``, validated at once.

``load_settings()`` either returns a complete ``Settings`` or raises one
``ConfigError`` that names *every* bad variable with what is wrong and how to
fix it; the CLI turns that into exit code 2.  Field names are the lowercase
environment variable names, which are Clara's public interface.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, SecretStr, ValidationError

from clara_core.errors import ConfigError

from .backup import BackupSettings
from .companion import CompanionSettings
from .core import CoreSettings
from .cortex import CortexSettings
from .discord_settings import DiscordSettings
from .llm import PROVIDERS, LLMSettings, ProviderFields
from .tools import ToolSettings
from .voice import VoiceSettings

__all__ = [
    "PROVIDERS",
    "ConfigError",
    "ProviderFields",
    "Settings",
    "env_names",
    "load_settings",
]


class Settings(
    CoreSettings,
    LLMSettings,
    DiscordSettings,
    ToolSettings,
    CompanionSettings,
    CortexSettings,
    VoiceSettings,
    BackupSettings,
):
    """Every setting Clara reads. Sections live in the sibling modules."""

    def resolve_paths(self, base: Path | None = None) -> Settings:
        """Make relative directories absolute (before a daemon changes its cwd)."""
        base = base or Path.cwd()
        updates = {
            name: (base / value).resolve()
            for name in (
                "clara_data_dir",
                "clara_files_dir",
                "mcp_servers_dir",
                "cortex_outbox_dir",
                "backup_dir",
                "backup_pg_bin_dir",
            )
            if (value := getattr(self, name)) is not None and not value.is_absolute()
        }
        return self.model_copy(update=updates) if updates else self

    def missing_for_discord(self) -> list[str]:
        """What must still be set before Clara can run on Discord."""
        problems = []
        if self.discord_bot_token is None:
            problems.append(
                "DISCORD_BOT_TOKEN is not set: create a bot at https://discord.com/developers/"
                "applications (Bot > Reset Token) and set DISCORD_BOT_TOKEN to its token."
            )
        problems += self.missing_llm_keys()
        return problems

    def missing_llm_keys(self) -> list[str]:
        problems = []
        for name in [self.llm_provider, *self.llm_fallback_providers]:
            fields = PROVIDERS[name]
            if self.provider_api_key(name) is None:
                problems.append(
                    f"{fields.api_key.upper()} is not set: LLM_PROVIDER"
                    f"{'' if name == self.llm_provider else ' fallback'}={name} needs its API key."
                )
        return problems


def env_names(model: type[Settings] = Settings) -> dict[str, str]:
    """Map field name -> primary environment variable name."""
    names = {}
    for field_name, info in model.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names[field_name] = str(alias.choices[0])
        elif isinstance(alias, str):
            names[field_name] = alias
        else:
            names[field_name] = field_name.upper()
    return names


def _field_for_loc(loc: tuple[Any, ...]) -> str | None:
    if not loc:
        return None
    head = str(loc[0]).lower()
    if head in Settings.model_fields:
        return head
    for field_name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices) and head in {str(c).lower() for c in alias.choices}:
            return field_name
    return None


def _describe(error: dict[str, Any]) -> str:
    field = _field_for_loc(tuple(error.get("loc", ())))
    env = env_names().get(field, str(error.get("loc", ("?",))[0]).upper()) if field else "?"
    msg = str(error.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    info = Settings.model_fields.get(field) if field else None
    # Never echo secrets back, even when malformed.
    secret = info is not None and "SecretStr" in repr(info.annotation)
    shown = "" if secret or "input" not in error else f"={error['input']!r}"
    hint = f" ({info.description})" if info is not None and info.description else ""
    return f"{env}{shown}: {msg}.{hint}"


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Read and validate all settings; raise ``ConfigError`` listing every problem."""
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError([_describe(e) for e in exc.errors()]) from None


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret, so log redaction can scrub them."""
    out = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and value.get_secret_value():
            out.append(value.get_secret_value())
    return out
