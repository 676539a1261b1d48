"""Per-user local file storage (CLARA_FILES_DIR/<user id>/).

Every path is resolved inside the user's own folder: names are sanitised, so
no input can reach another user's files or anything outside the store.

A save is all or nothing and never overwrites: the bytes go to a temporary file
with a unique name, which is then linked to the first free name ("notes.txt",
"notes (2).txt", ...) in one atomic step, so two uploads of the same name at
once both land, each whole.  The quota check and the write happen under one
per-folder lock, so concurrent uploads cannot together overshoot
CLARA_FILES_QUOTA.  All file I/O runs in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import shutil
import stat
import threading
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clara_core.errors import ClaraError

log = logging.getLogger(__name__)


class FileStoreError(ClaraError):
    """A file could not be stored or read; the message says why."""


class QuotaExceeded(FileStoreError):
    """The user's files would take more than CLARA_FILES_QUOTA; nothing was written."""


_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
#: Temporary files start with "." (safe_name strips leading dots, so no stored file
#: does) and end in ".part"; listings skip them.
_TEMP_PREFIX, _TEMP_SUFFIX = ".upload-", ".part"
#: Filesystems without hard links (some network and FAT mounts) say so with these.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}

_folder_locks: dict[Path, threading.Lock] = {}
_folder_locks_guard = threading.Lock()


def _folder_lock(folder: Path) -> threading.Lock:
    """One lock per user folder, shared by every store object in this process
    (the runner and the conversation handler each build one)."""
    with _folder_locks_guard:
        return _folder_locks.setdefault(folder, threading.Lock())


def safe_name(name: str) -> str:
    name = unicodedata.normalize("NFKC", name).replace("/", "_").replace("\\", "_")
    name = _UNSAFE.sub("_", name).strip(" .")
    return (name or "file")[:120]


def _user_dir_name(user_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", user_id):
        raise FileStoreError(f"invalid user id {user_id!r}")
    return user_id


def _is_temp(name: str) -> bool:
    return name.startswith(_TEMP_PREFIX) and name.endswith(_TEMP_SUFFIX)


def _missing(name: str) -> str:
    return f"there is no stored file named {name!r}; list_local_files shows what is stored"


def _not_a_file(name: str) -> str:
    return f"{name!r} is not a file Clara stored (a link or a folder), so it is not used"


def human_size(n: int) -> str:
    """1536 -> "1.5 KiB": sizes as a user reads them."""
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class StoredFile:
    name: str
    path: Path
    size: int


class LocalFileStore:
    def __init__(self, root: Path, *, max_size: int, quota: int = 0) -> None:
        self.root = root.resolve()
        self.max_size = max_size
        #: Bytes each user's folder may hold; 0 = no limit (CLARA_FILES_QUOTA).
        self.quota = quota

    def user_dir(self, user_id: str) -> Path:
        return self.root / _user_dir_name(user_id)

    def _path(self, user_id: str, name: str) -> Path:
        base = self.user_dir(user_id)
        path = (base / safe_name(name)).resolve()
        if path.parent != base:
            raise FileStoreError("file names may not contain directories")
        return path

    async def save(self, user_id: str, name: str, data: bytes) -> StoredFile:
        """Store ``data`` under ``name`` (or "name (2)" etc. when taken).

        Raises ``FileStoreError`` (``QuotaExceeded`` when the user's space is full)
        with a message for the user; nothing partial is left behind."""
        if len(data) > self.max_size:
            raise FileStoreError(
                f"{name} is {len(data):,} bytes; the limit is {self.max_size:,} (CLARA_MAX_FILE_SIZE)"
            )
        path = self._path(user_id, name)
        try:
            return await asyncio.to_thread(self._save, path, bytes(data))
        except FileStoreError:
            raise
        except OSError as exc:
            log.error("could not store %s for user %s: %s", path.name, user_id, exc)
            raise FileStoreError(
                f"{name} could not be stored ({exc.strerror or exc}); try again later"
            ) from exc

    def _save(self, path: Path, data: bytes) -> StoredFile:
        folder = path.parent
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _folder_lock(folder):
            if self.quota:
                used = self._usage(folder)
                if used + len(data) > self.quota:
                    raise QuotaExceeded(
                        f"{path.name} was not saved: your stored files take {human_size(used)} "
                        f"of the {human_size(self.quota)} each person may keep, and this file "
                        f"needs {human_size(len(data))}. Ask the bot's operator for more space "
                        "(CLARA_FILES_QUOTA); /clara forget deletes all your files, along with "
                        "everything else Clara keeps about you."
                    )
            tmp = folder / f"{_TEMP_PREFIX}{uuid.uuid4().hex}{_TEMP_SUFFIX}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    view = memoryview(data)
                    while view:  # os.write may write less than asked
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
                final = self._claim(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        return StoredFile(final.name, final, len(data))

    @staticmethod
    def _claim(tmp: Path, path: Path) -> Path:
        """Give ``tmp`` the first free name from ``path`` on; never replaces a file.

        ``os.link`` fails if the name exists, so picking the name and publishing the
        complete file are one atomic step (other processes writing here included)."""
        stem, suffix, n = path.stem, path.suffix, 2
        candidate = path
        while True:
            try:
                os.link(tmp, candidate)
                return candidate
            except FileExistsError:
                pass
            except OSError as exc:
                if exc.errno not in _NO_LINKS:
                    raise
                # No hard links here: reserve the name exclusively, then move the
                # complete file onto the reservation (rename is atomic).
                try:
                    os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                except FileExistsError:
                    pass
                else:
                    os.replace(tmp, candidate)
                    return candidate
            candidate = path.with_name(f"{stem} ({n}){suffix}")
            n += 1

    @staticmethod
    def _usage(folder: Path) -> int:
        total = 0
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue  # removed while we looked
        return total

    async def usage(self, user_id: str) -> int:
        """Bytes the user's stored files take."""
        base = self.user_dir(user_id)
        return await asyncio.to_thread(lambda: self._usage(base) if base.is_dir() else 0)

    async def list(self, user_id: str) -> list[StoredFile]:
        base = self.user_dir(user_id)
        return await asyncio.to_thread(self._list, base)

    @staticmethod
    def _list(base: Path) -> list[StoredFile]:
        if not base.is_dir():
            return []
        files = []
        with os.scandir(base) as entries:
            for entry in entries:
                try:
                    # Links are not files Clara stored: never listed, never followed.
                    if _is_temp(entry.name) or not entry.is_file(follow_symlinks=False):
                        continue
                    size = entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
                files.append(StoredFile(entry.name, base / entry.name, size))
        return sorted(files, key=lambda f: f.name)

    # -- one stored file, by the name the user sees ----------------------------
    #
    # The name comes from the model, so it is untrusted: it may not contain a
    # separator, and the file is opened relative to the user's folder (itself
    # opened without following a link) with O_NOFOLLOW, so neither ".." nor a
    # link planted in the folder can lead anywhere else.

    async def info(self, user_id: str, name: str) -> StoredFile:
        """The stored file ``name`` (as listed, or as it was saved); FileStoreError if none."""
        base = self.user_dir(user_id)
        return await self._io(name, self._find, base, name, None)

    async def read(
        self, user_id: str, name: str, *, max_bytes: int | None = None
    ) -> tuple[StoredFile, bytes]:
        """The file and its bytes; FileStoreError if it is missing or over ``max_bytes``."""
        base = self.user_dir(user_id)
        out: list[bytes] = []
        found = await self._io(name, self._find, base, name, out, max_bytes)
        return found, out[0]

    async def delete(self, user_id: str, name: str) -> StoredFile:
        """Delete one stored file; return what was deleted."""
        base = self.user_dir(user_id)
        return await self._io(name, self._delete, base, name)

    @staticmethod
    async def _io(name: str, fn: Callable[..., StoredFile], *args: Any) -> StoredFile:
        """Run ``fn`` in a worker thread; an OS failure becomes a FileStoreError."""
        try:
            return await asyncio.to_thread(fn, *args)
        except FileStoreError:
            raise
        except OSError as exc:
            log.warning("stored file %r: %s", name, exc)
            raise FileStoreError(
                f"{name!r} could not be used ({exc.strerror or exc}); check the name with "
                "list_local_files, or try again later"
            ) from exc

    @staticmethod
    def _candidates(name: str) -> list[str]:
        """Names ``name`` may be stored under: itself when it is a plain entry name
        (listed names such as "notes (2).txt" are not safe_name's fixed points),
        else what ``save`` would have made of it."""
        names = []
        if (
            name
            and not {"/", "\\", "\0"} & set(name)
            and not name.startswith(".")  # "..", hidden and temporary files
        ):
            names.append(name)
        clean = safe_name(name)
        if clean not in names:
            names.append(clean)
        return names

    @staticmethod
    def _open_base(base: Path, name: str) -> int:
        try:
            return os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise FileStoreError(_missing(name)) from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                log.error("file folder %s is not a plain directory; refusing to use it", base)
                raise FileStoreError(
                    "your file folder cannot be used right now; ask the bot's operator to check it"
                ) from None
            raise

    @classmethod
    def _find(
        cls, base: Path, name: str, out: list[bytes] | None, max_bytes: int | None = None
    ) -> StoredFile:
        dfd = cls._open_base(base, name)
        try:
            for candidate in cls._candidates(name):
                try:
                    fd = os.open(candidate, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    if exc.errno == errno.ELOOP:
                        raise FileStoreError(_not_a_file(name)) from None
                    raise
                try:
                    st = os.fstat(fd)
                    if not stat.S_ISREG(st.st_mode):  # a folder, FIFO or device
                        raise FileStoreError(_not_a_file(name))
                    if max_bytes is not None and st.st_size > max_bytes:
                        raise FileStoreError(
                            f"{candidate} is {human_size(st.st_size)}, more than the "
                            f"{human_size(max_bytes)} allowed here"
                        )
                    if out is not None:
                        chunks = []
                        while chunk := os.read(fd, 1 << 20):
                            chunks.append(chunk)
                        out.append(b"".join(chunks))
                    return StoredFile(candidate, base / candidate, st.st_size)
                finally:
                    os.close(fd)
            raise FileStoreError(_missing(name))
        finally:
            os.close(dfd)

    @classmethod
    def _delete(cls, base: Path, name: str) -> StoredFile:
        dfd = cls._open_base(base, name)
        try:
            for candidate in cls._candidates(name):
                try:
                    st = os.stat(candidate, dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    raise FileStoreError(_not_a_file(name))
                try:
                    os.unlink(candidate, dir_fd=dfd)
                except FileNotFoundError:
                    continue  # deleted meanwhile
                return StoredFile(candidate, base / candidate, st.st_size)
            raise FileStoreError(_missing(name))
        finally:
            os.close(dfd)

    async def delete_user_data(self, user_id: str) -> int:
        base = self.user_dir(user_id)

        def delete() -> int:
            if not base.exists():
                return 0
            count = sum(1 for p in base.iterdir() if p.is_file() and not _is_temp(p.name))
            shutil.rmtree(base)
            return count

        return await asyncio.to_thread(delete)
