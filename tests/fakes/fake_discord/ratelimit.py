"""Discord's REST rate limits, plus fault injection.

Discord keys a bucket by its hash and the route's *major parameter* (channel,
guild or webhook id).  Each bucket is a fixed window: the first request opens it,
``limit`` requests fit, and it resets ``window`` seconds after it opened.  Every
response on a limited route carries ``X-RateLimit-*`` headers, which discord.py
uses to pre-emptively wait; a request over budget gets 429 with
``{"message", "retry_after", "global"}``.

The global limit (``global_rate_limit`` requests per second per bot token) is a
*sliding* one-second window over arrival times: Discord documents only "50
requests per second" and not how the second is measured, so the fake takes the
strictest reading — no one-second span may hold more than the limit, wherever it
starts.  A fixed window opened by the first request would let 2 x 50 requests
through within a few milliseconds around its reset.  Requests answered 429 are not
counted (they are not served), and interaction callbacks are exempt, as on Discord.

Faults (:meth:`RateLimiter.inject_429`, :meth:`RateLimiter.inject_error`) make the
next matching requests fail no matter the budget.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from dataclasses import dataclass, field

from .config import FakeDiscordConfig


@dataclass(frozen=True)
class BucketRule:
    """``limit`` requests per ``window`` seconds, per major parameter."""

    name: str
    limit: int
    window: float

    @property
    def bucket_hash(self) -> str:
        return hashlib.md5(self.name.encode()).hexdigest()


def _ceil_ms(seconds: float) -> float:
    """Round up to whole milliseconds, so a client never wakes before the reset."""
    return max(0.0, math.ceil(seconds * 1000) / 1000)


class Bucket:
    def __init__(self, rule: BucketRule) -> None:
        self.rule = rule
        self.count = 0
        self.reset_at = 0.0  # time.monotonic()

    def hit(self, now: float) -> bool:
        """Spend one request; False when the window is exhausted (nothing spent)."""
        if now >= self.reset_at:
            self.count = 0
            self.reset_at = now + self.rule.window
        if self.count >= self.rule.limit:
            return False
        self.count += 1
        return True

    def headers(self, now: float) -> dict[str, str]:
        reset_after = _ceil_ms(self.reset_at - now)
        return {
            "X-RateLimit-Limit": str(self.rule.limit),
            "X-RateLimit-Remaining": str(max(0, self.rule.limit - self.count)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": self.rule.bucket_hash,
        }


@dataclass
class RateLimitStats:
    """429s served, by cause."""

    #: Forced with :meth:`RateLimiter.inject_429`.
    injected: int = 0
    #: Earned by exceeding a per-route bucket.
    earned: int = 0
    #: Earned by exceeding the global requests-per-second limit.
    earned_global: int = 0

    @property
    def total(self) -> int:
        return self.injected + self.earned + self.earned_global


@dataclass
class Fault:
    """A forced failure for the next ``remaining`` requests matching ``route_kind``."""

    status: int
    remaining: int
    route_kind: str | None = None
    channel_id: int | None = None
    retry_after: float = 0.0
    is_global: bool = False
    code: int = 0
    message: str | None = None

    def matches(self, route_kind: str, channel_id: int | None) -> bool:
        if self.route_kind is not None and self.route_kind != route_kind:
            return False
        return self.channel_id is None or self.channel_id == channel_id


@dataclass
class Decision:
    """What the limiter says about one request."""

    headers: dict[str, str] = field(default_factory=dict)
    #: Set when the request must be answered with 429.
    retry_after: float | None = None
    is_global: bool = False
    scope: str = "user"


class RateLimiter:
    def __init__(self, config: FakeDiscordConfig) -> None:
        self.config = config
        self.stats = RateLimitStats()
        self.faults: list[Fault] = []
        self._buckets: dict[tuple[str, str], Bucket] = {}
        #: Arrival times of the requests counted in the last second, oldest first.
        self._global_arrivals: deque[float] = deque()

    # ------------------------------------------------------------------ rules

    def rule_for(self, route_kind: str) -> BucketRule | None:
        cfg = self.config
        if route_kind in ("send", "edit"):
            # Discord documents 5 / 5 s per channel for sending; the fake shares the
            # bucket with edits, which is what a streaming bot runs into.
            return BucketRule("messages", cfg.message_rate_limit, cfg.message_rate_window)
        if route_kind == "delete":
            return BucketRule("message-delete", cfg.delete_rate_limit, cfg.delete_rate_window)
        return None

    def check(self, route_kind: str, major: str, *, global_exempt: bool = False) -> Decision:
        """Spend budget for one request and say whether it must get a 429."""
        now = time.monotonic()
        if not global_exempt and self.config.global_rate_limit is not None:
            arrivals = self._global_arrivals
            while arrivals and arrivals[0] <= now - 1.0:
                arrivals.popleft()
            if len(arrivals) >= self.config.global_rate_limit:
                self.stats.earned_global += 1
                retry = _ceil_ms(arrivals[0] + 1.0 - now)
                return Decision(
                    headers={"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"},
                    retry_after=retry,
                    is_global=True,
                    scope="global",
                )
            arrivals.append(now)

        rule = self.rule_for(route_kind)
        if rule is None:
            return Decision()
        key = (rule.name, major)
        bucket = self._buckets.get(key)
        if bucket is None or bucket.rule != rule:
            bucket = self._buckets[key] = Bucket(rule)
        allowed = bucket.hit(now)
        headers = bucket.headers(now)
        if allowed:
            return Decision(headers=headers)
        self.stats.earned += 1
        headers["X-RateLimit-Scope"] = "user"
        return Decision(headers=headers, retry_after=_ceil_ms(bucket.reset_at - now))

    def rule_headers(self, route_kind: str, major: str) -> dict[str, str]:
        """Current headers for a bucket without spending (used on injected faults)."""
        rule = self.rule_for(route_kind)
        bucket = self._buckets.get((rule.name, major)) if rule else None
        return bucket.headers(time.monotonic()) if bucket else {}

    # ----------------------------------------------------------------- faults

    def inject_429(
        self,
        route_kind: str | None = None,
        count: int = 1,
        retry_after: float = 0.1,
        *,
        is_global: bool = False,
        channel_id: int | None = None,
    ) -> None:
        self.faults.append(
            Fault(
                status=429,
                remaining=count,
                route_kind=route_kind,
                channel_id=channel_id,
                retry_after=retry_after,
                is_global=is_global,
            )
        )

    def inject_error(
        self,
        status: int,
        route_kind: str | None = None,
        count: int = 1,
        *,
        code: int = 0,
        message: str | None = None,
        channel_id: int | None = None,
    ) -> None:
        self.faults.append(
            Fault(
                status=status,
                remaining=count,
                route_kind=route_kind,
                channel_id=channel_id,
                code=code,
                message=message,
            )
        )

    def take_fault(self, route_kind: str, channel_id: int | None) -> Fault | None:
        for fault in self.faults:
            if fault.remaining > 0 and fault.matches(route_kind, channel_id):
                fault.remaining -= 1
                if fault.status == 429:
                    self.stats.injected += 1
                return fault
        return None

    @property
    def pending_faults(self) -> int:
        return sum(f.remaining for f in self.faults)
