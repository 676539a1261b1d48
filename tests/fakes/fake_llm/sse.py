"""Server-sent-event encoding and the :class:`StreamPlan` a wire renders a reply into."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def data_event(obj: Any) -> bytes:
    """``data: {...}`` (OpenAI style)."""
    return b"data: " + dumps(obj) + b"\n\n"


def named_event(name: str, obj: Any) -> bytes:
    """``event: name`` + ``data: {...}`` (Anthropic style)."""
    return b"event: " + name.encode() + b"\ndata: " + dumps(obj) + b"\n\n"


@dataclass(frozen=True)
class StreamPlan:
    """A rendered stream.

    ``head`` goes out with the response headers; ``steps[i]`` (one scripted piece,
    with any structural events that precede it) at ``first_token_delay + i *
    chunk_delay``; ``tail`` (closing events) right after the last step.  Interrupted
    responses (Hang, Drop, StreamError) send ``head`` and ``steps`` only.
    """

    head: bytes
    steps: list[bytes]
    tail: bytes


class PlanBuilder:
    """Collects events into a :class:`StreamPlan`.

    ``head()`` events are sent at once; ``emit()`` events (block starts/stops) ride
    along with the next ``step()`` or, if none follows, with the tail.
    """

    def __init__(self) -> None:
        self._head: list[bytes] = []
        self._steps: list[bytes] = []
        self._pending: list[bytes] = []

    def head(self, event: bytes) -> None:
        self._head.append(event)

    def emit(self, event: bytes) -> None:
        self._pending.append(event)

    def step(self, event: bytes) -> None:
        self._pending.append(event)
        self._steps.append(b"".join(self._pending))
        self._pending.clear()

    def build(self) -> StreamPlan:
        return StreamPlan(b"".join(self._head), self._steps, b"".join(self._pending))
