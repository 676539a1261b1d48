"""Redis client construction (redis-py asyncio with hiredis)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError


def create_redis(url: str, *, decode_responses: bool = True) -> Redis:
    """A client that retries transient failures a few times before surfacing them.

    The asyncio client needs the asyncio ``Retry``: the synchronous one works only
    after redis-py converts it, with a UserWarning on every start.
    """
    return Redis.from_url(
        url,
        decode_responses=decode_responses,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=3),
        retry_on_error=[ConnectionError, TimeoutError, BusyLoadingError],
        health_check_interval=30,
        socket_connect_timeout=5,
        socket_timeout=10,
    )
