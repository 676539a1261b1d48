"""Fake Tavily: ``POST /search`` over real HTTP on loopback, in Tavily's JSON shape.

``AsyncTavilyClient(api_key=..., api_base_url=fake.base_url)`` talks to it as
to api.tavily.com.  What the real API does and the fake reproduces:

- auth by ``Authorization: Bearer <key>`` (or the legacy ``api_key`` body
  field); a missing or unknown key is 401;
- the body: ``query`` (required, at most 400 characters), ``search_depth``
  (basic | advanced | fast | ultra-fast), ``topic`` (general | news |
  finance), ``max_results`` (0-20, default 5), ``include_answer``,
  ``include_raw_content``, ``include_images``; anything else wrong is 400;
- the answer: ``{query, follow_up_questions, answer, images, results:
  [{title, url, content, score, raw_content}], response_time, request_id}``;
- errors as ``{"detail": {"error": "<message>"}}``: 400, 401, 429 (too many
  requests), 432 (plan limit reached).

Tests script results per query with ``add_results`` (unscripted queries get
generated, long-winded results) and failures with ``fail_next`` /
``rate_limit``; ``requests`` records what arrived.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MAX_QUERY = 400
DEPTHS = {"basic", "advanced", "fast", "ultra-fast"}
TOPICS = {"general", "news", "finance"}

MESSAGES = {
    400: "Invalid request.",
    401: "Unauthorized: missing or invalid API key.",
    429: "Your request has been blocked due to excessive requests. Please reduce rate of requests.",
    432: (
        "This request exceeds your plan's set usage limit. Please upgrade your plan or contact "
        "support@tavily.com"
    ),
}


@dataclass
class FakeResult:
    title: str
    url: str
    content: str
    score: float = 0.9
    raw_content: str | None = None

    def payload(self, *, raw: bool) -> dict[str, Any]:
        return {
            "url": self.url,
            "title": self.title,
            "content": self.content,
            "score": self.score,
            "raw_content": (self.raw_content or self.content * 3) if raw else None,
        }


@dataclass
class RecordedSearch:
    headers: dict[str, str]
    body: Any


@dataclass
class _Scripted:
    results: list[FakeResult]
    answer: str | None = None


@dataclass
class FakeTavily:
    api_keys: set[str] = field(default_factory=lambda: {"tvly-test-key"})
    #: Seconds to wait before answering (a slow API, for timeout tests).
    delay: float = 0.0
    requests: list[RecordedSearch] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._scripted: dict[str, _Scripted] = {}
        self._failures: list[tuple[int, str]] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- scripting ------------------------------------------------------------
    def add_results(
        self, query: str, results: list[FakeResult], *, answer: str | None = None
    ) -> None:
        self._scripted[query] = _Scripted(results, answer)

    def fail_next(self, status: int, message: str | None = None, *, times: int = 1) -> None:
        """The next ``times`` searches answer ``status`` with Tavily's error body."""
        self._failures += [(status, message or MESSAGES.get(status, "Error"))] * times

    def rate_limit(self, times: int = 1) -> None:
        self.fail_next(429, times=times)

    # -- lifecycle --------------------------------------------------------------
    async def __aenter__(self) -> FakeTavily:
        app = web.Application()
        app.router.add_post("/search", self._search)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- the endpoint -----------------------------------------------------------
    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"detail": {"error": message}}, status=status)

    async def _search(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        raw = await request.read()
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        self.requests.append(RecordedSearch(dict(request.headers), body))
        if self.delay:
            await asyncio.sleep(self.delay)
        if not isinstance(body, dict):
            return self._error(400, "Invalid JSON body.")
        auth = request.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        key = key or str(body.get("api_key") or "")
        if key not in self.api_keys:
            return self._error(401, MESSAGES[401])
        if self._failures:
            status, message = self._failures.pop(0)
            return self._error(status, message)
        problem = self._check(body)
        if problem:
            return self._error(400, problem)
        query: str = body["query"]
        max_results = int(body.get("max_results", 5))
        scripted = self._scripted.get(query) or _Scripted(_generated(query))
        raw_content = bool(body.get("include_raw_content"))
        answer = scripted.answer
        if body.get("include_answer") and answer is None:
            answer = f"A short answer about {query}."
        return web.json_response(
            {
                "query": query,
                "follow_up_questions": None,
                "answer": answer if body.get("include_answer") else None,
                "images": [],
                "results": [r.payload(raw=raw_content) for r in scripted.results[:max_results]],
                "response_time": round(time.monotonic() - started + 0.8, 2),
                "request_id": str(uuid.uuid4()),
            }
        )

    @staticmethod
    def _check(body: dict[str, Any]) -> str | None:
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            return "Query is missing."
        if len(query) > MAX_QUERY:
            return f"Query is too long. Max query length is {MAX_QUERY} characters."
        if "search_depth" in body and body["search_depth"] not in DEPTHS:
            return "Invalid search depth. Must be one of: " + ", ".join(sorted(DEPTHS)) + "."
        if "topic" in body and body["topic"] not in TOPICS:
            return "Invalid topic. Must be one of: " + ", ".join(sorted(TOPICS)) + "."
        max_results = body.get("max_results", 5)
        if not isinstance(max_results, int) or not 0 <= max_results <= 20:
            return "max_results must be between 0 and 20."
        return None


def _generated(query: str, count: int = 10) -> list[FakeResult]:
    """Results for an unscripted query: long contents, as real pages give."""
    slug = "-".join(query.lower().split())[:40] or "q"
    return [
        FakeResult(
            title=f"{query} — source {i + 1}",
            url=f"https://example.org/{slug}/{i + 1}",
            content=(f"Source {i + 1} on {query}. " + "Lorem ipsum dolor sit amet. " * 40).strip(),
            score=round(0.95 - i * 0.05, 2),
        )
        for i in range(count)
    ]
