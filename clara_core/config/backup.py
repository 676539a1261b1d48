"""Backup settings: where ``python discord_bot.py backup`` puts pg_dump archives.

The names (S3_*, BACKUP_RETENTION_DAYS, RESPAWN_PROTECTION_HOURS, FORCE_BACKUP,
DB_RETRY_*) are the seed's backup service's, so an existing deployment keeps
its environment.  Unlike the seed, no S3 setting at all means "keep them in
BACKUP_DIR", not "upload to a default bucket": nothing leaves the machine unless
asked.  S3 credentials without S3_BUCKET are asking: the seed's default bucket
(clara-backups) is used, never a silent local folder.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from .base import ClaraSettingsBase

#: The seed's S3_BUCKET default, used when credentials are set without a bucket.
SPEC_DEFAULT_BUCKET = "clara-backups"


class BackupSettings(ClaraSettingsBase):
    s3_bucket: str | None = Field(
        None,
        description=(
            "S3 bucket for backups (objects under backups/clara/); unset keeps them in "
            "BACKUP_DIR on this machine, unless S3_ACCESS_KEY/S3_SECRET_KEY are set: then "
            "clara-backups."
        ),
    )
    s3_endpoint_url: str | None = Field(
        None,
        description=(
            "S3-compatible endpoint, e.g. https://s3.wasabisys.com or http://127.0.0.1:9000; "
            "unset uses AWS S3."
        ),
    )
    s3_access_key: SecretStr | None = Field(None, description="S3 access key id.")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret access key.")
    s3_region: str = Field("us-east-1", description="S3 region of the bucket.")
    backup_dir: Path | None = Field(
        None,
        description="Directory for backups when S3_BUCKET is unset (default CLARA_DATA_DIR/backups).",
    )
    backup_retention_days: float = Field(
        7,
        gt=0,
        description=(
            "Backups older than this many days (by the time in their name) are deleted after "
            "each backup run; the newest one is always kept."
        ),
    )
    respawn_protection_hours: float = Field(
        23,
        ge=0,
        description=(
            "A backup run is skipped while the newest backup is younger than this (a "
            "restarting cron container must not back up in a loop); 0 turns it off."
        ),
    )
    force_backup: bool = Field(
        False, description="Back up even inside RESPAWN_PROTECTION_HOURS (like backup run --force)."
    )
    db_retry_attempts: int = Field(
        5,
        ge=1,
        description="Tries for each step of a backup (database, S3) before it fails.",
    )
    db_retry_delay: float = Field(
        2,
        ge=0,
        description="Seconds before the second try; doubles with each further try.",
    )
    backup_interval_hours: float = Field(
        0,
        ge=0,
        description=(
            "Run a backup inside the running bot every this many hours (and once shortly after "
            "start; RESPAWN_PROTECTION_HOURS skips it when one is recent); 0 is off: use cron "
            "with `python discord_bot.py backup run`."
        ),
    )
    backup_pg_bin_dir: Path | None = Field(
        None,
        description=(
            "Directory with pg_dump/pg_restore to use instead of the bundled PostgreSQL 18 "
            "ones, for an external server newer than 18."
        ),
    )

    @model_validator(mode="after")
    def _s3_credentials_mean_s3(self) -> BackupSettings:
        # Keys given, bucket forgotten: the operator asked for S3, and finding the
        # backups on the very machine they were meant to survive is the worst outcome.
        if self.s3_bucket is None and (self.s3_access_key or self.s3_secret_key):
            self.s3_bucket = SPEC_DEFAULT_BUCKET
        return self
