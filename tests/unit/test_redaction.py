"""Secrets never reach a log line, whatever shape they arrive in."""

from __future__ import annotations

import logging

from clara_core.logging_setup import RedactingFilter, Redactor, redact_url, url_secrets


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


def test_secret_query_parameters_are_scrubbed():
    out = _emit(
        Redactor(),
        "GET %s failed",
        "https://proxy.example/v1/models?api_key=qk-123456&x=1&access_token=tok-987654&sig=abcdef",
    )
    assert "qk-123456" not in out and "tok-987654" not in out and "abcdef" not in out
    assert "?api_key=***&x=1&access_token=***&sig=***" in out


def test_a_port_and_an_at_sign_in_the_path_are_not_a_password():
    # https://host:PORT/users/@me used to come out as https://host:***@me.
    out = _emit(Redactor(), "%s", "http://127.0.0.1:8443/api/v10/users/@me")
    assert out == "http://127.0.0.1:8443/api/v10/users/@me"
    assert "u:***@h" in _emit(Redactor(), "%s", "postgresql://u:pa/ss@h/db")


def test_redact_url_and_url_secrets():
    url = "https://clara:pa%40ss-word@host:8443/v1?x=1&api_key=qk-123456#frag"
    assert redact_url(url) == "https://***@host:8443/v1?x=1&api_key=***#frag"
    secrets = url_secrets(url)
    assert "pa@ss-word" in secrets and "pa%40ss-word" in secrets and "qk-123456" in secrets
    assert "clara" not in secrets  # a user name beside a password is no secret
    assert url_secrets("https://ghp_tokenonly1234@github.example/") == ["ghp_tokenonly1234"] * 2
    scrubbed = Redactor(secrets)("proxy said: bad key qk-123456 for pa@ss-word")
    assert "qk-123456" not in scrubbed and "pa@ss-word" not in scrubbed
