"""Discord adapter settings (names from the monolith spec)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from ._types import PhraseList, SnowflakeList
from .base import ClaraSettingsBase


class DiscordSettings(ClaraSettingsBase):
    discord_bot_token: SecretStr | None = Field(
        None,
        description="Discord bot token (Developer Portal > Bot > Reset Token). Required to run on Discord.",
    )
    discord_client_id: int | None = Field(
        None, description="Application (client) id, used to print an invite link."
    )
    discord_allowed_servers: SnowflakeList = Field(
        default_factory=list,
        description="Comma list of server ids where Clara answers in every channel (supersedes DISCORD_ALLOWED_CHANNELS).",
    )
    discord_allowed_channels: SnowflakeList = Field(
        default_factory=list, description="Comma list of channel ids Clara answers in (empty: all)."
    )
    discord_allowed_roles: SnowflakeList = Field(
        default_factory=list,
        description="Comma list of role ids allowed to talk to Clara (empty: everyone).",
    )
    discord_max_messages: int = Field(
        25, ge=1, le=200, description="Most messages followed back through a reply chain."
    )
    discord_stop_phrases: PhraseList = Field(
        default_factory=lambda: ["clara stop", "stop clara", "nevermind", "never mind"],
        description="Comma list of phrases that cancel the running task and clear the channel queue.",
    )
    discord_summary_age_minutes: int = Field(
        30, ge=1, description="Channel messages older than this are folded into a rolling summary."
    )
    discord_channel_history_limit: int = Field(
        50, ge=0, le=500, description="Most recent channel messages read for context."
    )
    discord_edit_interval_seconds: float = Field(
        1.2,
        ge=0.2,
        le=10,
        description="Least seconds between two message writes in a channel while a reply streams.",
    )
    discord_global_requests_per_second: float = Field(
        45,
        gt=0,
        le=10_000,
        description="Clara's budget of Discord requests per second across all channels (Discord allows 50).",
    )
    discord_log_channel_id: int | None = Field(
        None, description="Channel id that mirrors Clara's logs (secrets redacted)."
    )
    discord_monitor_enabled: bool = Field(
        True, description="Serve a small status page (/, /status, /health) for operators."
    )
    discord_monitor_port: int = Field(8001, ge=0, le=65535, description="Port of the status page.")
    discord_monitor_host: str = Field(
        "127.0.0.1",
        description="Address the status page listens on; 0.0.0.0 exposes it (it lists who talked to Clara).",
    )
    discord_api_base: str = Field(
        "https://discord.com/api/v10",
        description="Discord REST base URL; change only for Discord-compatible servers or tests.",
    )
    discord_gateway_url: str = Field(
        "wss://gateway.discord.gg/",
        description="Discord gateway URL; change only for Discord-compatible servers or tests.",
    )
    session_idle_minutes: int = Field(
        30,
        ge=1,
        description="Minutes of silence after which a conversation session is closed and summarised.",
    )

    @field_validator("discord_api_base")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://discord.com/api/v10")
        return v.rstrip("/")

    @field_validator("discord_gateway_url")
    @classmethod
    def _ws_url(cls, v: str) -> str:
        if not v.startswith(("ws://", "wss://")):
            raise ValueError("must be a ws(s) URL such as wss://gateway.discord.gg/")
        return v
