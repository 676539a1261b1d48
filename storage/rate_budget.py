"""Discord's global request budget shared by every Clara process on one bot token.

Discord counts the global limit per bot token, not per process, so N shard
processes pacing themselves separately could earn N times the budget.  The
shared state lives in Redis and is changed only by Lua scripts (atomic on the
server, called with EVALSHA), with the same semantics as the local
``GlobalBudget``: a place is held from its grant until ``window`` after the
response arrived.

Per budget key two sorted sets (the global limit), and per-route bucket
state (see ``_ROUTE_TAKE``):

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

# Put before every script (at registration): its "now" in ms, the caller's ``now_ms``
# (tests), else Redis's own clock.
_CLOCK = """
local function clock(given)
  local now = tonumber(given)
  if now then return now end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# KEYS: inflight, finished.  ARGV: limit, window_ms, lease_ms, token, now_ms ('' = Redis TIME).
# Returns {granted (0/1), retry_after_ms, places in use after the call}.
_ACQUIRE = """
local now = clock(ARGV[5])
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
local now = clock(ARGV[4])
local window = tonumber(ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], now - tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[2], window)
return 1
"""

# KEYS: processes.  ARGV: member, ttl_ms, now_ms ('' = Redis TIME).  Returns how
# many processes on this token were seen within the ttl, this one included.
_HEARTBEAT = """
local now = clock(ARGV[3])
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl)
return redis.call('ZCARD', KEYS[1])
"""

# Per-route buckets (the X-RateLimit-* headers), shared the same way.  Discord
# keys a bucket by its hash (several routes may share one: message create and
# edit do) and the route's major parameter.  ``<key>:route:<route>`` maps a
# route to the hash its responses named ("-": the route has no bucket);
# ``<key>:bucket:<hash>:<major>`` holds {remaining, reset_at, limit, window}
# in ms on Redis's clock.  While a bucket is unknown one request at a time
# (across processes) goes out to find it: the ``<key>:probe:<route>:<major>``
# lock.  Two first requests from two processes would both be counted by
# Discord but only one of them by the first response's header.
#
# TAKE: KEYS: route map.  ARGV: key prefix, major, now_ms, route, probe_ms.
# Returns 0 (go: a place was taken, or this request finds the bucket out) or the
# ms to wait.
_ROUTE_TAKE = """
local now = clock(ARGV[3])
local hash = redis.call('GET', KEYS[1])
if hash == '-' then return 0 end
local st = {false}
local k = ''
if hash then
  k = ARGV[1] .. ':bucket:' .. hash .. ':' .. ARGV[2]
  st = redis.call('HMGET', k, 'remaining', 'reset_at', 'limit', 'window')
end
if not st[1] then
  local probe = ARGV[1] .. ':probe:' .. ARGV[4] .. ':' .. ARGV[2]
  if redis.call('SET', probe, '1', 'NX', 'PX', tonumber(ARGV[5])) then return 0 end
  return 20
end
local reset_at = tonumber(st[2])
if now >= reset_at then
  -- The window is over: the next one opens with this request (as on Discord),
  -- so the processes share its places before any response says how many are left.
  local window = tonumber(st[4])
  redis.call('HSET', k, 'remaining', tonumber(st[3]) - 1, 'reset_at', now + window)
  redis.call('PEXPIRE', k, window + 60000)
  return 0
end
local remaining = tonumber(st[1])
if remaining > 0 then
  redis.call('HSET', k, 'remaining', remaining - 1)
  return 0
end
return math.max(1, reset_at - now)
"""

# SEEN: KEYS: route map.  ARGV: key prefix, major, hash ('' = none), limit,
# remaining, reset_after_ms, now_ms, route, '1' when a successful answer had
# no bucket (the route has none; an error page without headers says nothing).  A response's headers: within the
# window we know, the smaller count wins (places taken for requests still in
# flight are not in the header yet); a later reset means a new window.
_ROUTE_SEEN = """
local now = clock(ARGV[7])
redis.call('DEL', ARGV[1] .. ':probe:' .. ARGV[8] .. ':' .. ARGV[2])
if ARGV[3] == '' then
  if ARGV[9] == '1' then redis.call('SET', KEYS[1], '-', 'PX', 86400000) end
  return -1
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', 86400000)
local k = ARGV[1] .. ':bucket:' .. ARGV[3] .. ':' .. ARGV[2]
local remaining = tonumber(ARGV[5])
local after = tonumber(ARGV[6])
local reset_at = now + after
local st = redis.call('HMGET', k, 'remaining', 'reset_at', 'window')
local window = math.max(after, tonumber(st[3] or 0))
if st[2] and reset_at <= tonumber(st[2]) + 250 then
  -- The same window.  Its end is the later of the two: a window TAKE opened
  -- starts when the request left, Discord's when it arrived.
  remaining = math.min(remaining, tonumber(st[1]))
  reset_at = math.max(reset_at, tonumber(st[2]))
end
redis.call('HSET', k, 'remaining', remaining, 'reset_at', reset_at, 'limit', ARGV[4],
  'window', window)
redis.call('PEXPIRE', k, window + 60000)
return remaining
"""

#: How long a request that finds a bucket out holds the others back if its
#: answer never comes (it failed): they go on without the shared state then.
ROUTE_PROBE_MS = 1000


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
        self._acquire: AsyncScript = redis.register_script(_CLOCK + _ACQUIRE)
        self._release: AsyncScript = redis.register_script(_CLOCK + _RELEASE)
        self._heartbeat: AsyncScript = redis.register_script(_CLOCK + _HEARTBEAT)
        self._route_take: AsyncScript = redis.register_script(_CLOCK + _ROUTE_TAKE)
        self._route_seen: AsyncScript = redis.register_script(_CLOCK + _ROUTE_SEEN)

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

    async def route_take(
        self, key: str, route: str, major: str, *, now_ms: int | None = None
    ) -> int:
        """Take a place in the bucket ``route`` maps to: 0, or the ms to wait first."""
        async with asyncio.timeout(self.timeout):
            return int(
                await self._route_take(
                    keys=[f"{key}:route:{route}"],
                    args=[key, major, _now_arg(now_ms), route, ROUTE_PROBE_MS],
                )
            )

    async def route_seen(
        self,
        key: str,
        route: str,
        major: str,
        *,
        bucket: str | None,
        limit: int = 0,
        remaining: int = 0,
        reset_after_ms: int = 0,
        unlimited: bool = False,
        now_ms: int | None = None,
    ) -> None:
        """What a response's X-RateLimit-* headers said about its bucket.  ``bucket``
        None: no headers; ``unlimited``: on a successful answer (the route has none)."""
        async with asyncio.timeout(self.timeout):
            await self._route_seen(
                keys=[f"{key}:route:{route}"],
                args=[
                    key,
                    major,
                    bucket or "",
                    limit,
                    remaining,
                    reset_after_ms,
                    _now_arg(now_ms),
                    route,
                    "1" if unlimited else "0",
                ],
            )

    async def aclose(self) -> None:
        await self.redis.aclose()
