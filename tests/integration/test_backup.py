"""Backups (issue 16): pg_dump to a directory or S3, retention, respawn protection, restore.

Real parts only: the session's PostgreSQL (embedded, or TEST_DATABASE_URL), the
bundled pg_dump/pg_restore, and moto's S3 server on loopback (tests/fakes/fake_s3.py).
A backup's age is the time in its name (clara_YYYYMMDD_HHMMSS.dump), so retention
tests create backups whose names carry old times; the service's clock is injected.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from clara_core.backup.cli import make_backups
from clara_core.backup.errors import BackupError, RestoreRefused
from clara_core.backup.names import BackupEntry, backup_name, expired
from clara_core.backup.pgtools import pg_target
from clara_core.backup.service import Backups
from clara_core.config import load_settings
from storage.backup_checks import table_row_counts
from storage.db import create_engine
from tests.fakes.fake_s3 import FakeS3, closed_port_url, fake_s3_fixture  # noqa: F401
from tests.support.clara_process import clara_env, run_clara
from tests.support.servers import _conninfo

T0 = datetime(2026, 12, 5, 3, 0, 0, tzinfo=UTC)

SEED = """
INSERT INTO projects (id, owner_id, name)
    SELECT gen_random_uuid(), 'user' || g, 'project ' || g FROM generate_series(1, 4) g;
INSERT INTO sessions (id, project_id, user_id, context_id)
    SELECT gen_random_uuid(), p.id, p.owner_id, 'dm-' || p.owner_id FROM projects p;
INSERT INTO messages (session_id, user_id, role, content)
    SELECT s.id, s.user_id, 'user', 'message ' || g || ' with ünïcode ✓'
    FROM sessions s, generate_series(1, 25) g;
INSERT INTO memories (id, user_id, memory_type, content, embedding)
    SELECT gen_random_uuid(), 'user' || (g % 4), 'semantic', 'fact number ' || g,
           (SELECT array_agg(random())::real[] FROM generate_series(1, 384))::vector
    FROM generate_series(1, 300) g;
INSERT INTO guild_settings (guild_id) VALUES ('111'), ('222');
INSERT INTO user_preferences (user_id) VALUES ('user1'), ('user2'), ('user3');
INSERT INTO companion_state (scope, levels, at)
    VALUES ('channel:1', '{"dopamine": 0.4}', now());
"""


def _clock(at: list[datetime]):
    return lambda: at[0]


async def _sql(database_url: str, statement: str) -> None:
    conninfo = _conninfo(database_url, database_url.split("/")[-1].split("?")[0])
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(statement)


async def _seed(database_url: str) -> None:
    await _sql(database_url, SEED)


async def _empty_all_tables(database_url: str) -> None:
    """What an operator's mistake leaves: Clara's schema, every row gone."""
    await _sql(
        database_url,
        "DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables "
        "WHERE schemaname = 'public' AND tablename <> 'alembic_version' LOOP "
        "EXECUTE format('TRUNCATE %I CASCADE', t); END LOOP; END $$;",
    )


async def _counts(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url, pool_size=1)
    try:
        return await table_row_counts(engine)
    finally:
        await engine.dispose()


def _backups(database_url: str, tmp_path: Path, now: list[datetime], **settings) -> Backups:
    s = load_settings(
        env_file=None,
        database_url=database_url,
        backup_dir=tmp_path / "backups",
        db_retry_delay=0.01,
        **settings,
    )
    backups = make_backups(s)
    backups.clock = _clock(now)
    return backups


async def _run(backups: Backups, database_url: str, *, force: bool = False):
    engine = create_engine(database_url, pool_size=1)
    try:
        return await backups.run(database_url, engine, force=force)
    finally:
        await engine.dispose()


async def _restore(backups: Backups, name: str, database_url: str):
    engine = create_engine(database_url, pool_size=1)
    try:
        entry = await backups.find(name)
        await backups.check_empty(engine, "under test")
        return await backups.restore(entry, database_url, engine)
    finally:
        await engine.dispose()


# -- round trips ---------------------------------------------------------------------


async def test_local_backup_then_emptied_database_restores_every_row(database_url, tmp_path):
    await _seed(database_url)
    before = await _counts(database_url)
    assert before["public.memories"] == 300 and before["public.messages"] == 100

    backups = _backups(database_url, tmp_path, [T0])
    result = await _run(backups, database_url)
    assert result.entry is not None and result.entry.name == "clara_20261205_030000.dump"
    stored = tmp_path / "backups" / result.entry.name
    # pg_dump's custom format ("PGDMP" magic), readable by this user only.
    assert stored.read_bytes()[:5] == b"PGDMP"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in (tmp_path / "backups").iterdir()] == [stored.name]  # no leftovers

    await _empty_all_tables(database_url)
    assert sum((await _counts(database_url)).values()) == 1  # alembic_version only

    status = await _restore(backups, "latest", database_url)
    assert await _counts(database_url) == before
    assert status.current == status.head and not status.pending


async def test_s3_backup_restores_into_a_new_database(
    database_url, empty_database_url, tmp_path, fake_s3: FakeS3
):
    await _seed(database_url)
    before = await _counts(database_url)
    bucket = fake_s3.create_bucket("clara-backups")
    s3 = fake_s3.settings(bucket)
    backups = _backups(
        database_url,
        tmp_path,
        [T0],
        s3_bucket=s3["S3_BUCKET"],
        s3_endpoint_url=s3["S3_ENDPOINT_URL"],
        s3_access_key=s3["S3_ACCESS_KEY"],
        s3_secret_key=s3["S3_SECRET_KEY"],
    )
    result = await _run(backups, database_url)
    assert result.entry is not None
    assert fake_s3.keys(bucket) == ["backups/clara/clara_20261205_030000.dump"]
    assert result.entry.location == f"s3://{bucket}/backups/clara/clara_20261205_030000.dump"
    # Nothing stays behind locally: the dump went up and its scratch file away.
    assert not any((tmp_path / "backups").iterdir())

    # A database that never saw Clara's schema: pg_restore creates everything.
    status = await _restore(backups, result.entry.name, empty_database_url)
    assert await _counts(empty_database_url) == before
    assert status.current == status.head
    assert not any((tmp_path / "backups").iterdir())  # the download is removed too


# -- retention ---------------------------------------------------------------------


async def test_retention_deletes_only_old_clara_backups_in_s3(database_url, tmp_path, fake_s3):
    bucket = fake_s3.create_bucket("clara-backups")
    old = [backup_name(T0 - timedelta(days=d)) for d in (30, 8, 7.5)]
    young = [backup_name(T0 - timedelta(days=d)) for d in (6.9, 1.5)]
    # Not Clara's backups: another prefix, another name, a non-date in the pattern.
    foreign = [
        "backups/other/" + old[0],
        "backups/clara/notes.txt",
        "backups/clara/clara_20200101_000000.sql.gz",
        "backups/clara/clara_20201399_000000.dump",
    ]
    for key in ["backups/clara/" + n for n in old + young] + foreign:
        fake_s3.put(bucket, key, b"PGDMP not really")
    s3 = fake_s3.settings(bucket)
    backups = _backups(
        database_url,
        tmp_path,
        [T0],
        s3_bucket=bucket,
        s3_endpoint_url=s3["S3_ENDPOINT_URL"],
        s3_access_key=s3["S3_ACCESS_KEY"],
        s3_secret_key=s3["S3_SECRET_KEY"],
        backup_retention_days=7,
        respawn_protection_hours=0,
    )
    result = await _run(backups, database_url)
    assert sorted(e.name for e in result.deleted) == sorted(old)
    assert fake_s3.keys(bucket) == sorted(
        ["backups/clara/" + n for n in [*young, result.entry.name]] + foreign
    )


async def test_retention_in_backup_dir_keeps_young_and_foreign_files(database_url, tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    old = backup_name(T0 - timedelta(days=3))
    young = backup_name(T0 - timedelta(hours=30))
    for name in (old, young, "clara_notes.txt", "mine.dump"):
        (folder / name).write_bytes(b"x")
    backups = _backups(
        database_url, tmp_path, [T0], backup_retention_days=2, respawn_protection_hours=0
    )
    result = await _run(backups, database_url)
    assert [e.name for e in result.deleted] == [old]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [young, result.entry.name, "clara_notes.txt", "mine.dump"]
    )


def test_retention_never_deletes_the_newest_backup():
    # E.g. backups stopped for weeks and this is the only one left: it stays.
    entries = [
        BackupEntry(backup_name(T0 - timedelta(days=d)), T0 - timedelta(days=d), 1, "x")
        for d in (40, 30, 20)
    ]
    assert [e.name for e in expired(entries, T0, 7)] == [entries[0].name, entries[1].name]


# -- respawn protection ----------------------------------------------------------------


async def test_a_second_run_inside_the_protection_window_is_skipped_unless_forced(
    database_url, tmp_path
):
    now = [T0]
    backups = _backups(database_url, tmp_path, now, respawn_protection_hours=23)
    first = await _run(backups, database_url)
    assert first.entry is not None

    now[0] = T0 + timedelta(hours=5)
    skipped = await _run(backups, database_url)
    assert skipped.entry is None
    assert "RESPAWN_PROTECTION_HOURS=23" in skipped.skipped and "--force" in skipped.skipped
    assert len(await backups.list()) == 1

    forced = await _run(backups, database_url, force=True)
    assert forced.entry is not None and forced.entry.name == "clara_20261205_080000.dump"

    now[0] = T0 + timedelta(hours=5 + 23, seconds=1)
    later = await _run(backups, database_url)
    assert later.entry is not None
    assert len(await backups.list()) == 3


# -- refusals and outages ----------------------------------------------------------------


async def test_restore_refuses_a_database_that_holds_data(database_url, tmp_path):
    await _seed(database_url)
    backups = _backups(database_url, tmp_path, [T0])
    await _run(backups, database_url)
    before = await _counts(database_url)
    with pytest.raises(RestoreRefused) as refused:
        await _restore(backups, "latest", database_url)
    message = str(refused.value)
    assert "not empty" in message and "public.memories" in message
    assert "DROP DATABASE" in message and "CLARA_DATA_DIR/postgres" in message  # how to empty it
    assert await _counts(database_url) == before


async def test_s3_down_is_retried_then_fails_with_a_clear_error(database_url, tmp_path):
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    backups = _backups(
        database_url,
        tmp_path,
        [T0],
        s3_bucket="clara-backups",
        s3_endpoint_url=closed_port_url(),
        s3_access_key="k",
        s3_secret_key="s",
        db_retry_attempts=3,
    )
    backups.sleep = sleep
    with pytest.raises(BackupError) as failed:
        await _run(backups, database_url)
    assert "failed after 3 tries" in str(failed.value)
    assert "S3 listing the backups" in str(failed.value)
    assert sleeps == [0.01, 0.02]  # DB_RETRY_DELAY, doubling


async def test_a_missing_bucket_fails_at_once_and_says_what_to_do(database_url, tmp_path, fake_s3):
    s3 = fake_s3.settings("no-such-bucket")
    backups = _backups(
        database_url,
        tmp_path,
        [T0],
        s3_bucket="no-such-bucket",
        s3_endpoint_url=s3["S3_ENDPOINT_URL"],
        s3_access_key=s3["S3_ACCESS_KEY"],
        s3_secret_key=s3["S3_SECRET_KEY"],
    )

    async def no_sleep(seconds: float) -> None:
        raise AssertionError("a missing bucket is not an outage: no retry")

    backups.sleep = no_sleep
    with pytest.raises(BackupError, match="create it or fix S3_BUCKET"):
        await _run(backups, database_url)


def test_the_password_goes_to_a_passfile_not_the_command_line():
    target = pg_target(
        "postgresql+psycopg://clara:p%40ss:w0rd@db.example:5433/clara?sslmode=require"
    )
    assert target.uri == "postgresql://clara@db.example:5433/clara?sslmode=require"
    assert target.password == "p@ss:w0rd"
    embedded = pg_target("postgresql+psycopg://postgres@/clara?host=/tmp/run")
    assert embedded == type(embedded)(
        uri="postgresql://postgres@/clara?host=/tmp/run", password=None
    )


# -- the command, as a real process ---------------------------------------------------------


def _cli_env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    return clara_env(
        tmp_path,
        DATABASE_URL=database_url,
        BACKUP_DIR=str(tmp_path / "backups"),
        DB_RETRY_DELAY="0.01",
        **extra,
    )


async def test_cli_run_list_restore(database_url, tmp_path):
    await _seed(database_url)
    before = await _counts(database_url)
    env = _cli_env(tmp_path, database_url)

    made = run_clara("backup", "run", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "backup stored:" in made.stdout
    [stored] = list((tmp_path / "backups").iterdir())

    again = run_clara("backup", env=env, cwd=tmp_path)  # run is the default action
    assert again.returncode == 0, again.stderr
    assert "backup skipped" in again.stdout and "--force" in again.stdout

    listed = run_clara("backup", "list", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert stored.name in listed.stdout and "KiB" in listed.stdout

    refused = run_clara("backup", "restore", "--yes", env=env, cwd=tmp_path)
    assert refused.returncode == 2
    assert "not empty" in refused.stderr and "Traceback" not in refused.stderr

    await _empty_all_tables(database_url)
    # No terminal and no --yes: nobody confirmed, nothing happens.
    unconfirmed = run_clara("backup", "restore", env=env, cwd=tmp_path)
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    assert sum((await _counts(database_url)).values()) == 1

    restored = run_clara("backup", "restore", stored.name, "--yes", env=env, cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert f"restored {stored.name}" in restored.stdout
    assert await _counts(database_url) == before


async def test_cli_s3_outage_exits_1_without_printing_secrets(database_url, tmp_path):
    env = _cli_env(
        tmp_path,
        database_url,
        S3_BUCKET="clara-backups",
        S3_ENDPOINT_URL=closed_port_url(),
        S3_ACCESS_KEY="AKIAEXAMPLEKEY0001",
        S3_SECRET_KEY="very-secret-s3-key-123",
        DB_RETRY_ATTEMPTS="2",
    )
    out = run_clara("backup", "run", env=env, cwd=tmp_path)
    assert out.returncode == 1
    assert "failed after 2 tries" in out.stderr and "Traceback" not in out.stderr
    assert "very-secret-s3-key-123" not in out.stdout + out.stderr


async def test_cli_database_outage_is_retried_then_exits_1(tmp_path):
    port = closed_port_url().rsplit(":", 1)[1]
    env = _cli_env(
        tmp_path,
        f"postgresql://clara:db-secret-pw@127.0.0.1:{port}/clara",
        DB_RETRY_ATTEMPTS="2",
    )
    out = run_clara("backup", "run", env=env, cwd=tmp_path)
    assert out.returncode == 1
    assert "connecting to the database failed after 2 tries" in out.stderr
    assert "db-secret-pw" not in out.stdout + out.stderr


def test_cli_embedded_server_backup_and_restore_into_a_new_cluster(tmp_path):
    """The documented way to replace the embedded database: move CLARA_DATA_DIR/postgres
    away, restore into the fresh (empty) cluster the command creates."""
    env = clara_env(tmp_path, DB_RETRY_DELAY="0.01")
    data = tmp_path / "data"
    migrated = run_clara("migrate", "upgrade", env=env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    head = next(line for line in migrated.stdout.splitlines() if line.startswith("head:"))

    made = run_clara("backup", "run", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    [stored] = list((data / "backups").iterdir())
    assert stored.read_bytes()[:5] == b"PGDMP"

    (data / "postgres").rename(tmp_path / "old-postgres")
    restored = run_clara("backup", "restore", "latest", "--yes", env=env, cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert f"restored {stored.name}" in restored.stdout

    status = run_clara("migrate", "status", env=env, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert head.split()[-1] in status.stdout and "pending: none" in status.stdout
    assert "(empty database)" not in status.stdout


async def test_the_scheduled_job_backs_up_once_then_respawn_protection_skips(
    database_url, tmp_path
):
    import asyncio

    from clara_core.backup.schedule import BackupSchedule

    backups = _backups(database_url, tmp_path, [T0], respawn_protection_hours=23)
    engine = create_engine(database_url, pool_size=1)
    schedule = BackupSchedule(
        backups, database_url, engine, interval_hours=1 / 3600, first_delay=timedelta(0)
    )
    schedule.start()
    try:
        for _ in range(200):  # the first run right away, then every second
            if list((tmp_path / "backups").glob("clara_*.dump")):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.5)  # two more ticks: inside the protection window, skipped
        assert [e.name for e in await backups.list()] == ["clara_20261205_030000.dump"]
    finally:
        await schedule.stop()
        await engine.dispose()
    assert schedule.scheduler is None


async def test_cli_restore_asks_on_a_terminal_and_no_means_nothing_changes(database_url, tmp_path):
    import os
    import pty
    import subprocess
    import sys

    from tests.support.clara_process import ENTRY

    await _seed(database_url)
    before = await _counts(database_url)
    env = _cli_env(tmp_path, database_url)
    assert run_clara("backup", "run", env=env, cwd=tmp_path).returncode == 0
    await _empty_all_tables(database_url)

    def restore_answering(answer: bytes) -> subprocess.CompletedProcess[str]:
        master, slave = pty.openpty()  # a real terminal on stdin: the prompt is shown
        try:
            os.write(master, answer)
            return subprocess.run(
                [sys.executable, str(ENTRY), "backup", "restore"],
                env=env,
                cwd=tmp_path,
                stdin=slave,
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            os.close(slave)
            os.close(master)

    declined = restore_answering(b"n\n")
    assert declined.returncode == 2, declined.stderr
    assert "[y/N]" in declined.stdout and "nothing changed" in declined.stdout
    assert sum((await _counts(database_url)).values()) == 1

    accepted = restore_answering(b"y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert await _counts(database_url) == before


# -- a pg_dump older than the server ---------------------------------------------------


def _pg_dump_major(bin_dir: Path) -> int | None:
    import re
    import subprocess

    pg_dump = bin_dir / "pg_dump"
    if not pg_dump.is_file():
        return None
    out = subprocess.run([str(pg_dump), "--version"], capture_output=True, text=True, timeout=30)
    m = re.search(r"\(PostgreSQL\) (\d+)", out.stdout)
    return int(m.group(1)) if m else None


def _older_pg_dump_dir(than: int) -> Path | None:
    """The bin directory of a real PostgreSQL client older than major ``than`` (Debian
    installs them as /usr/lib/postgresql/N/bin), the newest such."""
    found = []
    for bin_dir in Path("/usr/lib/postgresql").glob("*/bin"):
        major = _pg_dump_major(bin_dir)
        if major is not None and major < than:
            found.append((major, bin_dir))
    return max(found)[1] if found else None


def test_cli_refuses_a_server_newer_than_its_pg_dump(tmp_path):
    """A real pg_dump older than the server (Debian's postgresql-client-15) pointed at
    by BACKUP_PG_BIN_DIR, and a real newer server (the embedded PostgreSQL 18): the
    backup is refused before pg_dump runs, with the setting to change; exit 2."""
    from storage.embedded import postgres_bin_dir

    server_major = _pg_dump_major(postgres_bin_dir())  # the embedded server's own version
    assert server_major is not None
    old_bin = _older_pg_dump_dir(server_major)
    if old_bin is None:
        pytest.skip(
            f"no pg_dump older than PostgreSQL {server_major} in /usr/lib/postgresql "
            "(apt-get install postgresql-client-15; .ci/services.sh installs it)"
        )
    old_major = _pg_dump_major(old_bin)
    env = clara_env(tmp_path, DB_RETRY_DELAY="0.01", BACKUP_PG_BIN_DIR=str(old_bin))
    out = run_clara("backup", "run", env=env, cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert f"the database server is PostgreSQL {server_major}, newer than the pg_dump " in (
        out.stderr
    )
    assert f"pg_dump {old_major} in {old_bin}" in out.stderr
    # What to do: the client tools of the server's version, and the setting naming them.
    assert f"Install PostgreSQL {server_major}'s client tools and set BACKUP_PG_BIN_DIR" in (
        out.stderr
    )
    assert not list((tmp_path / "data" / "backups").glob("clara_*")), "a backup was stored"


class _CountingStore:
    """The real LocalStore, counting the listings the service asks for."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.description = inner.description
        self.listings = 0

    def list(self):
        self.listings += 1
        return self.inner.list()

    def put(self, local, name):
        return self.inner.put(local, name)

    def fetch(self, name, dest):
        return self.inner.fetch(name, dest)

    def delete(self, name):
        return self.inner.delete(name)


async def test_a_run_lists_the_store_once_and_retention_still_applies(database_url, tmp_path):
    from clara_core.backup.stores import LocalStore

    backups = _backups(database_url, tmp_path, [T0], backup_retention_days=7)
    directory = tmp_path / "backups"
    directory.mkdir()
    old, young = backup_name(T0 - timedelta(days=8)), backup_name(T0 - timedelta(days=2))
    for name in (old, young):
        (directory / name).write_bytes(b"PGDMP old")
    store = _CountingStore(LocalStore(directory))
    backups.store = store
    result = await _run(backups, database_url, force=True)
    assert store.listings == 1
    assert [e.name for e in result.deleted] == [old]
    assert sorted(p.name for p in directory.iterdir()) == sorted([young, result.entry.name])


async def test_cli_s3_keys_without_a_bucket_upload_to_the_specs_default_bucket(
    database_url, tmp_path, fake_s3: FakeS3
):
    """S3 keys set, S3_BUCKET forgotten: the spec's default bucket (clara-backups),
    not a silent local folder on the very machine the backup should survive."""
    await _seed(database_url)
    bucket = fake_s3.create_bucket("clara-backups")
    s3 = fake_s3.settings(bucket)
    env = _cli_env(
        tmp_path,
        database_url,
        S3_ENDPOINT_URL=s3["S3_ENDPOINT_URL"],
        S3_ACCESS_KEY=s3["S3_ACCESS_KEY"],
        S3_SECRET_KEY=s3["S3_SECRET_KEY"],
    )
    made = run_clara("backup", "run", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "s3://clara-backups/" in made.stdout, made.stdout
    [key] = fake_s3.keys(bucket)
    assert key.startswith("backups/clara/clara_") and key.endswith(".dump")
    assert not any((tmp_path / "backups").glob("*.dump"))
