"""The hot tier in Redis: identity, session, working memory, recent buffer, meta.

Key schema (per user): ``cortex:{user}:identity`` (hash, JSON values),
``:session`` (hash, 24 h TTL refreshed on update), ``:working`` (zset: member
= memory id, score = *expiry* time) with ``:working:data`` (hash id -> JSON),
``:recent`` (list, newest first, capped at 50) and ``:meta`` (hash).

Working memory scores are expiry times, so reads ask only for members whose
expiry lies in the future: an expired entry is never returned even if nobody
pruned it.  Writes and the cleanup job prune what expired, and the keys carry
a TTL of the latest expiry, so an abandoned user's working memory disappears
by itself.  Time comes from an injected clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from .scoring import working_ttl
from .types import Memory, check_user_id

PREFIX = "cortex"
SESSION_TTL_S = 24 * 3600
RECENT_CAP = 50


def _now() -> datetime:
    return datetime.now(UTC)


# KEYS: working zset, working data hash.  ARGV: id, expiry, json, now.
_ADD_WORKING = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[4], 'LIMIT', 0, 1000)
if #expired > 0 then
  redis.call('ZREM', KEYS[1], unpack(expired))
  redis.call('HDEL', KEYS[2], unpack(expired))
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #last > 0 then
  local keep = math.max(1, math.floor(tonumber(last[2]) - tonumber(ARGV[4])) + 1)
  redis.call('EXPIRE', KEYS[1], keep)
  redis.call('EXPIRE', KEYS[2], keep)
end
return #expired
"""


class HotStore:
    def __init__(self, redis: Redis, *, clock: Callable[[], datetime] = _now) -> None:
        self.redis = redis
        self.clock = clock
        self._add_working = redis.register_script(_ADD_WORKING)

    def _key(self, user_id: str, suffix: str) -> str:
        return f"{PREFIX}:{check_user_id(user_id)}:{suffix}"

    def _ts(self) -> float:
        return self.clock().timestamp()

    async def ping(self) -> None:
        await self.redis.ping()

    # -- identity -------------------------------------------------------------

    async def get_identity(self, user_id: str) -> dict[str, Any]:
        raw = await self.redis.hgetall(self._key(user_id, "identity"))
        return {k: json.loads(v) for k, v in raw.items()}

    async def update_identity(self, user_id: str, fields: dict[str, Any]) -> None:
        """Merge fields (JSON values); ``None`` removes a field."""
        key = self._key(user_id, "identity")
        to_set = {k: json.dumps(v) for k, v in fields.items() if v is not None}
        to_del = [k for k, v in fields.items() if v is None]
        async with self.redis.pipeline(transaction=True) as pipe:
            if to_set:
                pipe.hset(
                    key, mapping={**to_set, "updated_at": json.dumps(self.clock().isoformat())}
                )
            if to_del:
                pipe.hdel(key, *to_del)
            await pipe.execute()

    # -- session --------------------------------------------------------------

    async def get_session(self, user_id: str) -> dict[str, Any]:
        raw = await self.redis.hgetall(self._key(user_id, "session"))
        return {k: json.loads(v) for k, v in raw.items()}

    async def update_session(self, user_id: str, fields: dict[str, Any]) -> None:
        key = self._key(user_id, "session")
        mapping = {k: json.dumps(v) for k, v in fields.items()}
        mapping["last_active"] = json.dumps(self.clock().isoformat())
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, SESSION_TTL_S)
            await pipe.execute()

    async def end_session(self, user_id: str) -> dict[str, Any]:
        """Remove the session and return what it held (for the warm tier)."""
        session = await self.get_session(user_id)
        await self.redis.delete(self._key(user_id, "session"))
        return session

    # -- working memory -------------------------------------------------------

    async def add_working(self, memory: Memory, *, ttl_s: int | None = None) -> float:
        """Store ``memory`` until now + TTL (from its emotional score); returns the expiry.

        One atomic script, one round trip: add, prune what expired, and give the
        keys the TTL of their longest-lived member."""
        ttl = ttl_s if ttl_s is not None else working_ttl(memory.emotional_score)
        now = self._ts()
        expires = now + ttl
        await self._add_working(
            keys=[
                self._key(memory.user_id, "working"),
                self._key(memory.user_id, "working:data"),
            ],
            args=[memory.id, expires, json.dumps(memory.to_json_dict()), now],
        )
        return expires

    async def get_working(self, user_id: str, limit: int | None = None) -> list[Memory]:
        """Unexpired working memories, longest-lived first."""
        now = self._ts()
        zkey = self._key(user_id, "working")
        ids = await self.redis.zrevrangebyscore(
            zkey, "+inf", f"({now}", start=0 if limit else None, num=limit
        )
        if not ids:
            return []
        raw = await self.redis.hmget(self._key(user_id, "working:data"), ids)
        return [Memory.from_json_dict(json.loads(r)) for r in raw if r is not None]

    async def _prune(self, user_id: str, now: float) -> int:
        zkey = self._key(user_id, "working")
        expired = await self.redis.zrangebyscore(zkey, "-inf", now)
        if not expired:
            return 0
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(zkey, *expired)
            pipe.hdel(self._key(user_id, "working:data"), *expired)
            await pipe.execute()
        return len(expired)

    async def cleanup(self, user_id: str) -> int:
        """Drop expired working memories (the hourly job calls this)."""
        return await self._prune(user_id, self._ts())

    async def forget_working(self, user_id: str, memory_id: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._key(user_id, "working"), memory_id)
            pipe.hdel(self._key(user_id, "working:data"), memory_id)
            removed, _ = await pipe.execute()
        return bool(removed)

    # -- recent buffer and meta ---------------------------------------------------

    async def push_recent(self, user_id: str, memory_id: str) -> None:
        key = self._key(user_id, "recent")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, memory_id)
            pipe.ltrim(key, 0, RECENT_CAP - 1)
            await pipe.execute()

    async def get_recent(self, user_id: str, limit: int = 10) -> list[str]:
        return await self.redis.lrange(self._key(user_id, "recent"), 0, limit - 1)

    async def get_meta(self, user_id: str) -> dict[str, str]:
        return await self.redis.hgetall(self._key(user_id, "meta"))

    async def note_stored(self, user_id: str, memory_ids: list[str]) -> None:
        """New memories go on the recent list; ``meta`` counts them and notes when."""
        recent, meta = self._key(user_id, "recent"), self._key(user_id, "meta")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(recent, *memory_ids)
            pipe.ltrim(recent, 0, RECENT_CAP - 1)
            pipe.hincrby(meta, "memories_stored", len(memory_ids))
            pipe.hset(meta, "last_stored_at", self.clock().isoformat())
            await pipe.execute()

    async def update_meta(self, user_id: str, fields: dict[str, str | int | float]) -> None:
        await self.redis.hset(
            self._key(user_id, "meta"), mapping={k: str(v) for k, v in fields.items()}
        )

    # -- privacy --------------------------------------------------------------

    async def delete_user_data(self, user_id: str) -> int:
        """Every hot key of this user, and only this user's."""
        keys = [
            self._key(user_id, s)
            for s in ("identity", "session", "working", "working:data", "recent", "meta")
        ]
        return await self.redis.delete(*keys)
