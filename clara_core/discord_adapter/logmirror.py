"""Mirror Clara's log to a Discord channel (DISCORD_LOG_CHANNEL_ID).

Lines are batched into code blocks (one message every few seconds at most),
sent at the lowest write priority so conversations never wait for logs, and
redacted by the same filter as every other handler.  Lifecycle events (🟢
started, 🔴 shutting down, 🟡 disconnected, 🔄 resumed) go out as their own
lines.  Records about sending to Discord itself are not mirrored, so the
mirror can't feed itself; when Discord is slow the buffer is bounded and
says how many lines it dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

import discord

from clara_core.logging_setup import FORMAT, RedactingFilter, Redactor

from .pacing import ChannelPacer, Priority

log = logging.getLogger(__name__)

BATCH_INTERVAL_S = 3.0
MAX_BUFFERED_LINES = 500
MESSAGE_BUDGET = 1900  # leaves room for the code fence

EVENTS = {"started": "🟢 Clara started", "stopping": "🔴 Clara shutting down",
          "disconnected": "🟡 disconnected from Discord", "resumed": "🔄 Discord session resumed"}  # fmt: skip


class _QueueHandler(logging.Handler):
    def __init__(self, mirror: LogMirror, redactor: Redactor) -> None:
        super().__init__(logging.INFO)
        self.mirror = mirror
        self.setFormatter(logging.Formatter(FORMAT))
        self.addFilter(RedactingFilter(redactor))

    def filter(self, record: logging.LogRecord) -> bool:
        # discord.py's own chatter (and ours about this mirror) would loop.
        if record.name.startswith("discord") and record.levelno < logging.WARNING:
            return False
        if record.name == __name__:
            return False
        return super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.mirror.push(self.format(record))
        except Exception:
            self.handleError(record)


class LogMirror:
    def __init__(
        self, client: discord.Client, channel_id: int, pacer: ChannelPacer, redactor: Redactor
    ) -> None:
        self.client = client
        self.channel_id = channel_id
        self.pacer = pacer
        self.handler = _QueueHandler(self, redactor)
        self._lines: deque[str] = deque()
        self._dropped = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def started(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        logging.getLogger().addHandler(self.handler)
        self._task = asyncio.create_task(self._run(), name="log-mirror")

    def push(self, line: str) -> None:
        """Thread-safe: log records may come from any thread."""
        if len(self._lines) >= MAX_BUFFERED_LINES:
            self._lines.popleft()
            self._dropped += 1
        self._lines.append(line)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake.set)

    def event(self, kind: str) -> None:
        self.push(EVENTS[kind])

    def _take_batch(self) -> str:
        out: list[str] = []
        size = 0
        if self._dropped:
            out.append(f"... {self._dropped} line(s) dropped while Discord was slow")
            size = len(out[0])
            self._dropped = 0
        while self._lines:
            line = self._lines[0][:MESSAGE_BUDGET]
            if size + len(line) + 1 > MESSAGE_BUDGET:
                break
            out.append(line)
            size += len(line) + 1
            self._lines.popleft()
        return "\n".join(out)

    async def _send(self, text: str) -> None:
        channel = self.client.get_channel(self.channel_id)
        if channel is None:
            channel = await self.client.fetch_channel(self.channel_id)
        async with self.pacer.slot(self.channel_id, Priority.LOG):
            await channel.send(f"```\n{text.replace('```', 'ˋˋˋ')}\n```")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(BATCH_INTERVAL_S)  # let a batch accumulate
            while self._lines or self._dropped:
                batch = self._take_batch()
                try:
                    await self._send(batch)
                except (discord.HTTPException, discord.ClientException) as exc:
                    log.warning("log mirror could not post (%s); keeping lines for later", exc)
                    await asyncio.sleep(10)
                    break

    async def flush(self, timeout: float = 10.0) -> None:
        """Send what is buffered (used at shutdown, after the 🔴 line)."""
        with contextlib.suppress(TimeoutError, discord.HTTPException, discord.ClientException):
            async with asyncio.timeout(timeout):
                while self._lines or self._dropped:
                    await self._send(self._take_batch())

    async def stop(self) -> None:
        logging.getLogger().removeHandler(self.handler)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
