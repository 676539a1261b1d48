"""Where backups live: a local directory or an S3(-compatible) bucket.

Both are synchronous (boto3 is); the service calls them in a worker thread so a
scheduled backup never blocks Clara's event loop.  boto3 is imported only when a
bucket is configured: it is a second of start-up nobody else should pay.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol

from .errors import BackupError
from .names import BackupEntry, parse_name

log = logging.getLogger(__name__)

S3_PREFIX = "backups/clara/"
PARTIAL_SUFFIX = ".partial"


class BackupStore(Protocol):
    description: str

    def list(self) -> list[BackupEntry]: ...

    def put(self, local: Path, name: str) -> BackupEntry: ...

    def fetch(self, name: str, dest: Path) -> Path:
        """A local path to read the backup from: the stored file, or ``dest`` downloaded."""
        ...

    def delete(self, name: str) -> None: ...


class LocalStore:
    """Backups as files in BACKUP_DIR (0700; each file 0600: it holds every user's data)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.description = str(directory)

    def list(self) -> list[BackupEntry]:
        if not self.directory.is_dir():
            return []
        out = []
        for path in self.directory.iterdir():
            created = parse_name(path.name)
            if created is not None and path.is_file():
                out.append(BackupEntry(path.name, created, path.stat().st_size, str(path)))
        return sorted(out, key=lambda e: e.created)

    def put(self, local: Path, name: str) -> BackupEntry:
        target = self.directory / name
        os.replace(local, target)  # local is a .partial in the same directory: atomic
        created = parse_name(name)
        assert created is not None
        return BackupEntry(name, created, target.stat().st_size, str(target))

    def fetch(self, name: str, dest: Path) -> Path:
        return self.directory / name

    def delete(self, name: str) -> None:
        (self.directory / name).unlink(missing_ok=True)


# S3 error codes no retry can fix, with what the operator does about them.
_PERMANENT: dict[str, str] = {
    "NoSuchBucket": "the bucket does not exist: create it or fix S3_BUCKET",
    "AccessDenied": "access denied: check S3_ACCESS_KEY/S3_SECRET_KEY and the bucket's policy",
    "AllAccessDisabled": "access to the bucket is disabled: check the bucket",
    "InvalidAccessKeyId": "the access key is unknown: check S3_ACCESS_KEY",
    "SignatureDoesNotMatch": "the secret key is wrong: check S3_SECRET_KEY",
    "InvalidBucketName": "the bucket name is invalid: fix S3_BUCKET",
    "AuthorizationHeaderMalformed": "the region does not match the bucket: check S3_REGION",
    "PermanentRedirect": "the bucket lives in another region or endpoint: check S3_REGION",
}


def s3_error(action: str, exc: Exception) -> BackupError:
    """A boto3/botocore failure as a BackupError: permanent for credentials and
    missing buckets, transient (worth another try) for everything else."""
    code = ""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
    text = str(exc)
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        return BackupError(f"S3 {action}: no credentials: set S3_ACCESS_KEY and S3_SECRET_KEY")
    for known, hint in _PERMANENT.items():
        # upload_file wraps the ClientError in S3UploadFailedError: only its text has the code.
        if code == known or known in text:
            return BackupError(f"S3 {action}: {hint} ({known})")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return BackupError(f"S3 {action}: {first}", transient=True)


class S3Store:
    """Backups as objects ``backups/clara/clara_*.dump`` in S3_BUCKET."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None,
        region: str,
        access_key: str | None,
        secret_key: str | None,
        timeout: float = 30,
    ) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.description = f"s3://{bucket}/{S3_PREFIX}" + (
            f" at {endpoint_url}" if endpoint_url else ""
        )
        self._client_args: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region,
            "aws_access_key_id": access_key,
            "aws_secret_access_key": secret_key,
            "timeout": timeout,
        }
        self._client: Any = None

    def _s3(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            args = dict(self._client_args)
            timeout = args.pop("timeout")
            self._client = boto3.client(
                "s3",
                **args,
                # One try per call: DB_RETRY_ATTEMPTS x DB_RETRY_DELAY is the retry policy,
                # and the operator configured it; botocore's own retries would multiply it.
                config=Config(
                    retries={"max_attempts": 1, "mode": "standard"},
                    connect_timeout=min(timeout, 10),
                    read_timeout=timeout,
                ),
            )
        return self._client

    def _call(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if isinstance(exc, BackupError):
                raise
            raise s3_error(action, exc) from exc

    def list(self) -> list[BackupEntry]:
        def go() -> list[BackupEntry]:
            out = []
            pages = self._s3().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=S3_PREFIX):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(S3_PREFIX) :]
                    created = parse_name(name)
                    if created is not None:  # only Clara's own backup objects
                        out.append(
                            BackupEntry(
                                name, created, int(obj["Size"]), f"s3://{self.bucket}/{obj['Key']}"
                            )
                        )
            return sorted(out, key=lambda e: e.created)

        return self._call("listing the backups", go)

    def put(self, local: Path, name: str) -> BackupEntry:
        key = S3_PREFIX + name
        self._call("upload", self._s3().upload_file, str(local), self.bucket, key)
        created = parse_name(name)
        assert created is not None
        return BackupEntry(name, created, local.stat().st_size, f"s3://{self.bucket}/{key}")

    def fetch(self, name: str, dest: Path) -> Path:
        # Created 0600 first: boto3 then writes into a file only this user can read.
        dest.touch(mode=0o600)
        self._call("download", self._s3().download_file, self.bucket, S3_PREFIX + name, str(dest))
        return dest

    def delete(self, name: str) -> None:
        self._call("delete", self._s3().delete_object, Bucket=self.bucket, Key=S3_PREFIX + name)
