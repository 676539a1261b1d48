"""Clara's exception tree.

One root, ``ClaraError``; its families are named for *who can act on them*:

- ``ConfigError``: the operator fixes the environment / ``.env`` (exit code 2).
  ``DataDirError`` (CLARA_DATA_DIR unusable) and ``StorageLoginError`` (a server
  refused Clara's credentials or names no such database) are configuration
  problems too: retrying cannot fix them, the operator can.
- ``StorageError``: a database or cache is unreachable or misbehaving; Clara
  degrades and retries, the operator may need to look at the server.
- ``EmbeddedServerError``: the embedded Postgres/Redis could not start; the
  message says what blocked it (permissions, ports, a foreign process).
- ``DaemonError``: pidfile / process control problems for ``--daemon`` & co.

Packages below ``clara_core`` (storage/, sandbox/, tools/) subclass these rather
than inventing unrelated roots, so a caller can always ``except ClaraError``.
"""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """An error for an operator's log line: its type and the first line of its
    message (at most 200 characters), the first error of an ExceptionGroup."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


class ClaraError(Exception):
    """Root of every error Clara raises on purpose."""


class ConfigError(ClaraError):
    """Configuration is invalid or incomplete. ``problems`` lists every issue."""

    exit_code = 2

    def __init__(self, problems: list[str], *, headline: str | None = None) -> None:
        self.problems = list(problems)
        self.headline = headline or (
            f"Clara's configuration has {len(self.problems)} "
            f"problem{'s' if len(self.problems) != 1 else ''}:"
        )
        super().__init__(self.render())

    def render(self) -> str:
        lines = [self.headline]
        lines += [f"  - {p}" for p in self.problems]
        lines.append(
            "Set these in the environment or in .env (see .env.example), then start again."
        )
        return "\n".join(lines)


class DataDirError(ConfigError):
    """CLARA_DATA_DIR (or another directory Clara writes to) cannot be used."""

    def __init__(self, problem: str) -> None:
        super().__init__([problem], headline="Clara cannot use its data directory:")


class StorageError(ClaraError):
    """A storage backend (Postgres, Redis) failed."""


class StorageLoginError(ConfigError, StorageError):
    """A server answered but refused the login (password, role, database): fail fast.

    Unlike an outage, waiting does not help, so start-up stops at once with
    the server's reason instead of retrying for CLARA_STARTUP_TIMEOUT.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems, headline="Clara's storage servers refused the login:")


class EmbeddedServerError(StorageError):
    """The embedded Postgres or Redis server could not be started or stopped."""


class MigrationError(StorageError):
    """The database schema could not be brought to the expected revision."""


class DaemonError(ClaraError):
    """Daemon control (pidfile, signals) failed."""
