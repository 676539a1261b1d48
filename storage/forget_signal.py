"""``/clara forget`` reaches every Clara process on the shared Redis.

The shared stores (PostgreSQL, Redis) are cleared by the process the user asked;
but each process also keeps things of its own: the mood it holds while Redis is
away, the speech choices it cached, memories and conversation turns queued on
its disk while PostgreSQL was away, files in its own data folder, the Cortex
"forget epoch" that stops a turn still in flight from writing memories after the
forget.  The asking process publishes the user's id on ``clara:forget`` (Redis
pub/sub); every other process runs its own deletion of those per-process things
(``handler``), which is idempotent for the shared parts.

Pub/sub delivers to whoever listens *now*: a process cut off from Redis when the
forget is published never hears it.  That is why the per-process caches also
expire on their own (pipeline/mood.py: ``LOCAL_TTL_S``; discord_adapter/
voice_channels.py: ``CHOICE_TTL_S``) and the mood's in-process copy is dropped
when Redis returns: whatever a process missed is gone within those bounds.
Redis down at the asking process: the publish is skipped with a warning; the
same bounds apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from clara_core.errors import one_line

log = logging.getLogger(__name__)

CHANNEL = "clara:forget"
#: Seconds between tries to subscribe again while Redis is down.
RETRY_INTERVAL = 2.0
_DOWN = (RedisError, OSError, TimeoutError)

Handler = Callable[[str], Awaitable[object]]


class ForgetSignal:
    """Publishes forgets to, and hears them from, the other processes on ``redis``.

    As a user-data store (``delete_user_data``) it is one of the things
    ``/clara forget`` clears: "copies in other Clara processes"."""

    def __init__(
        self,
        redis: Redis,
        handler: Handler | None = None,
        *,
        retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        self.redis = redis
        #: Run for a user forgotten in another process (never for this one's own).
        self.handler = handler
        self.retry_interval = retry_interval
        # Unique per instance: a process hears its own publish and skips it.
        self.origin = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: Set while subscribed (tests wait for it; a publish before it is not heard).
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._listen(), name="forget-signal"
            )

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def delete_user_data(self, user_id: str) -> int:
        """Tell the other processes; returns how many heard it (Redis counts the
        subscribers a message reached; this process is one of them while it
        listens).  Raises when Redis does not answer: the report then says the
        copies could not be cleared (they expire on their own, see above)."""
        payload = json.dumps({"user_id": user_id, "origin": self.origin})
        try:
            heard = int(await self.redis.publish(CHANNEL, payload))
        except _DOWN as exc:
            log.warning(
                "forget: Redis is unreachable (%s); other Clara processes drop their "
                "copies of the user's data when these expire, not at once",
                one_line(exc),
            )
            raise
        return max(0, heard - (1 if self.listening.is_set() else 0))

    async def _listen(self) -> None:
        down = False
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                if down:
                    log.warning("forget signal: Redis is reachable again; listening")
                    down = False
                self.listening.set()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                    if message is not None:
                        await self._handle(message.get("data"))
            except asyncio.CancelledError:
                raise
            except _DOWN as exc:
                self.listening.clear()
                if not down:
                    log.warning(
                        "forget signal: Redis is unreachable (%s); forgets in other processes "
                        "reach this one's caches only when they expire until it returns",
                        one_line(exc),
                    )
                    down = True
                await asyncio.sleep(self.retry_interval)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _handle(self, data: object) -> None:
        try:
            raw = data.decode() if isinstance(data, bytes) else str(data)
            message = json.loads(raw)
            user_id, origin = str(message["user_id"]), message.get("origin")
        except (ValueError, KeyError, TypeError):
            log.warning("forget signal: ignored an unreadable message")
            return
        if origin == self.origin or self.handler is None:
            return
        try:
            await self.handler(user_id)
        except Exception:  # one failed deletion must not stop the listening
            log.exception("forget signal: clearing a user forgotten in another process failed")
