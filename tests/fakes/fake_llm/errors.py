"""A wire-neutral error; each wire turns it into its API's real error JSON."""

from __future__ import annotations


class WireError(Exception):
    """Raised by validation / auth; rendered as an HTTP error by the request's wire.

    ``error_type`` defaults to what the wire's API uses for ``status``; ``param`` and
    ``code`` only appear in OpenAI bodies.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})
