"""Discord adapter settings (names from the monolith spec)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import BeforeValidator, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from ._types import PhraseList, SnowflakeList, _split_commas
from .base import ClaraSettingsBase

# Comma-separated shard ids ("0, 2"); SnowflakeList's parsing, each id at least 0.
ShardIdList = Annotated[list[Annotated[int, Field(ge=0)]], NoDecode, BeforeValidator(_split_commas)]


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: only this machine can reach it."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere


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
        description="Comma list of role ids allowed to talk to Clara (empty: everyone); in DMs "
        "too: only people holding one in a server Clara shares.",
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
    discord_catchup_minutes: float = Field(
        10,
        ge=0,
        le=1440,
        description="After a shard connects with a new session (a restart, or a session Discord dropped), answer the mentions and DMs of the last this-many minutes that got no reply while it was away (0: off).",
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
    # Declared before the host: the host's check reads it.
    discord_monitor_token: SecretStr | None = Field(
        None,
        description="Token the dashboard asks for (Authorization: Bearer, or /?token= once in a browser); "
        "required when DISCORD_MONITOR_HOST is not a loopback address. /health never needs it.",
    )
    discord_monitor_host: str = Field(
        "127.0.0.1",
        description="Address the status page listens on; any non-loopback address (0.0.0.0 exposes it) "
        "requires DISCORD_MONITOR_TOKEN.",
    )
    clara_monitor_show_content: bool = Field(
        False,
        description="Show user names on the dashboard (otherwise short hashes stand in for them).",
    )
    discord_monitor_refresh_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="The live dashboard's pages get at most one update this often (a turn after a "
        "quiet period is shown at once); longer costs Clara less CPU per turn under load "
        "(docs/benchmarks.md).",
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

    @field_validator("discord_monitor_host")
    @classmethod
    def _monitor_exposed_needs_token(cls, v: str, info: ValidationInfo) -> str:
        v = v.strip()
        token = info.data.get("discord_monitor_token")
        if not is_loopback(v) and (token is None or not token.get_secret_value().strip()):
            raise ValueError(
                f"{v} is reachable from other machines: set DISCORD_MONITOR_TOKEN too "
                "(a long random string), or keep the default 127.0.0.1"
            )
        return v

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

    # --- Sharding (one block: the fields and their validator) -------------------
    discord_shard_count: int | None = Field(
        None,
        ge=1,
        description="Total number of shards across all of Clara's processes (empty: the count Discord recommends, all in this process).",
    )
    discord_shard_ids: ShardIdList = Field(
        default_factory=list,
        description="Comma list of the shard ids this process runs, each below DISCORD_SHARD_COUNT (empty: all of them).",
    )

    @field_validator("discord_shard_ids")
    @classmethod
    def _shard_ids(cls, v: list[int], info: ValidationInfo) -> list[int]:
        # discord_shard_count is declared above, so it is validated first; when it is
        # itself invalid it is missing here and its own error is reported instead.
        if not v or "discord_shard_count" not in info.data:
            return v
        count = info.data["discord_shard_count"]
        if count is None:
            raise ValueError("needs DISCORD_SHARD_COUNT (the total number of shards) as well")
        wrong = [i for i in v if not 0 <= i < count]
        if wrong:
            raise ValueError(
                f"shard ids must be 0 to {count - 1} (DISCORD_SHARD_COUNT={count}); "
                f"got {', '.join(map(str, wrong))}"
            )
        if len(set(v)) != len(v):
            raise ValueError("lists a shard id twice")
        return sorted(v)

    # --- One request budget per bot token (shared through Redis) -----------------
    discord_shared_budget: bool = Field(
        True,
        description="Share DISCORD_GLOBAL_REQUESTS_PER_SECOND with every Clara process on this bot token through REDIS_URL (when set); while Redis does not answer, each process uses its share of it.",
    )
    discord_shared_budget_timeout_ms: int = Field(
        50,
        ge=5,
        le=5000,
        description="How long a request waits for Redis's answer on the shared budget before this process falls back to its share (milliseconds).",
    )
