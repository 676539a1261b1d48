"""Command line: ``python discord_bot.py [COMMAND] [--daemon|--status|--stop]``.

Commands: run (the default), doctor, migrate, cortex, backup.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from .config import Settings, load_settings, secret_values
from .errors import ClaraError, ConfigError, DaemonError, DataDirError
from .logging_setup import configure_logging

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130  # the shell's convention for "ended by SIGINT"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="discord_bot.py",
        description="Clara, a Discord AI companion. With no command, runs Clara.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--daemon", action="store_true", help="run in the background (pidfile + logfile)"
    )
    mode.add_argument(
        "--status",
        action="store_true",
        help="is Clara running? (exit 0 yes, 1 stale pidfile, 3 no)",
    )
    mode.add_argument(
        "--stop", action="store_true", help="stop a running Clara (SIGTERM, then SIGKILL)"
    )
    mode.add_argument("--console", action="store_true", help="chat with Clara in this terminal")
    p.add_argument("--pidfile", type=Path, help="pidfile (default: CLARA_DATA_DIR/clara.pid)")
    p.add_argument(
        "--logfile", type=Path, help="daemon log file (default: CLARA_DATA_DIR/clara.log)"
    )
    p.add_argument(
        "--stop-timeout", type=float, default=30.0, help="seconds --stop waits before SIGKILL"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run Clara (the default)")
    sub.add_parser("doctor", help="check configuration and every connection")
    sub.add_parser(
        "worker", help="run queued background jobs (consolidation) for CORTEX_WORKER_QUEUE=true"
    )
    mig = sub.add_parser("migrate", help="database migrations (alembic)")
    mig_sub = mig.add_subparsers(dest="migrate_action", metavar="ACTION")
    mig_sub.add_parser("status", help="current and pending revisions (default)")
    up = mig_sub.add_parser("upgrade", help="upgrade to a revision (default head)")
    up.add_argument("revision", nargs="?", default="head")
    down = mig_sub.add_parser("downgrade", help="downgrade to a revision (e.g. -1 or base)")
    down.add_argument("revision")
    from .cortex_cli import add_parser as add_cortex_parser

    add_cortex_parser(sub)
    from .backup.cli import add_parser as add_backup_parser

    add_backup_parser(sub)
    return p


def _data_dir_fallback() -> Path:
    # --status/--stop must work even when the rest of the configuration is broken.
    return Path(os.environ.get("CLARA_DATA_DIR", "data")).resolve()


def _pidfile(args: argparse.Namespace, settings: Settings | None) -> Path:
    if args.pidfile:
        return args.pidfile.resolve()
    data_dir = settings.clara_data_dir if settings else _data_dir_fallback()
    return data_dir / "clara.pid"


def _needs_data_dir(settings: Settings, command: str, args: argparse.Namespace) -> bool:
    """Commands that write under CLARA_DATA_DIR (doctor reports it as a check instead)."""
    if command in ("doctor", "cortex"):
        # cortex validates its own arguments first and creates nothing for a refused
        # command; opening storage reports an unusable directory the same way.
        return False
    if command == "migrate":
        # Only the embedded servers live there; migrating two external ones needs no directory.
        return settings.database_url is None or settings.redis_url is None
    return True


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        # Ctrl-C outside a command's own handling (loading settings, starting up).
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings: Settings | None = load_settings().resolve_paths()
        config_error: ConfigError | None = None
    except ConfigError as exc:
        settings, config_error = None, exc

    from . import daemon

    if args.status:
        code, message = daemon.status(_pidfile(args, settings))
        print(message)
        return code
    if args.stop:
        code, message = daemon.stop(_pidfile(args, settings), timeout=args.stop_timeout)
        print(message, file=sys.stdout if code == 0 else sys.stderr)
        return code

    command = args.command or "run"
    if command == "doctor":
        from .doctor import run_doctor

        configure_logging("WARNING")
        return asyncio.run(run_doctor(settings, config_error))

    if config_error is not None:
        print(config_error.render(), file=sys.stderr)
        return EXIT_CONFIG
    assert settings is not None

    if _needs_data_dir(settings, command, args):
        # Before logging opens a file there and before a daemon forks, so the user
        # reads why in their terminal (exit 2) instead of a traceback.
        from storage.datadir import ensure_writable_dir

        try:
            ensure_writable_dir(settings.clara_data_dir)
            if args.daemon and args.logfile is not None:
                ensure_writable_dir(args.logfile.resolve().parent, setting="--logfile's directory")
        except DataDirError as exc:
            print(exc.render(), file=sys.stderr)
            return EXIT_CONFIG

    if args.console:
        # Logs go to a file so they don't interleave with the conversation.
        configure_logging(
            settings.log_level,
            secrets=secret_values(settings),
            logfile=settings.clara_data_dir / "console.log",
        )
        try:
            return asyncio.run(_console(settings))
        except KeyboardInterrupt:
            # Ctrl-C before the prompt appeared (the chat handles it after that):
            # asyncio.run cancelled the start-up and its finally blocks stopped the
            # servers; only the traceback would be left.
            print("\ninterrupted; Clara stopped", file=sys.stderr)
            return EXIT_INTERRUPTED

    if command == "migrate":
        configure_logging(settings.log_level, secrets=secret_values(settings))
        return asyncio.run(_migrate(settings, args))

    if command == "cortex":
        return _cortex(settings, args)

    if command == "backup":
        return _backup(settings, args)

    if command == "worker":
        return _worker(settings)

    return _run(settings, args)


def configure_daemon_logging(
    settings: Settings, logfile: Path, *, max_bytes: int | None = None
) -> None:
    """The detached daemon's logging (after ``daemonize``).

    stdout, stderr and crash tracebacks go through the redacting handler into the
    *current* log file, also after it rotates: fds 1/2 alone would stay on
    clara.log.1 and write secrets there unredacted.  ``max_bytes``: rotation size.
    """
    configure_logging(
        settings.log_level,
        secrets=secret_values(settings),
        logfile=logfile,
        capture_stdio=True,
        **({"max_bytes": max_bytes} if max_bytes else {}),
    )


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from .daemon import PidFile, StartupPipe, daemonize

    pidfile = PidFile(_pidfile(args, settings))
    pipe: StartupPipe | None = None
    if args.daemon:
        # Refuse before forking, so the user sees it in their terminal.
        if pidfile.is_locked():
            info = pidfile.read()
            print(f"Clara is already running (pid {info.pid if info else '?'})", file=sys.stderr)
            return EXIT_FAILURE
        logfile = (args.logfile or settings.clara_data_dir / "clara.log").resolve()
        pipe = daemonize(logfile)
        configure_daemon_logging(settings, logfile)
    else:
        configure_logging(settings.log_level, secrets=secret_values(settings))
    try:
        pidfile.acquire()
    except DaemonError as exc:
        log.error("%s", exc)
        if pipe:
            pipe.failed(EXIT_FAILURE, str(exc))
        return EXIT_FAILURE
    try:
        code = asyncio.run(_serve(settings, pipe))
    finally:
        pidfile.release()
    return code


async def _serve(settings: Settings, pipe) -> int:
    from .app import Clara

    clara = Clara(settings)
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            log.info("received %s; shutting down gracefully", signal.Signals(signum).name)
            clara.request_stop()
        elif main_task is not None:
            log.warning("second signal; cancelling immediately")
            main_task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await clara.run(on_started=pipe.ready if pipe else None)
        return EXIT_OK
    except ConfigError as exc:
        message = exc.render()
        print(message, file=sys.stderr)
        if pipe:
            pipe.failed(EXIT_CONFIG, message)
        return EXIT_CONFIG
    except ClaraError as exc:
        log.error("%s", exc)
        code = _start_failure_code(exc)
        print(f"Clara could not start: {exc}", file=sys.stderr)
        if pipe:
            pipe.failed(code, f"Clara could not start: {exc}")
        return code
    except asyncio.CancelledError:
        return EXIT_FAILURE


async def _console(settings: Settings) -> int:
    from .app import Clara

    try:
        return await Clara(settings).run_console()
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    except ClaraError as exc:
        print(f"Clara could not start: {exc}", file=sys.stderr)
        return _start_failure_code(exc)


def _start_failure_code(exc: ClaraError) -> int:
    """Exit code for a start-up failure that is not a ``ConfigError``.

    An embedder that does not match the stored memories is only found once the
    database is open, but the operator fixes it in the configuration (or with
    ``cortex reembed``), so it exits 2 like any other configuration problem.
    """
    from .cortex.types import EmbedderMismatch

    return EXIT_CONFIG if isinstance(exc, EmbedderMismatch) else EXIT_FAILURE


def _cortex(settings: Settings, args: argparse.Namespace) -> int:
    from . import cortex_cli

    # Operator output goes to stdout; only warnings (or DEBUG when asked) go to stderr.
    level = "DEBUG" if settings.log_level == "DEBUG" else "WARNING"
    redact = configure_logging(level, secrets=secret_values(settings))
    try:
        return asyncio.run(cortex_cli.run(settings, args, redact))
    except KeyboardInterrupt:
        print("interrupted; running the command again continues where it stopped", file=sys.stderr)
        return EXIT_FAILURE


def _backup(settings: Settings, args: argparse.Namespace) -> int:
    from .backup import cli as backup_cli

    # As for cortex: results on stdout, warnings (retries) on stderr, secrets redacted.
    level = "DEBUG" if settings.log_level == "DEBUG" else "WARNING"
    redact = configure_logging(level, secrets=secret_values(settings))
    try:
        return asyncio.run(backup_cli.run(settings, args, redact))
    except KeyboardInterrupt:
        print("interrupted; nothing half-done is kept, run the command again", file=sys.stderr)
        return EXIT_FAILURE


def _worker(settings: Settings) -> int:
    from .worker import run_worker

    configure_logging(settings.log_level, secrets=secret_values(settings))
    try:
        return asyncio.run(run_worker(settings))
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    except ClaraError as exc:  # storage unreachable past CLARA_STARTUP_TIMEOUT, …
        print(f"worker: {exc}", file=sys.stderr)
        return _start_failure_code(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from storage import migrations
    from storage.services import Storage, wait_until_reachable

    s = settings
    try:
        storage = await Storage.open(
            s.clara_data_dir,
            database_url=s.database_url.get_secret_value() if s.database_url else None,
            redis_url=s.redis_url.get_secret_value() if s.redis_url else None,
            attach=True,
        )
        try:
            # As at start: wait out an outage, stop at once on a refused login.
            await wait_until_reachable(storage, timeout=s.clara_startup_timeout)
        except BaseException:
            await storage.close()
            raise
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    except ClaraError as exc:
        print(f"migration failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        action = args.migrate_action or "status"
        if action == "upgrade":
            st = await migrations.upgrade(storage.engine, args.revision)
        elif action == "downgrade":
            st = await migrations.downgrade(storage.engine, args.revision)
        else:
            st = await migrations.status(storage.engine)
        print(f"current: {st.current or '(empty database)'}")
        print(f"head:    {st.head}")
        print("pending: " + (", ".join(st.pending) if st.pending else "none"))
        return EXIT_OK
    except ClaraError as exc:
        print(f"migration failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        await storage.close()
