"""Which storage tier is reachable right now (a small circuit breaker per tier).

After one failed call a tier is marked down and Cortex stops calling it on the
hot path: each call to a dead server would otherwise spend its client's
retries and timeouts inside the user's turn.  A background probe marks it up
again; the transition triggers the catch-up work (flush the outbox, refill
the hot tier).
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)

#: Errors that mean "the server is unreachable", not "this request was wrong".
REDIS_DOWN: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


def postgres_down(exc: BaseException) -> bool:
    if isinstance(exc, (OperationalError, InterfaceError, OSError, TimeoutError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class TierHealth:
    def __init__(self, name: str) -> None:
        self.name = name
        self.up = True
        self.changed = asyncio.Event()

    def mark_down(self, exc: BaseException) -> None:
        if self.up:
            log.warning(
                "%s is unreachable (%s); Cortex degrades until it returns", self.name, _short(exc)
            )
            self.up = False
            self.changed.set()

    def mark_up(self) -> None:
        if not self.up:
            log.warning("%s is reachable again", self.name)
            self.up = True
            self.changed.set()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
