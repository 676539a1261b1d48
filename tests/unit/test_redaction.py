"""Secrets never reach a log line, whatever shape they arrive in."""

from __future__ import annotations

import logging

from clara_core.logging_setup import RedactingFilter, Redactor


def _emit(redactor: Redactor, msg: str, *args, exc: BaseException | None = None) -> str:
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, msg, args, None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    RedactingFilter(redactor).filter(record)
    return logging.Formatter("%(message)s").format(record)


def test_configured_secrets_and_common_shapes_are_scrubbed():
    r = Redactor(["my-very-secret-value"])
    token = "MTA5ODc2NTQzMjEwOTg3NjU0.GaBcDe.abcdefghijklmnopqrstuvwxyz0123"
    out = _emit(
        r,
        "key=%s dsn=%s token=%s openai=%s hdr=%s",
        "my-very-secret-value",
        "postgresql://clara:pa55word@db:5432/clara",
        token,
        "sk-proj-abcdefghijklmnopqrstuv",
        "Authorization: Bot abc.def.ghi",
    )
    for leaked in (
        "my-very-secret-value",
        "pa55word",
        token,
        "sk-proj-abcdefghijklmnopqrstuv",
        "abc.def.ghi",
    ):
        assert leaked not in out
    assert "postgresql://clara:***@db:5432/clara" in out


def test_tracebacks_are_scrubbed_too():
    r = Redactor(["topsecret-123"])
    try:
        raise RuntimeError("connect failed with password topsecret-123")
    except RuntimeError as exc:
        out = _emit(r, "boom", exc=exc)
    assert "topsecret-123" not in out and "RuntimeError" in out
