"""Server-sent events from an SDK's raw streaming response, parsed as plain dicts.

Both SDKs can hand us the raw response (``with_streaming_response``) while
still doing auth, headers, base URLs and error translation.  We parse the SSE
lines ourselves because the SDKs build a pydantic object per chunk, which at
thousands of chunks per second (hundreds of concurrent replies) costs more
CPU than everything else in a turn and stalls the event loop.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SSEvent:
    event: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


async def iter_sse(lines: AsyncIterator[str]) -> AsyncIterator[SSEvent]:
    """The SSE framing rules: ``field: value`` lines, a blank line ends an event."""
    event: str | None = None
    data: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SSEvent(event, "\n".join(data))
            event, data = None, []
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield SSEvent(event, "\n".join(data))
