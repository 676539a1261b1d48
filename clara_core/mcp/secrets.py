"""Encryption at rest for MCP servers' env and header values (their API keys).

The values are encrypted one by one with Fernet (AES-128-CBC + HMAC-SHA256, from
``cryptography``) and stored as ``enc:v1:<token>``; the *names* stay readable, so
an operator can see which variables a server has without seeing them.

The key comes from CLARA_SECRET_KEY, a comma list for rotation: the first key
encrypts, every key decrypts, and a row read with an older key
is written back with the first.  Unset, a key is generated once in
``CLARA_DATA_DIR/secret.key`` with mode 0600 and the log says so: that file then
belongs with the database's backups.  A value stored before encryption existed
(no ``enc:v1:`` prefix) is read as it is and written back encrypted.

The key is only read when a value must be encrypted or decrypted, in a thread
(file I/O never runs on the event loop), so servers without secrets never make
Clara create a key file.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from .config import McpConfigError

log = logging.getLogger(__name__)

PREFIX = "enc:v1:"
KEY_FILE_NAME = "secret.key"


class SecretsError(McpConfigError):
    """Stored secrets cannot be read or written; the message says which server and why."""


def parse_keys(value: str) -> list[str]:
    """CLARA_SECRET_KEY's comma list, each checked to be a Fernet key (ValueError if not)."""
    keys = [k.strip() for k in value.split(",") if k.strip()]
    if not keys:
        raise ValueError("empty")
    for i, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ValueError(
                f"key {i} is not a Fernet key (32 url-safe base64-encoded bytes); generate one "
                "with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            ) from None
    return keys


def _read_or_create_key_file(path: Path) -> str:
    """The key in ``path``; created (0600, exclusively) when absent."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    else:
        if path.stat().st_mode & 0o077:
            log.warning("%s can be read by other users: chmod 600 it", path)
        return text
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        # O_EXCL: two Clara processes racing here must not each write their own key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    log.warning(
        "CLARA_SECRET_KEY is not set: generated %s (mode 0600) to encrypt MCP servers' env and "
        "header values in the database. Back it up with the database; without it those values "
        "cannot be read.",
        path,
    )
    return key.decode("ascii")


class SecretBox:
    """Encrypts and decrypts the values of an env/headers mapping."""

    def __init__(self, keys: list[str] | None = None, key_file: Path | None = None) -> None:
        if not keys and key_file is None:
            raise ValueError("SecretBox needs keys or a key file")
        self._keys = list(keys or [])
        self._key_file = key_file
        self._fernets: list[Fernet] | None = None
        self._lock = asyncio.Lock()

    @property
    def source(self) -> str:
        """Where the key comes from, for messages (never the key itself)."""
        return "CLARA_SECRET_KEY" if self._keys else f"the key file {self._key_file}"

    async def _get(self) -> list[Fernet]:
        if self._fernets is None:
            async with self._lock:
                if self._fernets is None:
                    keys = self._keys
                    if not keys:
                        assert self._key_file is not None
                        try:
                            text = await asyncio.to_thread(_read_or_create_key_file, self._key_file)
                            keys = parse_keys(text)
                        except (OSError, ValueError) as exc:
                            raise SecretsError(
                                f"cannot use the MCP secrets key file {self._key_file}: {exc}. "
                                "Fix it or set CLARA_SECRET_KEY."
                            ) from None
                    self._fernets = [Fernet(k) for k in keys]
        return self._fernets

    @staticmethod
    def is_encrypted(value: str) -> bool:
        return value.startswith(PREFIX)

    async def encrypt(self, values: dict[str, str]) -> dict[str, str]:
        if not values:
            return {}
        first = (await self._get())[0]
        return {k: PREFIX + first.encrypt(v.encode()).decode("ascii") for k, v in values.items()}

    async def decrypt(
        self, server: str, what: str, values: dict[str, str]
    ) -> tuple[dict[str, str], bool]:
        """(plain values, whether the stored form should be rewritten).

        Rewritten: a value stored in plain text (from before encryption) or with a key
        that is no longer the first (a rotation).
        """
        if not values:
            return {}, False
        if not any(self.is_encrypted(v) for v in values.values()):
            return dict(values), True
        fernets = await self._get()
        out: dict[str, str] = {}
        stale = False
        for k, v in values.items():
            if not self.is_encrypted(v):
                out[k], stale = v, True
                continue
            token = v[len(PREFIX) :].encode()
            for i, fernet in enumerate(fernets):
                try:
                    out[k] = fernet.decrypt(token).decode()
                except InvalidToken:
                    continue
                # Opened by an older key of a rotation: write it back with the first.
                stale = stale or i > 0
                break
            else:
                # The variable's name is fine to say; its value is what we protect.
                raise SecretsError(
                    f"the stored {what} of MCP server '{server}' ({k}) cannot be decrypted with "
                    f"{self.source}: the key changed. Set CLARA_SECRET_KEY to the key it was "
                    "saved with (during a rotation: new,old), or reinstall the server."
                )
        return out, stale
