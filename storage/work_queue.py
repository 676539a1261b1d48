"""The queue between Clara's shard processes and ``worker`` processes.

taskiq on a Redis Stream with one consumer group: every job goes to exactly one
worker, is acknowledged only after it ran, and the stream lives in the Redis
Clara already uses, so there is nothing new to run.  Only ``storage/`` talks to
Redis: callers get a broker and plain functions.

A worker killed mid-job leaves its entry pending under its consumer name;
``ClaraStreamBroker`` gives it to a live worker once it has been idle for
``redeliver_after_s`` (CORTEX_WORKER_REDELIVER_SECONDS), and a live worker keeps
the entries it holds fresh, so a job that merely runs long is never taken from it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncGenerator
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import AckableMessage
from taskiq.kicker import AsyncKicker
from taskiq_redis import RedisStreamBroker

log = logging.getLogger(__name__)

#: The stream and the consumer group every Clara process and worker share.
STREAM = "clara:work"
GROUP = "clara-workers"
#: Finished entries are trimmed past this length (approximately: cheap for Redis).
MAX_STREAM_LENGTH = 100_000


def consumer_name() -> str:
    """One name per worker process: the pending-entries list says who holds a job."""
    return f"{socket.gethostname()}-{os.getpid()}"


class ClaraStreamBroker(RedisStreamBroker):
    """taskiq-redis's stream broker, with redelivery that does not wait for new jobs.

    Why a subclass: ``RedisStreamBroker.listen`` (taskiq-redis 1.2) runs XAUTOCLAIM
    only after an XREADGROUP returned *new* entries, so a dead worker's job waited
    for the next job to be queued (hours, on a quiet night) on top of the idle
    time; and nothing kept the entry of a job that merely runs long from looking
    idle, so a short idle time would hand a live worker's job to a second worker.
    ``listen`` is the one method every taskiq broker implements (taskiq's broker
    interface), so this overrides it and nothing private.  The library's lock
    around XAUTOCLAIM is left out: XAUTOCLAIM is atomic, an entry goes to one caller.
    """

    def __init__(self, url: str, *, redeliver_after_s: float, **kwargs: Any) -> None:
        super().__init__(url, idle_timeout=int(redeliver_after_s * 1000), **kwargs)
        self.redeliver_after_s = redeliver_after_s
        #: How often idle entries are looked for, and held ones refreshed: several
        #: times per idle period, so a live worker's entries never reach it.
        self.check_every_s = min(max(redeliver_after_s / 4, 0.25), 30.0)
        #: Entries this process read or took over and has not acknowledged yet (read
        #: ahead and waiting for a free slot counts: those must not look idle either).
        self._held: set[bytes] = set()

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        async with Redis(connection_pool=self.connection_pool) as conn:
            next_check = 0.0  # at once: a worker started after a crash takes over
            while True:
                fetched = await conn.xreadgroup(
                    self.consumer_group_name,
                    self.consumer_name,
                    {self.queue_name: ">"},
                    block=self.block,
                    count=self.count,
                )
                for _stream, entries in fetched or []:
                    self._held.update(entry_id for entry_id, _ in entries)
                    for entry_id, fields in entries:
                        yield self._message(entry_id, fields)
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.check_every_s
                    async for message in self._take_over_idle(conn):
                        yield message
                    await self._forget_stopped_workers(conn)

    async def _take_over_idle(self, conn: Redis) -> AsyncGenerator[AckableMessage, None]:
        """Entries idle for ``redeliver_after_s``: their worker is gone (killed, or
        hung past the idle time); this worker runs them."""
        cursor: bytes | str = "0-0"
        while True:
            reply = await conn.xautoclaim(
                self.queue_name,
                self.consumer_group_name,
                self.consumer_name,
                min_idle_time=self.idle_timeout,
                start_id=cursor,
                count=self.unacknowledged_batch_size,
            )
            cursor, claimed = reply[0], reply[1]
            self._held.update(entry_id for entry_id, fields in claimed if fields)
            for entry_id, fields in claimed:
                if not fields:  # trimmed from the stream (Redis 6.2 says so): nothing to run
                    await conn.xack(self.queue_name, self.consumer_group_name, entry_id)
                    continue
                log.warning(
                    "worker: took over job %s, unacknowledged for over %.0f s (its worker "
                    "stopped); running it here",
                    entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
                    self.redeliver_after_s,
                )
                yield self._message(entry_id, fields)
            if cursor in (b"0-0", "0-0"):
                return

    async def _forget_stopped_workers(self, conn: Redis) -> None:
        """Drop the consumer names of workers that hold nothing and have not read for
        ``redeliver_after_s``: every worker process registers its own name (host and
        pid), so without this a long-lived deployment piles up the names of every
        worker it ever restarted.  Harmless to a live one caught idle: it holds
        nothing, and its next read registers it again.  One script, so no job can
        be delivered to a name between the check and the delete (its entry would
        leave the pending list with it)."""
        forgotten = await conn.eval(
            _FORGET_STOPPED,
            1,
            self.queue_name,
            self.consumer_group_name,
            self.consumer_name,
            int(self.idle_timeout),
        )
        for name in forgotten or []:
            log.info(
                "worker: forgot stopped worker %s (it held no job)",
                name.decode() if isinstance(name, bytes) else name,
            )

    def _message(self, entry_id: bytes, fields: dict[bytes, bytes]) -> AckableMessage:
        """The job for taskiq's receiver; its ack ends this process's hold on it."""

        async def ack() -> None:
            try:
                async with Redis(connection_pool=self.connection_pool) as conn:
                    await conn.xack(self.queue_name, self.consumer_group_name, entry_id)
            finally:
                # Not held either way: an entry whose XACK failed goes idle and
                # another worker runs it again (at least once, never lost).
                self._held.discard(entry_id)

        return AckableMessage(data=fields[b"data"], ack=ack)

    async def refresh_held(self) -> int:
        """Reset the idle time of the entries this process holds (XCLAIM to itself,
        JUSTID: no delivery is counted); returns how many."""
        ids = list(self._held)
        if ids:
            async with Redis(connection_pool=self.connection_pool) as conn:
                await conn.xclaim(
                    self.queue_name,
                    self.consumer_group_name,
                    self.consumer_name,
                    min_idle_time=0,
                    message_ids=ids,
                    justid=True,
                )
        return len(ids)

    async def ping(self) -> None:
        """One PING to the queue's Redis; raises when it does not answer."""
        async with Redis(connection_pool=self.connection_pool) as conn:
            await conn.ping()

    async def keep_held_fresh(self) -> None:
        """Until cancelled: ``refresh_held`` every ``check_every_s``.  A Redis error
        waits for the next round (the receive loop reports the outage)."""
        while True:
            await asyncio.sleep(self.check_every_s)
            try:
                await self.refresh_held()
            except Exception as exc:
                log.debug("worker: could not refresh held jobs: %r", exc)


#: KEYS[1] the stream; ARGV: group, this worker's name, least idle ms.  Deletes the
#: other consumers with no pending entry idle that long; returns their names.
_FORGET_STOPPED = """
local gone = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['name'] ~= ARGV[2] and tonumber(f['pending']) == 0
     and tonumber(f['idle']) >= tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    table.insert(gone, f['name'])
  end
end
return gone
"""


def build_broker(redis_url: str, *, redeliver_after_s: float = 900.0) -> ClaraStreamBroker:
    # consumer_id "0": a group created after jobs were queued still sees them
    # (taskiq's default "$" would skip everything queued before the first worker).
    return ClaraStreamBroker(
        redis_url,
        redeliver_after_s=redeliver_after_s,
        queue_name=STREAM,
        consumer_group_name=GROUP,
        consumer_name=consumer_name(),
        consumer_id="0",
        xread_block=1000,
        # One job per read or take-over: taskiq's receiver asks for the next job only
        # when it has a free slot, so a worker never holds jobs it cannot start yet
        # (other workers run those); taskiq-redis's default, 100, let one worker hoard
        # a sweep.  A round trip per job is nothing next to a consolidation.
        xread_count=1,
        unacknowledged_batch_size=1,
        maxlen=MAX_STREAM_LENGTH,
    )


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or every error in an exception group) means Redis does not
    answer: the worker says so itself, once, instead of a traceback per retry."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_outage(e) for e in exc.exceptions)
    return isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError)


class QuietOutages(logging.Filter):
    """Drops taskiq's own traceback for a Redis outage (see ``is_outage``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return exc is None or not is_outage(exc)


async def enqueue(broker: RedisStreamBroker, task_name: str, /, **kwargs: Any) -> None:
    """Queue one job by name; the producer need not import the job's code."""
    await AsyncKicker(task_name=task_name, broker=broker, labels={}).kiq(**kwargs)


async def backlog(redis_url: str) -> dict[str, int]:
    """Jobs waiting for a worker and jobs a worker holds but has not acknowledged."""
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        try:
            groups = await client.xinfo_groups(STREAM)
        except ResponseError:  # no stream yet: nothing was ever queued
            return {"waiting": 0, "running": 0}
        group = next((g for g in groups if g["name"] == GROUP), None)
        if group is None:
            return {"waiting": 0, "running": 0}
        lag = group.get("lag")
        if lag is None:  # Redis < 7 has no "lag": count what follows the last delivery
            after = await client.xrange(STREAM, min=f"({group['last-delivered-id']}", max="+")
            lag = len(after)
        return {"waiting": int(lag), "running": int(group["pending"])}
    finally:
        await client.aclose()
