"""Discord's JSON error shapes and the JSON responses the fake sends.

Discord answers errors with ``{"message": ..., "code": ...}`` (plus ``errors`` for
form validation, code 50035).  discord.py only parses a body as JSON when the
``Content-Type`` header is exactly ``application/json`` (no charset), so every
response goes through :func:`json_response`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

#: Discord's HTTP responses come through Cloudflare; discord.py treats a 429
#: without a ``Via`` header as a Cloudflare ban and raises instead of retrying.
BASE_HEADERS: Mapping[str, str] = {"Via": "1.1 google"}

# JSON error codes (https://discord.com/developers/docs/topics/opcodes-and-status-codes)
GENERAL_ERROR = 0
UNKNOWN_APPLICATION = 10002
UNKNOWN_CHANNEL = 10003
UNKNOWN_GUILD = 10004
UNKNOWN_MEMBER = 10007
UNKNOWN_MESSAGE = 10008
UNKNOWN_USER = 10013
UNKNOWN_WEBHOOK = 10015
UNKNOWN_INTERACTION = 10062
UNKNOWN_APPLICATION_COMMAND = 10063
REQUEST_ENTITY_TOO_LARGE = 40005
INTERACTION_ALREADY_ACKNOWLEDGED = 40060
MISSING_ACCESS = 50001
CANNOT_EDIT_OTHERS_MESSAGE = 50005
CANNOT_SEND_EMPTY_MESSAGE = 50006
CANNOT_SEND_TO_USER = 50007
INVALID_CHANNEL_TYPE = 50024
INVALID_RECIPIENTS = 50033
INVALID_FORM_BODY = 50035
INVALID_JSON = 50109
VOICE_MESSAGE_SINGLE_AUDIO = 50159
VOICE_MESSAGE_METADATA = 50160
VOICE_MESSAGE_CONTENT = 50161
THREAD_ALREADY_CREATED = 160004


class DiscordAPIError(Exception):
    """Raised inside REST handlers; becomes a Discord-shaped JSON error response."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        errors: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body

    def response(self) -> web.Response:
        return json_response(self.body(), status=self.status)


def json_response(
    data: Any,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A response whose Content-Type is exactly ``application/json``."""
    all_headers = {**BASE_HEADERS, **(headers or {}), "Content-Type": "application/json"}
    return web.Response(status=status, body=json.dumps(data).encode(), headers=all_headers)


def no_content(headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=204, headers={**BASE_HEADERS, **(headers or {})})


def field_error(code: str, message: str) -> dict[str, Any]:
    """One entry of a 50035 ``errors`` tree: ``{"_errors": [{"code", "message"}]}``."""
    return {"_errors": [{"code": code, "message": message}]}


def invalid_form_body(errors: dict[str, Any]) -> DiscordAPIError:
    return DiscordAPIError(400, INVALID_FORM_BODY, "Invalid Form Body", errors=errors)


def unauthorized() -> DiscordAPIError:
    return DiscordAPIError(401, GENERAL_ERROR, "401: Unauthorized")


def not_found_route() -> DiscordAPIError:
    return DiscordAPIError(404, GENERAL_ERROR, "404: Not Found")


def unknown(code: int, what: str) -> DiscordAPIError:
    """``404 Unknown Channel`` / ``Unknown Message`` / ...; ``what`` is the noun."""
    return DiscordAPIError(404, code, f"Unknown {what}")
