"""Render ``.env.example`` from the settings' own descriptions.

``python -m clara_core.config.envexample > .env.example`` keeps the file in
step with the code; a test fails when the two disagree.
"""

from __future__ import annotations

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from . import Settings, env_names
from .backup import BackupSettings
from .companion import CompanionSettings
from .core import CoreSettings
from .cortex import CortexSettings
from .discord_settings import DiscordSettings
from .llm import LLMSettings
from .tools import ToolSettings
from .voice import VoiceSettings

SECTIONS = [
    ("Core: data, databases, time", CoreSettings),
    ("LLM providers and tiers", LLMSettings),
    ("Discord", DiscordSettings),
    ("Tools: sandbox, files, GitHub, web search, MCP", ToolSettings),
    ("Companion: Organic Response System", CompanionSettings),
    ("Cortex memory", CortexSettings),
    ("Voice: voice messages (listening) and speech", VoiceSettings),
    ("Backups: python discord_bot.py backup", BackupSettings),
]


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined or info.default is None:
        return ""
    else:
        value = info.default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def render() -> str:
    names = env_names(Settings)
    out = [
        "# Clara configuration. Copy to .env and fill in what you need.",
        "# Empty values mean 'not set'. Only DISCORD_BOT_TOKEN and the API key of",
        "# LLM_PROVIDER are required; everything else has a working default.",
    ]
    for title, section in SECTIONS:
        out += ["", f"# --- {title} ---"]
        for field_name, info in section.model_fields.items():
            out.append(f"# {info.description}")
            out.append(f"{names[field_name]}={_default(info)}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render(), end="")
