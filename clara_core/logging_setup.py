"""Logging with secret redaction on every handler.

Secrets must never reach a log file, the terminal or (later) the Discord log
channel.  The filter scrubs the configured secret values verbatim plus the
shapes secrets usually have (URL passwords, Discord bot tokens, API keys), so
an exception message that embeds a DSN is safe too.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from collections.abc import Iterable
from pathlib import Path

_PATTERNS = [
    # scheme://user:password@host -> scheme://user:***@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/\s@]*:)([^@\s]+)(@)", re.I), r"\1***\3"),
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
]


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


def configure_logging(
    level: str = "INFO", *, secrets: Iterable[str] = (), logfile: Path | None = None
) -> Redactor:
    """Install one handler on the root logger (stderr, or a rotating file)."""
    redactor = Redactor(secrets)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    if logfile is not None:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            logfile, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8"
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter(redactor))
    root.addHandler(handler)
    root.setLevel(level)
    # Chatty libraries stay at WARNING unless we debug.
    for name in ("discord", "alembic", "asyncio", "aiohttp.access"):
        logging.getLogger(name).setLevel(level if level == "DEBUG" else "WARNING")
    logging.getLogger("discord.client").setLevel("WARNING")
    return redactor
