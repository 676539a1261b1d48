"""The REST API under ``/api/v10``: routing, auth, recording, rate limits, faults.

Each route has a *kind* (``"send"``, ``"edit"``, ...) used by rate limits, fault
injection and :attr:`RecordedRequest.route_kind`.  Every request (known or not)
is recorded; unknown routes get Discord's 404 and are also listed in
``unknown_routes`` so a test can assert nothing unexpected was called.

Order of checks for one request, as on Discord: body read, auth (401), injected
faults, global then per-route rate limit (429), then the handler's own rules
(413, 400, 403, 404).

Malformed responses (:class:`Malformed`, ``FakeDiscord.inject_malformed``) let a
request succeed on the server (the message is stored, edited, ...) and then strip
fields from the JSON answer, the way an independent Discord-compatible server or
an API change can send objects discord.py cannot parse.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors
from .errors import DiscordAPIError, json_response

if TYPE_CHECKING:
    from .server import FakeDiscord

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"


@dataclass
class UploadedFile:
    field: str
    filename: str
    data: bytes
    content_type: str | None = None


@dataclass
class ParsedBody:
    #: The JSON body, or ``payload_json`` of a multipart body (None when absent).
    json: Any = None
    files: list[UploadedFile] = field(default_factory=list)
    #: Plain multipart fields other than ``payload_json``.
    form: dict[str, str] = field(default_factory=dict)
    invalid_json: bool = False

    @property
    def total_file_bytes(self) -> int:
        return sum(len(f.data) for f in self.files)

    def payload(self) -> dict[str, Any]:
        """The JSON object (``{}`` when there was none), with plain form fields
        such as ``content`` folded in when no ``payload_json`` was sent."""
        if isinstance(self.json, dict):
            return self.json
        if self.json is None:
            return dict(self.form)
        raise errors.DiscordAPIError(400, errors.INVALID_FORM_BODY, "Invalid Form Body")


@dataclass(frozen=True)
class RecordedFile:
    field: str
    filename: str
    size: int
    content_type: str | None


@dataclass
class RecordedRequest:
    method: str
    #: Path without the ``/api/v10`` prefix, e.g. ``/channels/123/messages``.
    path: str
    route_kind: str
    query: dict[str, str]
    #: ``time.monotonic()`` when the request arrived.
    at: float
    json: Any = None
    files: list[RecordedFile] = field(default_factory=list)
    status: int | None = None
    #: ``ok``, ``error``, ``rate_limited`` (earned 429), ``injected_429``,
    #: ``injected_error``, ``unauthorized``, ``unknown_route``, ``internal_error`` or
    #: ``malformed`` (served, then its answer stripped by ``inject_malformed``).
    outcome: str = "pending"
    #: The Discord JSON error code for error responses.
    error_code: int | None = None

    @property
    def channel_id(self) -> int | None:
        parts = self.path.split("/")
        if len(parts) > 2 and parts[1] == "channels" and parts[2].isdigit():
            return int(parts[2])
        return None


@dataclass
class Malformed:
    """Strip ``drop`` keys from the JSON answer of the next ``remaining`` successful
    requests matching ``route_kind`` (every object of a list answer, e.g. history)."""

    route_kind: str | None
    remaining: int
    drop: tuple[str, ...]
    channel_id: int | None = None

    def matches(self, route_kind: str, channel_id: int | None) -> bool:
        if self.route_kind is not None and self.route_kind != route_kind:
            return False
        return self.channel_id is None or self.channel_id == channel_id

    def apply(self, response: web.StreamResponse) -> None:
        if not isinstance(response, web.Response) or response.body is None:
            return
        data = json.loads(bytes(response.body))  # type: ignore[arg-type]
        for item in data if isinstance(data, list) else [data]:
            if isinstance(item, dict):
                for key in self.drop:
                    item.pop(key, None)
        response.body = json.dumps(data).encode()


@dataclass
class RequestContext:
    request: web.Request
    params: dict[str, str]
    body: ParsedBody
    record: RecordedRequest

    @property
    def query(self) -> Any:
        return self.request.query


Handler = Callable[["FakeDiscord", RequestContext], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class RouteSpec:
    method: str
    #: aiohttp path pattern relative to ``/api/v10``.
    path: str
    kind: str
    handler: Handler
    #: Requires ``Authorization: Bot <token>``.
    auth: bool = True
    #: Not counted against the global limit (interaction callbacks).
    global_exempt: bool = False


async def parse_body(request: web.Request) -> ParsedBody:
    body = ParsedBody()
    content_type = request.headers.get("Content-Type", "")
    if content_type.startswith("multipart/form-data"):
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            name = getattr(part, "name", None) or ""
            filename = getattr(part, "filename", None)
            if filename is not None:
                data = await part.read(decode=False)  # type: ignore[union-attr]
                body.files.append(
                    UploadedFile(
                        field=name,
                        filename=filename,
                        data=bytes(data),
                        content_type=part.headers.get("Content-Type"),
                    )
                )
            elif name == "payload_json":
                text = await part.text()  # type: ignore[union-attr]
                try:
                    body.json = json.loads(text)
                except ValueError:
                    body.invalid_json = True
            else:
                body.form[name] = await part.text()  # type: ignore[union-attr]
        return body
    raw = await request.read()
    if raw:
        try:
            body.json = json.loads(raw)
        except ValueError:
            body.invalid_json = True
    return body


class RestApi:
    """Serves :class:`RouteSpec` routes and keeps the request log."""

    def __init__(self, fake: FakeDiscord, routes: list[RouteSpec]) -> None:
        self.fake = fake
        self.routes = routes
        self.requests: list[RecordedRequest] = []
        self.unknown_routes: list[RecordedRequest] = []
        #: Exceptions raised inside handlers (bugs in the fake); answered with 503.
        self.internal_errors: list[str] = []
        self.malformed: list[Malformed] = []

    def install(self, app: web.Application) -> None:
        for spec in self.routes:
            app.router.add_route(spec.method, API_PREFIX + spec.path, self._wrap(spec))
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._unknown)

    def _wrap(self, spec: RouteSpec) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            return await self._serve(spec, request)

        return serve

    def _record(self, request: web.Request, kind: str) -> RecordedRequest:
        record = RecordedRequest(
            method=request.method,
            path=request.path.removeprefix(API_PREFIX),
            route_kind=kind,
            query=dict(request.query),
            at=time.monotonic(),
        )
        self.requests.append(record)
        return record

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        expected = f"Bot {self.fake.state.token}"
        return secrets.compare_digest(header.encode(), expected.encode())

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        record = self._record(request, "unknown")
        body = await parse_body(request)
        record.json = body.json
        self.unknown_routes.append(record)
        log.warning("fake Discord: unknown route %s %s", request.method, request.path)
        return self._finish(record, errors.not_found_route().response(), "unknown_route")

    async def _serve(self, spec: RouteSpec, request: web.Request) -> web.StreamResponse:
        record = self._record(request, spec.kind)
        params = dict(request.match_info)
        limiter = self.fake.limiter
        rate_headers: dict[str, str] = {}
        try:
            body = await parse_body(request)
            record.json = body.json
            record.files = [
                RecordedFile(f.field, f.filename, len(f.data), f.content_type) for f in body.files
            ]
            if spec.auth and not self._authorized(request):
                return self._finish(record, errors.unauthorized().response(), "unauthorized")

            major = (
                params.get("channel_id")
                or params.get("guild_id")
                or params.get("webhook_id")
                or params.get("interaction_token")
                or ""
            )
            channel_id = (
                int(params["channel_id"]) if params.get("channel_id", "").isdigit() else None
            )
            fault = limiter.take_fault(spec.kind, channel_id)
            if fault is not None:
                return self._fault_response(record, fault, spec.kind, major)

            decision = limiter.check(spec.kind, major, global_exempt=spec.global_exempt)
            rate_headers = decision.headers
            if decision.retry_after is not None:
                return self._finish(
                    record,
                    self._too_many(decision.retry_after, decision.is_global, rate_headers),
                    "rate_limited",
                )
            if body.invalid_json:
                raise DiscordAPIError(
                    400, errors.INVALID_JSON, "The request body contains invalid JSON."
                )
            ctx = RequestContext(request=request, params=params, body=body, record=record)
            response = await spec.handler(self.fake, ctx)
            response.headers.update(rate_headers)
            malformed = self._take_malformed(spec.kind, channel_id)
            if malformed is not None:
                malformed.apply(response)
                return self._finish(record, response, "malformed")
            return self._finish(record, response, "ok")
        except DiscordAPIError as exc:
            response = exc.response()
            response.headers.update(rate_headers)
            return self._finish(record, response, "error", code=exc.code)
        except Exception as exc:
            detail = "".join(traceback.format_exception(exc))
            self.internal_errors.append(f"{request.method} {request.path}\n{detail}")
            log.error(
                "fake Discord: internal error on %s %s\n%s", request.method, request.path, detail
            )
            # 503 rather than 500: discord.py retries 500s for ~25 s, which would
            # hide a bug in the fake behind a slow test.
            response = json_response(
                {"message": f"fake Discord internal error: {exc!r}", "code": 0}, status=503
            )
            return self._finish(record, response, "internal_error")

    def _take_malformed(self, route_kind: str, channel_id: int | None) -> Malformed | None:
        for malformed in self.malformed:
            if malformed.remaining > 0 and malformed.matches(route_kind, channel_id):
                malformed.remaining -= 1
                return malformed
        return None

    def _finish(
        self,
        record: RecordedRequest,
        response: web.StreamResponse,
        outcome: str,
        *,
        code: int | None = None,
    ) -> web.StreamResponse:
        record.status = response.status
        record.outcome = outcome
        record.error_code = code
        return response

    @staticmethod
    def _too_many(retry_after: float, is_global: bool, headers: dict[str, str]) -> web.Response:
        all_headers = {
            **headers,
            "Retry-After": str(max(1, int(-(-retry_after // 1)))),
        }
        if is_global:
            all_headers["X-RateLimit-Global"] = "true"
            all_headers["X-RateLimit-Scope"] = "global"
        else:
            all_headers.setdefault("X-RateLimit-Scope", "user")
        return json_response(
            {
                "message": "You are being rate limited.",
                "retry_after": retry_after,
                "global": is_global,
            },
            status=429,
            headers=all_headers,
        )

    def _fault_response(
        self, record: RecordedRequest, fault: Any, kind: str, major: str
    ) -> web.StreamResponse:
        if fault.status == 429:
            headers = self.fake.limiter.rule_headers(kind, major)
            if headers:
                headers["X-RateLimit-Remaining"] = "0"
                headers["X-RateLimit-Reset-After"] = f"{fault.retry_after:.3f}"
                headers["X-RateLimit-Reset"] = f"{time.time() + fault.retry_after:.3f}"
            headers["X-RateLimit-Scope"] = "global" if fault.is_global else "shared"
            response = self._too_many(fault.retry_after, fault.is_global, headers)
            return self._finish(record, response, "injected_429")
        message = fault.message or {
            500: "500: Internal Server Error",
            502: "502: Bad Gateway",
            503: "503: Service Unavailable",
            504: "504: Gateway Timeout",
        }.get(fault.status, f"{fault.status}: Error")
        response = json_response({"message": message, "code": fault.code}, status=fault.status)
        return self._finish(record, response, "injected_error", code=fault.code)
