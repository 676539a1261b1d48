"""A small async GitHub REST client: auth, Link pagination, rate limits, plain errors.

Why our own (on httpx, already a dependency) rather than githubkit or gidgethub:
the tools need ~30 REST endpoints as plain JSON, and what matters is the
behaviour around them, which both libraries decide for us: githubkit 0.16
needs ``hishel<2`` (a second HTTP cache stack) and ships thousands of
generated models; gidgethub 6.0 crashed on a rate-limit reset it could not
parse.  Here every rule is in one page:

- ``GITHUB_API_URL`` is the base (Enterprise, tests); the token is only ever
  sent to that host, a ``Link`` pointing elsewhere is not followed.
- Pagination follows ``Link: <...>; rel="next"`` until the caller's cap.
- Primary limit (``X-RateLimit-Remaining: 0`` with ``X-RateLimit-Reset``):
  when the reset is at most ``max_wait`` seconds away the client waits, else it
  refuses at once (without spending a request) and says when it resets.
- Secondary limit (``Retry-After``, or 403/429 with "secondary rate limit"):
  waited out the same way, else refused.
- 401/403/404/409/422/5xx become ``ToolError`` messages a user understands.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ..registry import ToolError

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
#: Seconds a rate limit may be waited out inside one tool call (the tool's own
#: timeout is longer); a longer wait is refused with the time it resets.
MAX_WAIT = 20.0
#: GitHub's advice when a secondary limit comes without Retry-After.
SECONDARY_DEFAULT_WAIT = 60.0
REQUEST_TIMEOUT = 30.0
MAX_PER_PAGE = 100


@dataclass
class Page:
    items: list[Any]
    pages: int  # requests it took
    more: bool  # GitHub has more than the cap let through
    total: int | None = None  # search endpoints' total_count


def parse_reset(value: str | None) -> float | None:
    """X-RateLimit-Reset as epoch seconds.  GitHub sends integer seconds; a
    fractional or millisecond value (seen from proxies, and what crashed
    gidgethub) is accepted rather than crashing the call."""
    if not value:
        return None
    try:
        reset = float(value)
    except ValueError:
        return None
    if reset > 1e11:  # milliseconds since the epoch
        reset /= 1000.0
    return reset


def _hhmm(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M UTC")


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"


class GitHubClient:
    """One connection pool per process, built on first use off the event loop
    (creating an httpx client loads the CA bundle, a blocking read)."""

    def __init__(
        self,
        token: str,
        *,
        base_url: str = "https://api.github.com",
        max_wait: float = MAX_WAIT,
        timeout: float = REQUEST_TIMEOUT,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.max_wait = max_wait
        self.timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self._client: Any = None
        self._lock = asyncio.Lock()
        #: When the primary limit is known to be used up: its reset (epoch s).
        self._exhausted_until: float | None = None
        self.requests_sent = 0

    # -- lifecycle -------------------------------------------------------------
    def _build(self) -> Any:
        import httpx

        return httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self.timeout,
            headers={
                "Authorization": f"Bearer {self._token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "Clara-companion",
            },
            follow_redirects=False,
        )

    async def _get_client(self) -> Any:
        async with self._lock:
            if self._client is None:
                self._client = await asyncio.to_thread(self._build)
            return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- requests --------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        what: str = "",
    ) -> Any:
        """The decoded JSON (None for 204); ``what`` names the thing for a 404."""
        response = await self._send(method, path, params=params, json=json, what=what)
        return self._json(response)

    async def paginate(
        self,
        path: str,
        *,
        limit: int,
        params: dict[str, Any] | None = None,
        key: str | None = None,
        what: str = "",
    ) -> Page:
        """Up to ``limit`` items across pages, following Link rel="next".  ``key``:
        the list inside an object answer (``items`` for search)."""
        params = {**(params or {}), "per_page": min(MAX_PER_PAGE, max(1, limit))}
        items: list[Any] = []
        pages = 0
        total: int | None = None
        url: str | None = path
        while url is not None and len(items) < limit:
            response = await self._send(
                "GET", url, params=params if pages == 0 else None, what=what
            )
            pages += 1
            data = self._json(response)
            if key is not None and isinstance(data, dict):
                if total is None and isinstance(data.get("total_count"), int):
                    total = data["total_count"]
                data = data.get(key)
            if not isinstance(data, list):
                raise ToolError("GitHub sent an answer in an unexpected shape; try again")
            items.extend(data)
            url = self._next_link(response)
        more = url is not None or len(items) > limit
        return Page(items[:limit], pages, more, total)

    def _next_link(self, response: Any) -> str | None:
        nxt = response.links.get("next", {}).get("url")
        if not nxt:
            return None
        # The token goes to GITHUB_API_URL's host only, whatever a header says.
        if urlsplit(nxt).netloc != urlsplit(self.base_url).netloc:
            log.warning("not following a Link to another host: %s", nxt)
            return None
        return nxt

    @staticmethod
    def _json(response: Any) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ToolError("GitHub sent an unreadable answer; try again") from None

    async def _send(
        self, method: str, url: str, *, params: Any = None, json: Any = None, what: str = ""
    ) -> Any:
        import httpx

        client = await self._get_client()
        for _attempt in range(3):
            await self._before_request()
            try:
                self.requests_sent += 1
                response = await client.request(method, url, params=params, json=json)
            except httpx.TimeoutException:
                raise ToolError(
                    f"GitHub took longer than {self.timeout:.0f}s to answer; try again"
                ) from None
            except httpx.RequestError as exc:
                log.warning("GitHub unreachable at %s: %r", self.base_url, exc)
                raise ToolError(
                    f"could not reach GitHub at {self.base_url} (network or service down); "
                    "try again later"
                ) from None
            self._note_limits(response)
            if response.status_code < 400:
                return response
            wait = self._limit_wait(response)
            if wait is None:
                raise self._error(response, what)
            log.info("GitHub rate limit: waiting %.1fs before retrying %s %s", wait, method, url)
            await self._sleep(wait)
        raise ToolError("GitHub keeps rate limiting these requests; try again in a few minutes")

    async def _before_request(self) -> None:
        """Known to be out of primary quota: wait for the reset when it is near,
        else refuse without spending a request."""
        until = self._exhausted_until
        if until is None:
            return
        wait = until - self._clock()
        if wait <= 0:
            self._exhausted_until = None
            return
        if wait > self.max_wait:
            raise self._primary_refusal(until)
        await self._sleep(wait)
        self._exhausted_until = None

    def _note_limits(self, response: Any) -> None:
        remaining = response.headers.get("x-ratelimit-remaining")
        reset = parse_reset(response.headers.get("x-ratelimit-reset"))
        if remaining is not None and remaining.strip() == "0" and reset is not None:
            # +1: GitHub's reset second is inclusive; asking at it can still fail.
            self._exhausted_until = reset + 1
        elif remaining is not None:
            self._exhausted_until = None

    def _limit_wait(self, response: Any) -> float | None:
        """Seconds to wait before retrying a rate-limited answer; None when the
        answer is not a rate limit.  Raises when the wait would be too long."""
        status = response.status_code
        if status not in (403, 429):
            return None
        message = _message(response).lower()
        retry_after = response.headers.get("retry-after")
        secondary = "secondary rate limit" in message or (
            retry_after is not None and response.headers.get("x-ratelimit-remaining") != "0"
        )
        if secondary:
            try:
                wait = float(retry_after) if retry_after is not None else SECONDARY_DEFAULT_WAIT
            except ValueError:
                wait = SECONDARY_DEFAULT_WAIT
            if wait > self.max_wait:
                raise ToolError(
                    "GitHub's secondary rate limit (too many requests in a short time) stopped "
                    f"this; it asks to wait {_minutes(wait)}. Try again then, with fewer requests."
                )
            return max(wait, 0.0)
        if self._exhausted_until is not None or "rate limit" in message:
            until = self._exhausted_until or (self._clock() + SECONDARY_DEFAULT_WAIT)
            wait = until - self._clock()
            if wait > self.max_wait:
                raise self._primary_refusal(until)
            return max(wait, 0.0)
        return None

    def _primary_refusal(self, until: float) -> ToolError:
        return ToolError(
            "GitHub's hourly API limit for this token is used up; it resets at "
            f"{_hhmm(until)} (in {_minutes(until - self._clock())}). Try again then."
        )

    def _error(self, response: Any, what: str) -> ToolError:
        status = response.status_code
        message = _message(response)
        thing = what or "that"
        log.info("GitHub answered %s: %s", status, message)
        if status == 401:
            log.error("GitHub rejected GITHUB_TOKEN (%s)", message)
            return ToolError(
                f"GitHub rejected the token ({message or 'Bad credentials'}). The bot's operator "
                "must set a valid GITHUB_TOKEN."
            )
        if status == 403:
            return ToolError(
                f"GitHub refused access to {thing}: {message or 'Forbidden'}. The token lacks "
                "the permission (scope or repository access) for this."
            )
        if status == 404:
            return ToolError(
                f"GitHub found no {thing}. Check the owner, repository and number/path; a "
                "private repository the token cannot see also looks like this."
            )
        if status == 409:
            return ToolError(f"GitHub reports a conflict: {message or 'Conflict'}.")
        if status == 422:
            details = _validation_details(response)
            return ToolError(
                f"GitHub rejected the request: {message or 'Validation Failed'}"
                f"{' (' + details + ')' if details else ''}. Fix the arguments and retry."
            )
        if status >= 500:
            return ToolError(f"GitHub is having trouble (HTTP {status}); try again later.")
        return ToolError(f"GitHub refused the request (HTTP {status}): {message or 'error'}.")


def _body(response: Any) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _message(response: Any) -> str:
    return str(_body(response).get("message") or "")[:300]


def _validation_details(response: Any) -> str:
    parts = []
    for err in _body(response).get("errors") or []:
        if isinstance(err, dict):
            text = err.get("message") or " ".join(
                str(err[k]) for k in ("field", "code") if err.get(k)
            )
            if text:
                parts.append(str(text))
        elif isinstance(err, str):
            parts.append(err)
    return "; ".join(parts)[:300]
