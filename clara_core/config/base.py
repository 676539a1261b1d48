"""Shared settings behaviour: sources, .env handling, empty-means-unset."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ClaraSettingsBase(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        # "FOO=" in a copied .env.example means "not set", not "empty string".
        env_ignore_empty=True,
        extra="ignore",
        validate_default=True,
    )
