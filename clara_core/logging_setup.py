"""Logging with secret redaction on every handler.

Secrets must never reach a log file, the terminal or (later) the Discord log
channel.  The filter scrubs the configured secret values verbatim plus the
shapes secrets usually have (URL passwords, Discord bot tokens, API keys), so
an exception message that embeds a DSN is safe too.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import re
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

# Query parameter names that carry credentials (?api_key=, &access_token=, &sig=, ...).
_SECRET_PARAM = (
    r"[a-z0-9_.-]*(?:key|token|secret|passw(?:or)?d|pwd|sig(?:nature)?|auth|credential)[a-z0-9_.-]*"
)
_SECRET_QUERY = re.compile(rf"([?&;]{_SECRET_PARAM}=)[^&#\s]+", re.I)

_PATTERNS = [
    # scheme://user:password@host -> scheme://user:***@host.  Not host:PORT/path@x
    # (https://host:8443/users/@me is no password); a password may hold "/", so only
    # a port-shaped start is excluded.
    (
        re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/\s@]*:)(?!\d{1,5}(?:/|$))([^@\s]+)(@)", re.I),
        r"\1***\3",
    ),
    # Discord bot tokens: base64 id . timestamp . hmac
    (
        re.compile(r"\b[MNO][A-Za-z\d_-]{23,27}\.[A-Za-z\d_-]{6}\.[A-Za-z\d_-]{27,}\b"),
        "[redacted-token]",
    ),
    # Common API key prefixes (OpenAI/Anthropic/OpenRouter/GitHub/Tavily)
    (
        re.compile(r"\b(sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|tvly-[A-Za-z0-9]{16,})\b"),
        "[redacted-key]",
    ),
    (re.compile(r"(Authorization:\s*(?:Bot|Bearer)\s+)\S+", re.I), r"\1[redacted]"),
    # ...?api_key=SECRET&... -> ...?api_key=***&...
    (_SECRET_QUERY, r"\1***"),
]


def url_secrets(url: str) -> list[str]:
    """The secret parts of a URL (userinfo, secret-looking query values), for a ``Redactor``.

    Given as configured secrets they are scrubbed wherever they turn up, e.g.
    inside an HTTP library's error message, not only where the URL is whole.
    """
    try:
        parts = urlsplit(url)
        # A user name beside a password is not secret; alone (https://TOKEN@host) it is.
        found = [parts.password] if parts.password else [parts.username]
        found += [v for k, v in parse_qsl(parts.query) if re.fullmatch(_SECRET_PARAM, k, re.I)]
    except ValueError:
        return []
    out: list[str] = []
    for value in found:
        if value:
            out += [value, unquote(value)]
    return out


def redact_url(url: str) -> str:
    """A URL safe to print: userinfo replaced by ``***``, secret query values masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = _SECRET_QUERY.sub(r"\1***", "?" + parts.query)[1:] if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        for pattern, repl in _PATTERNS:
            text = pattern.sub(repl, text)
        return text


class RedactingFilter(logging.Filter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self.redactor(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        return True


FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class _StdioRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log that also keeps file descriptors 1 and 2 on the *current* file.

    A daemon's stdout/stderr are the log file's descriptors (``daemonize``); after
    a rotation they would keep writing to ``clara.log.1``.  Whatever still writes to
    the raw descriptors (C extensions, faulthandler) follows the rotation this way;
    Python-level writes go through ``_LogWriter`` and the redacting filter.
    """

    def _open(self):  # type: ignore[no-untyped-def]
        stream = super()._open()
        for fd in (1, 2):
            os.dup2(stream.fileno(), fd)
        return stream


class _LogWriter(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` replacement: each line becomes a redacted log record."""

    def __init__(self, logger: logging.Logger, level: int, fd: int) -> None:
        super().__init__()
        self._logger = logger
        self._level = level
        self._fd = fd
        self._buffer = ""
        self._lock = threading.Lock()  # threads print too; keep their lines whole
        self._busy = threading.local()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def write(self, text: str) -> int:  # type: ignore[override]
        if getattr(self._busy, "on", False):
            # Logging itself reports a failure to stderr: don't loop, write it raw.
            os.write(self._fd, text.encode(errors="replace"))
            return len(text)
        with self._lock:
            self._buffer += text
            *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def _emit(self, line: str) -> None:
        if not line.strip():
            return
        self._busy.on = True
        try:
            self._logger.log(self._level, "%s", line)
        finally:
            self._busy.on = False

    def flush(self) -> None:
        with self._lock:
            line, self._buffer = self._buffer, ""
        self._emit(line)

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


def _log_uncaught(exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
    # One record with the whole traceback, redacted like every other.
    logging.getLogger("clara.crash").critical("uncaught exception", exc_info=(exc_type, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    logging.getLogger("clara.crash").critical(
        "uncaught exception in thread %s",
        args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
    )


def _restore_stdio() -> None:
    if isinstance(sys.stdout, _LogWriter):
        sys.stdout = sys.__stdout__
    if isinstance(sys.stderr, _LogWriter):
        sys.stderr = sys.__stderr__
    if sys.excepthook is _log_uncaught:
        sys.excepthook = sys.__excepthook__
    if threading.excepthook is _log_uncaught_in_thread:
        threading.excepthook = threading.__excepthook__


def configure_logging(
    level: str = "INFO",
    *,
    secrets: Iterable[str] = (),
    logfile: Path | None = None,
    capture_stdio: bool = False,
    max_bytes: int = 10 * 1024 * 1024,
    backup_count: int = 5,
) -> Redactor:
    """Install one handler on the root logger (stderr, or a rotating file).

    ``capture_stdio`` (with ``logfile``; the daemon): stdout, stderr and uncaught
    exceptions go through the same redacting handler into the current log file,
    also after it rotates, instead of raw into whichever file fd 2 once was.
    """
    redactor = Redactor(secrets)
    root = logging.getLogger()
    _restore_stdio()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    if logfile is not None:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        cls = _StdioRotatingFileHandler if capture_stdio else logging.handlers.RotatingFileHandler
        handler: logging.Handler = cls(
            logfile, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter(redactor))
    root.addHandler(handler)
    root.setLevel(level)
    if logfile is not None and capture_stdio:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout = _LogWriter(logging.getLogger("stdout"), logging.INFO, 1)  # type: ignore[assignment]
        sys.stderr = _LogWriter(logging.getLogger("stderr"), logging.ERROR, 2)  # type: ignore[assignment]
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread
    # Chatty libraries stay at WARNING unless we debug.
    for name in ("discord", "alembic", "asyncio", "aiohttp.access"):
        logging.getLogger(name).setLevel(level if level == "DEBUG" else "WARNING")
    logging.getLogger("discord.client").setLevel("WARNING")
    return redactor
