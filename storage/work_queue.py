"""The queue between Clara's shard processes and ``worker`` processes.

taskiq on a Redis Stream with one consumer group: every job goes to exactly one
worker, is acknowledged only after it ran (a worker killed mid-job leaves it
pending, and another worker claims it once it has been idle for
``redeliver_after_s``), and the stream lives in the Redis Clara already uses, so
there is nothing new to run.  Only ``storage/`` talks to Redis: callers get a
broker and plain functions.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
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


def build_broker(redis_url: str, *, redeliver_after_s: float = 600.0) -> RedisStreamBroker:
    # consumer_id "0": a group created after jobs were queued still sees them
    # (taskiq's default "$" would skip everything queued before the first worker).
    return RedisStreamBroker(
        redis_url,
        queue_name=STREAM,
        consumer_group_name=GROUP,
        consumer_name=consumer_name(),
        consumer_id="0",
        xread_block=1000,
        maxlen=MAX_STREAM_LENGTH,
        idle_timeout=int(redeliver_after_s * 1000),
        unacknowledged_lock_timeout=30,
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
