"""Discord's global request budget shared by every Clara process on one bot token.

Discord counts the global limit per bot token, not per process, so N shard
processes pacing themselves separately could earn N times the budget.  The
shared state lives in Redis and is changed only by Lua scripts (atomic on the
server, called with EVALSHA), with the same semantics as the local
``GlobalBudget``: a place is held from its grant until ``window`` after the
response arrived.

Per budget key two sorted sets:

- ``<key>:inflight``: granted tokens, scored by their lease expiry.  A process
  that crashes with requests in flight never releases them; their places come
  free when the lease runs out instead of blocking the token forever.
- ``<key>:finished``: released tokens, scored by the response time; they count
  until ``window`` after it.

Times are Redis's own clock (``TIME``) unless the caller passes ``now_ms``
(tests), so processes on different hosts agree on what a window is.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

log = logging.getLogger(__name__)

# KEYS: inflight, finished.  ARGV: limit, window_ms, lease_ms, token, now_ms ('' = Redis TIME).
# Returns {granted (0/1), retry_after_ms, places in use after the call}.
_ACQUIRE = """
local now = tonumber(ARGV[5])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local used = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
if used < limit then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], lease + window)
  return {1, 0, used + 1}
end
local retry = 60000
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if oldest[2] then
  retry = tonumber(oldest[2]) + window - now
end
if redis.call('ZCARD', KEYS[1]) > 0 then
  -- A place in flight may be released any moment (by any process): ask again
  -- soon rather than when the oldest answered one expires.
  retry = math.min(retry, 20)
end
return {0, math.max(1, retry), used}
"""

# KEYS: inflight, finished.  ARGV: token, window_ms, age_ms, now_ms ('' = Redis TIME).
# The place counts as answered ``age_ms`` ago (a place a process held while Redis
# was away, handed over when it answers again).
_RELEASE = """
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local window = tonumber(ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], now - tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[2], window)
return 1
"""

# KEYS: processes.  ARGV: member, ttl_ms, now_ms ('' = Redis TIME).  Returns how
# many processes on this token were seen within the ttl, this one included.
_HEARTBEAT = """
local now = tonumber(ARGV[3])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl)
return redis.call('ZCARD', KEYS[1])
"""


def budget_key(bot_token: str) -> str:
    """The Redis key prefix of a token's budget: a hash, never the token itself."""
    digest = hashlib.sha256(bot_token.encode()).hexdigest()[:32]
    return f"clara:discord-budget:{digest}"


def _now_arg(now_ms: int | None) -> str:
    return "" if now_ms is None else str(now_ms)


class RedisRateBudget:
    """The async port ``GlobalBudget`` shares its places through.

    Every call gives up after ``timeout`` seconds (raising ``TimeoutError``) and
    Redis errors propagate: the caller falls back to its local share then, so a
    slow Redis must not slow Discord requests down."""

    def __init__(self, redis: Redis, *, timeout: float = 0.05) -> None:
        self.redis = redis
        self.timeout = timeout
        self._acquire: AsyncScript = redis.register_script(_ACQUIRE)
        self._release: AsyncScript = redis.register_script(_RELEASE)
        self._heartbeat: AsyncScript = redis.register_script(_HEARTBEAT)

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 0.05) -> RedisRateBudget:
        # No retries and short socket timeouts: waiting out a Redis outage is
        # exactly what the local fallback is for.
        client = Redis.from_url(
            url,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=max(timeout, 0.5),
            socket_timeout=max(timeout, 0.5),
        )
        return cls(client, timeout=timeout)

    @staticmethod
    def new_token() -> str:
        return uuid.uuid4().hex

    async def try_acquire(
        self,
        key: str,
        token: str,
        *,
        limit: int,
        window_ms: int,
        lease_ms: int,
        now_ms: int | None = None,
    ) -> tuple[bool, int]:
        """Take a place for ``token`` if the window has one: ``(granted, retry_after_ms)``."""
        async with asyncio.timeout(self.timeout):
            granted, retry_after, _used = await self._acquire(
                keys=[f"{key}:inflight", f"{key}:finished"],
                args=[limit, window_ms, lease_ms, token, _now_arg(now_ms)],
            )
        return bool(granted), int(retry_after)

    async def release(
        self,
        key: str,
        token: str,
        *,
        window_ms: int,
        age_ms: int = 0,
        now_ms: int | None = None,
    ) -> None:
        """The response for ``token`` came (``age_ms`` ago): its place counts until
        ``window_ms`` after that."""
        async with asyncio.timeout(self.timeout):
            await self._release(
                keys=[f"{key}:inflight", f"{key}:finished"],
                args=[token, window_ms, max(0, age_ms), _now_arg(now_ms)],
            )

    async def heartbeat(
        self, key: str, member: str, *, ttl_ms: int, now_ms: int | None = None
    ) -> int:
        """Say this process is alive; returns the processes on this token seen within ``ttl_ms``."""
        async with asyncio.timeout(self.timeout):
            return int(
                await self._heartbeat(
                    keys=[f"{key}:processes"], args=[member, ttl_ms, _now_arg(now_ms)]
                )
            )

    async def aclose(self) -> None:
        await self.redis.aclose()
