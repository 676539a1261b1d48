"""Process-wide settings: data directory, databases, time zone, identity."""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from clara_core.ids import is_valid_user_id

from .base import ClaraSettingsBase

_PG_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class CoreSettings(ClaraSettingsBase):
    clara_data_dir: Path = Field(
        Path("data"),
        description="Directory for Clara's own state: embedded Postgres/Redis data, pidfile, logs.",
    )
    database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL (with pgvector) URL, e.g. postgresql://user:pass@host:5432/clara. "
        "Unset: Clara starts an embedded PostgreSQL under CLARA_DATA_DIR.",
    )
    redis_url: SecretStr | None = Field(
        None,
        description="Redis URL, e.g. redis://localhost:6379/0. "
        "Unset: Clara starts an embedded, persistent Redis under CLARA_DATA_DIR.",
    )
    clara_startup_timeout: float = Field(
        60,
        ge=0,
        description="Seconds Clara waits at start for an external PostgreSQL/Redis to become reachable.",
    )
    clara_timezone: str = Field(
        "UTC",
        description="IANA time zone Clara lives in, e.g. Europe/Berlin (used for time of day).",
    )
    user_id: str = Field(
        "demo-user", description="User id for single-user surfaces such as the console chat."
    )
    default_project: str = Field(
        "Default Project", description="Name of the project new conversations belong to."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log verbosity: DEBUG, INFO, WARNING or ERROR."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith(_PG_SCHEMES):
            raise ValueError(
                "must be a PostgreSQL URL (postgresql://...); Clara needs PostgreSQL with "
                "pgvector. Unset it to use the embedded server"
            )
        return v

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith(_REDIS_SCHEMES):
            raise ValueError(
                "must start with redis://, rediss:// or unix://. Unset it to use the embedded server"
            )
        return v

    @field_validator("user_id")
    @classmethod
    def _check_user_id(cls, v: str) -> str:
        # The console stores memories under this id: Cortex's own rule decides, so an
        # id Cortex would refuse fails here at start instead of silently turning the
        # console's memory off later.
        if not is_valid_user_id(v):
            raise ValueError(
                "a user id is 1-64 letters, digits or . _ @ - (no spaces, no ':' or '*'), "
                "e.g. alice or alice.smith"
            )
        return v

    @field_validator("clara_timezone")
    @classmethod
    def _check_timezone(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {v!r}; use an IANA name like Europe/Berlin"
            ) from exc
        return v
