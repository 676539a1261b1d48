"""A reply that appears quickly and grows by paced edits.

``StreamingReply`` owns the Discord messages of one answer.  Text arrives in
deltas; a background task renders the current state at most once per pacer
slot: the answer split into <=2000-character messages (new messages are
sent as the text overflows), plus one status line for tool progress.  The
final render always carries the complete text; a very long answer is sent
as a file with a short preview instead of a wall of messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging

import discord

from .pacing import ChannelPacer, Priority
from .splitting import DISCORD_LIMIT, split_message

log = logging.getLogger(__name__)

FOOTER_ROOM = 120  # characters kept free in the last message for status/badge
MAX_MESSAGES = 4  # beyond this, the full answer goes out as a file
TYPING_EVERY_S = 8.0
TYPING_AFTER_S = 1.0  # most models answer sooner: don't spend a request on typing


class StreamingReply:
    def __init__(
        self,
        reply_to: discord.Message,
        pacer: ChannelPacer,
        *,
        limit: int = DISCORD_LIMIT,
    ) -> None:
        self.reply_to = reply_to
        self.channel = reply_to.channel
        self.pacer = pacer
        self.limit = limit
        self.text = ""
        self.status: str | None = None
        self.footer: str | None = None
        self.messages: list[discord.Message] = []
        self._dirty = asyncio.Event()
        self._closed = False
        self._updater: asyncio.Task[None] | None = None
        self._typing: asyncio.Task[None] | None = None

    # -- feeding -------------------------------------------------------------

    def start(self) -> None:
        self._typing = asyncio.create_task(self._keep_typing(), name="typing")
        self._updater = asyncio.create_task(self._update_loop(), name="reply-updater")

    def append(self, delta: str) -> None:
        self.text += delta
        self._dirty.set()

    def set_status(self, line: str | None) -> None:
        self.status = line
        self._dirty.set()

    # -- rendering -----------------------------------------------------------

    def _render(self, *, final: bool) -> list[str]:
        body = self.text if self.text.strip() else ("…" if not final else "")
        chunks = split_message(body, self.limit - FOOTER_ROOM) if body else []
        tail = [line for line in (self.status, self.footer) if line]
        if tail:
            extra = "\n".join(f"-# {line}" for line in tail)
            if chunks:
                chunks[-1] = f"{chunks[-1]}\n{extra}"
            else:
                chunks = [extra]
        return chunks

    async def _write(self, index: int, content: str, *, file: discord.File | None = None) -> None:
        if index < len(self.messages) and self.messages[index].content == content and file is None:
            return  # unchanged: costs no write slot
        priority = Priority.EDIT if index < len(self.messages) else Priority.FIRST_MESSAGE
        async with self.pacer.slot(self.channel.id, priority):
            if index < len(self.messages):
                if self.messages[index].content != content or file is not None:
                    kwargs = {"attachments": [file]} if file is not None else {}
                    self.messages[index] = await self.messages[index].edit(
                        content=content, **kwargs
                    )
            else:
                if not self.messages:
                    msg = await self.reply_to.reply(
                        content, mention_author=False, **({"file": file} if file else {})
                    )
                else:
                    msg = await self.channel.send(content, **({"file": file} if file else {}))
                self.messages.append(msg)
                self._stop_typing()

    async def _sync(self, chunks: list[str]) -> None:
        for i, chunk in enumerate(chunks):
            await self._write(i, chunk)

    async def _update_loop(self) -> None:
        while not self._closed:
            await self._dirty.wait()
            self._dirty.clear()
            if self._closed:
                return
            chunks = self._render(final=False)
            # While streaming, only the messages that are complete plus the
            # growing last one are written; earlier ones don't change.
            try:
                await self._sync(chunks)
            except discord.HTTPException as exc:
                log.warning("streaming edit failed (%s); the final edit will retry", exc)

    async def _keep_typing(self) -> None:
        with contextlib.suppress(discord.HTTPException, asyncio.CancelledError):
            await asyncio.sleep(TYPING_AFTER_S)
            while not self.messages:
                if self.pacer.budget is not None:
                    await self.pacer.budget.acquire(Priority.TYPING)
                await self.channel.typing()
                await asyncio.sleep(TYPING_EVERY_S)

    def _stop_typing(self) -> None:
        if self._typing is not None and asyncio.current_task() is not self._typing:
            self._typing.cancel()

    async def _stop_updates(self) -> None:
        self._closed = True
        self._dirty.set()
        for task in (self._updater, self._typing):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, discord.HTTPException):
                    await task

    # -- finishing -----------------------------------------------------------

    async def finish(self, final_text: str, *, footer: str | None = None) -> None:
        """Render the complete answer. Never loses text: retries, then falls back to a file."""
        await self._stop_updates()
        self.text, self.status, self.footer = final_text, None, footer
        chunks = self._render(final=True)
        if len(chunks) > MAX_MESSAGES:
            await self._send_as_file(footer)
            return
        for attempt in range(3):
            try:
                await self._sync(chunks)
                # Messages left over from a longer intermediate render go away.
                for extra in self.messages[len(chunks) :]:
                    with contextlib.suppress(discord.HTTPException):
                        await extra.delete()
                del self.messages[len(chunks) :]
                return
            except discord.HTTPException as exc:
                log.warning("final edit failed (attempt %d): %s", attempt + 1, exc)
                await asyncio.sleep(1 + attempt)
        await self._send_as_file(footer)

    async def _send_as_file(self, footer: str | None) -> None:
        preview = self.text[:1200].rsplit("\n", 1)[0]
        note = f"{preview}\n\n-# The full answer ({len(self.text):,} characters) is attached."
        if footer:
            note += f"\n-# {footer}"
        attachment = discord.File(io.BytesIO(self.text.encode()), filename="clara-reply.md")
        if self.messages:
            await self._write(0, note[: self.limit], file=attachment)
            for extra in self.messages[1:]:
                with contextlib.suppress(discord.HTTPException):
                    await extra.delete()
            del self.messages[1:]
        else:
            await self._write(0, note[: self.limit], file=attachment)

    async def abort(self, note: str) -> None:
        """Stop streaming and leave what was written, marked with ``note``."""
        await self._stop_updates()
        self.status, self.footer = None, note
        if self.messages or self.text:
            with contextlib.suppress(discord.HTTPException):
                await self._sync(self._render(final=True)[:MAX_MESSAGES])
