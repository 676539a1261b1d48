"""Each scope's current mood in Redis: the cache in front of ``companion_state``,
shared by every Clara process on the same Redis.

Key schema: ``mood:{scope}`` (a JSON object: levels, times, owner; a TTL of a
day, refreshed by every change: a mood decays to its baseline within hours, so
an entry nobody touched for a day is not worth keeping, and a stale one left by
an accident cannot outlive a day) and ``mood:owner:{user}`` (a set of the
scopes that are that user's one-to-one conversations, for ``/clara forget``).

Redis being down must cost speed only, never a reply: after one failed call the
cache is marked down (logged once) and every call raises ``MoodCacheDown``
without touching the network, so the caller falls back to its in-process copy
and PostgreSQL.  A background probe marks it up again (logged once), but first
drops the keys of scopes changed while it was down (their Redis copy is older
than PostgreSQL's) and runs the deletions ``/clara forget`` asked for meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .companion import StoredMood

log = logging.getLogger(__name__)

PREFIX = "mood"
TTL = timedelta(days=1)
#: Seconds between probes while Redis is down.
PROBE_INTERVAL = 2.0
#: Errors that mean Redis is unreachable (not that a request was wrong).
_DOWN = (RedisError, OSError, TimeoutError)


class MoodCacheDown(Exception):
    """Redis is unreachable; the caller answers from memory and PostgreSQL."""


def _key(scope: str) -> str:
    return f"{PREFIX}:{scope}"


def _owner_key(user_id: str) -> str:
    return f"{PREFIX}:owner:{user_id}"


def _when(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _dump(mood: StoredMood) -> str:
    return json.dumps(
        {
            "levels": mood.levels,
            "at": mood.at.isoformat(),
            "last_user_at": mood.last_user_at.isoformat() if mood.last_user_at else None,
            "last_clara_at": mood.last_clara_at.isoformat() if mood.last_clara_at else None,
            "owner": mood.owner_user_id,
        }
    )


def _load(raw: str) -> StoredMood | None:
    try:
        data = json.loads(raw)
        at = _when(data["at"])
        if at is None:
            return None
        return StoredMood(
            {str(k): float(v) for k, v in data["levels"].items()},
            at,
            _when(data.get("last_user_at")),
            _when(data.get("last_clara_at")),
            data.get("owner"),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # unreadable (another version wrote it): PostgreSQL answers instead


class MoodCache:
    def __init__(
        self, redis: Redis, *, ttl: timedelta = TTL, probe_interval: float = PROBE_INTERVAL
    ) -> None:
        self.redis = redis
        self.ttl = max(1, int(ttl.total_seconds()))
        self.probe_interval = probe_interval
        self._up = True
        self._dirty: set[str] = set()  # scopes changed while Redis was down
        self._forgotten: set[str] = set()  # users /clara forget asked for while it was down
        self._probe: asyncio.Task[None] | None = None
        #: Called (no arguments) each time Redis is back and consistent again.
        self.on_recover: list[Callable[[], None]] = []

    @property
    def up(self) -> bool:
        return self._up

    def _mark_down(self, exc: BaseException) -> None:
        if self._up:
            self._up = False
            log.warning(
                "mood cache: Redis is unreachable (%s: %s); the mood is kept in this process "
                "and PostgreSQL until it returns",
                type(exc).__name__,
                str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "",
            )
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(
                self._probe_until_up(), name="mood-cache-probe"
            )

    def _check(self) -> None:
        if not self._up:
            raise MoodCacheDown("Redis is unreachable")

    async def get(self, scope: str) -> StoredMood | None:
        self._check()
        try:
            raw = await self.redis.get(_key(scope))
        except _DOWN as exc:
            self._mark_down(exc)
            raise MoodCacheDown(str(exc)) from exc
        return _load(raw) if raw is not None else None

    async def put(self, scope: str, mood: StoredMood) -> None:
        if not self._up:
            self._dirty.add(scope)  # its Redis copy is older than this from now on
            raise MoodCacheDown("Redis is unreachable")
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(_key(scope), _dump(mood), ex=self.ttl)
                if mood.owner_user_id is not None:
                    owner = _owner_key(mood.owner_user_id)
                    pipe.sadd(owner, scope)
                    pipe.expire(owner, self.ttl)
                await pipe.execute()
        except _DOWN as exc:
            self._dirty.add(scope)
            self._mark_down(exc)
            raise MoodCacheDown(str(exc)) from exc

    async def fill(self, scope: str, mood: StoredMood) -> None:
        """Cache what PostgreSQL holds, unless a process wrote a newer state meanwhile
        (SET NX): a read must never overwrite a change."""
        self._check()
        try:
            await self.redis.set(_key(scope), _dump(mood), ex=self.ttl, nx=True)
        except _DOWN as exc:
            self._mark_down(exc)
            raise MoodCacheDown(str(exc)) from exc

    async def _delete_owner(self, user_id: str) -> int:
        owner = _owner_key(user_id)
        scopes = list(await self.redis.smembers(owner))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(owner, *(_key(s) for s in scopes))
            (deleted,) = await pipe.execute()
        return int(deleted) - 1 if scopes else int(deleted)  # the scopes, not the index

    async def delete_user_data(self, user_id: str, scopes: Iterable[str] = ()) -> int:
        """The cached state of the user's one-to-one conversations (those Redis lists
        for them, and ``scopes``, the ones PostgreSQL knows).  Redis down: the
        deletion is remembered and done before the cache is used again, and
        ``MoodCacheDown`` says it is not done yet."""
        scopes = list(scopes)
        if not self._up:
            self._forgotten.add(user_id)
            self._dirty.update(scopes)
            raise MoodCacheDown("Redis is unreachable")
        try:
            deleted = await self._delete_owner(user_id)
            if scopes:
                deleted += int(await self.redis.delete(*(_key(s) for s in scopes)))
            return deleted
        except _DOWN as exc:
            self._forgotten.add(user_id)
            self._dirty.update(scopes)
            self._mark_down(exc)
            raise MoodCacheDown(str(exc)) from exc

    async def _probe_until_up(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval)
            try:
                await self.redis.ping()
                # Stale copies and pending deletions first; only then is it used
                # again.  Anything added meanwhile is handled before the switch
                # (no await between the last check and marking it up).
                while self._dirty or self._forgotten:
                    dirty, self._dirty = self._dirty, set()
                    forgotten, self._forgotten = self._forgotten, set()
                    try:
                        if dirty:
                            await self.redis.delete(*(_key(s) for s in dirty))
                        for user_id in forgotten:
                            await self._delete_owner(user_id)
                    except BaseException:
                        self._dirty |= dirty
                        self._forgotten |= forgotten
                        raise
            except asyncio.CancelledError:
                raise
            except _DOWN:
                continue
            self._up = True
            log.warning("mood cache: Redis is reachable again")
            for callback in self.on_recover:
                callback()
            return

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
