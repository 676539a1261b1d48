"""Per-user local file storage (CLARA_FILES_DIR/<user id>/).

Every path is resolved inside the user's own folder: names are sanitised, so
no input can reach another user's files or anything outside the store.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from clara_core.errors import ClaraError


class FileStoreError(ClaraError):
    """A file could not be stored or read; the message says why."""


_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_name(name: str) -> str:
    name = unicodedata.normalize("NFKC", name).replace("/", "_").replace("\\", "_")
    name = _UNSAFE.sub("_", name).strip(" .")
    return (name or "file")[:120]


def _user_dir_name(user_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", user_id):
        raise FileStoreError(f"invalid user id {user_id!r}")
    return user_id


@dataclass(frozen=True)
class StoredFile:
    name: str
    path: Path
    size: int


class LocalFileStore:
    def __init__(self, root: Path, *, max_size: int) -> None:
        self.root = root.resolve()
        self.max_size = max_size

    def user_dir(self, user_id: str) -> Path:
        return self.root / _user_dir_name(user_id)

    def _path(self, user_id: str, name: str) -> Path:
        base = self.user_dir(user_id)
        path = (base / safe_name(name)).resolve()
        if path.parent != base:
            raise FileStoreError("file names may not contain directories")
        return path

    async def save(self, user_id: str, name: str, data: bytes) -> StoredFile:
        if len(data) > self.max_size:
            raise FileStoreError(
                f"{name} is {len(data):,} bytes; the limit is {self.max_size:,} (CLARA_MAX_FILE_SIZE)"
            )
        path = self._path(user_id, name)
        # Keep earlier files: "notes.txt" then "notes (2).txt", ...
        stem, suffix, n = path.stem, path.suffix, 2
        while path.exists():
            path = path.with_name(f"{stem} ({n}){suffix}")
            n += 1
        await asyncio.to_thread(self._write, path, data)
        return StoredFile(path.name, path, len(data))

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)

    async def list(self, user_id: str) -> list[StoredFile]:
        base = self.user_dir(user_id)
        if not base.exists():
            return []
        return sorted(
            (StoredFile(p.name, p, p.stat().st_size) for p in base.iterdir() if p.is_file()),
            key=lambda f: f.name,
        )

    async def delete_user_data(self, user_id: str) -> int:
        base = self.user_dir(user_id)
        if not base.exists():
            return 0
        count = sum(1 for p in base.iterdir() if p.is_file())
        await asyncio.to_thread(shutil.rmtree, base)
        return count
