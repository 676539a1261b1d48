"""A reply that appears quickly and grows by paced edits.

``StreamingReply`` owns the Discord messages of one answer.  Text arrives in
deltas; a background task renders the current state at most once per pacer
slot: the answer split into <=2000-character messages (new messages are
sent as the text overflows), plus one status line for tool progress.  The
final render always carries the complete text; a very long answer is sent
as a file with a short preview instead of a wall of messages.  Files the
turn's tools made (a plot) are attached to the last message of the answer,
within Discord's limits (10 files, the server's upload size); what does not
fit is named in a line under the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Sequence

import discord

from storage.local_files import human_size
from tools.registry import ToolAttachment

from .pacing import ChannelPacer, Priority, request_priority
from .splitting import DISCORD_LIMIT, split_message

log = logging.getLogger(__name__)

FOOTER_ROOM = 120  # characters kept free in the last message for status/badge
MAX_MESSAGES = 4  # beyond this, the full answer goes out as a file
TYPING_EVERY_S = 8.0
TYPING_AFTER_S = 1.0  # most models answer sooner: don't spend a request on typing
MAX_FILES = 10  # Discord's attachments per message


def upload_limit(message: discord.Message) -> int:
    """Bytes one message may upload where ``message`` is: by the server's boost tier,
    10 MiB in DMs."""
    guild = message.guild
    return (
        guild.filesize_limit if guild is not None else discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES
    )


def fit_files(
    files: Sequence[ToolAttachment], *, max_bytes: int, max_count: int = MAX_FILES
) -> tuple[list[ToolAttachment], list[ToolAttachment]]:
    """Split ``files`` into what one message can carry (in order) and what it can't."""
    fitting: list[ToolAttachment] = []
    left: list[ToolAttachment] = []
    total = 0
    for f in files:
        if len(fitting) < max_count and total + len(f.data) <= max_bytes:
            fitting.append(f)
            total += len(f.data)
        else:
            left.append(f)
    return fitting, left


def _discord_files(files: Sequence[ToolAttachment]) -> list[discord.File]:
    # A discord.File is spent once sent: build fresh ones for every request.
    return [discord.File(io.BytesIO(f.data), filename=f.filename) for f in files]


def _body(content: str) -> str:
    """A message's answer text, without the ``-# `` status and badge lines."""
    return "\n".join(line for line in content.split("\n") if not line.startswith("-# ")).rstrip()


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
        #: The complete answer is on screen (finish() ran): abort() leaves it alone.
        self.finished = False
        self.messages: list[discord.Message] = []
        self._dirty = asyncio.Event()
        self._closed = False
        self._updater: asyncio.Task[None] | None = None
        self._typing: asyncio.Task[None] | None = None
        self._inflight: asyncio.Future[None] | None = None
        self._file_note = ""
        self._warned = False  # a non-HTTP streaming failure was logged for this reply

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

    async def _write(
        self, index: int, *, final: bool, files: Sequence[ToolAttachment] = ()
    ) -> None:
        """Bring message ``index`` up to date with the state *at write time*; with
        ``files``, the answer-as-file note (``_file_note``) and those attachments."""
        file = _discord_files(files) if files else None
        if file is None and not self._needs_write(index, final):
            return  # unchanged: costs no write slot
        priority = Priority.EDIT if index < len(self.messages) else Priority.FIRST_MESSAGE
        async with self.pacer.slot(self.channel.id, priority):
            # Render after the wait: under load the slot may come seconds later,
            # and the text has grown since.
            chunks = self._render(final=final)
            if file is None and self._cuts_unshown_text(chunks, index):
                # Never take text off the screen that isn't on it elsewhere: the
                # answer outgrew its last message, so post the continuation in this
                # slot and cut this message in the next one (_sync comes back).
                index = len(self.messages)
            if file is None and not self._differs(chunks, index):
                return
            content = self._file_note if file is not None else chunks[index]
            # The request runs as its own task and records its message itself,
            # so cancelling us mid-request can't orphan a message Discord stored.
            self._inflight = asyncio.ensure_future(self._http_write(index, content, file))
            await asyncio.shield(self._inflight)

    def _cuts_unshown_text(self, chunks: list[str], index: int) -> bool:
        """Would writing ``chunks[index]`` remove text that no other message shows?

        Only the last message can hold such text: the part past its split point
        belongs to a message that doesn't exist yet.  Earlier messages were cut
        where their (already posted) continuation begins."""
        if index != len(self.messages) - 1 or len(chunks) <= len(self.messages):
            return False
        shown = _body(self.messages[index].content)
        if shown in ("", "…"):
            return False  # only the placeholder is on screen: nothing to lose
        return not _body(chunks[index]).startswith(shown)

    def _needs_write(self, index: int, final: bool) -> bool:
        return self._differs(self._render(final=final), index)

    def _differs(self, chunks: list[str], index: int) -> bool:
        if index >= len(chunks):
            return False
        return index >= len(self.messages) or self.messages[index].content != chunks[index]

    async def _http_write(self, index: int, content: str, file: list[discord.File] | None) -> None:
        if index < len(self.messages):
            kwargs = {"attachments": file} if file is not None else {}
            self.messages[index] = await self.messages[index].edit(content=content, **kwargs)
            return
        extra = {"files": file} if file is not None else {}
        if not self.messages:
            msg = await self.reply_to.reply(content, mention_author=False, **extra)
        else:
            msg = await self.channel.send(content, **extra)
        self.messages.append(msg)
        self._stop_typing()

    async def _sync(self, *, final: bool) -> None:
        index = 0
        while index < len(self._render(final=final)):
            before = len(self.messages)
            await self._write(index, final=final)
            if index < before < len(self.messages):
                continue  # a continuation went out instead (see _write): now cut this one
            index += 1

    async def _update_loop(self) -> None:
        while not self._closed:
            await self._dirty.wait()
            self._dirty.clear()
            if self._closed:
                return
            try:
                await self._sync(final=False)
            except discord.HTTPException as exc:
                log.warning("streaming edit failed (%s); the final edit will retry", exc)
            except Exception as exc:
                # Anything else (e.g. discord.py unable to parse Discord's answer) must
                # not end the updater: the answer goes on growing, and finish() has a
                # fallback.  One line per reply, not one per edit.
                if not self._warned:
                    self._warned = True
                    log.warning(
                        "streaming edit failed (%s: %s); the final edit will retry",
                        type(exc).__name__,
                        exc,
                    )

    async def _keep_typing(self) -> None:
        # Optional: a typing indicator that fails is not worth more than a log line.
        try:
            await asyncio.sleep(TYPING_AFTER_S)
            while not self.messages:
                with request_priority(Priority.TYPING):
                    await self.channel.typing()
                await asyncio.sleep(TYPING_EVERY_S)
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            log.warning("typing indicator failed (%s: %s)", type(exc).__name__, exc)

    def _stop_typing(self) -> None:
        if self._typing is not None and asyncio.current_task() is not self._typing:
            self._typing.cancel()

    async def _stop_updates(self) -> None:
        self._closed = True
        self._dirty.set()
        for task in (self._updater, self._typing):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        # A write already on the wire completes and is recorded (see _write); if it
        # fails, the final render below redoes it.
        if self._inflight is not None and not self._inflight.done():
            with contextlib.suppress(Exception):
                await self._inflight

    # -- finishing -----------------------------------------------------------

    async def finish(
        self,
        final_text: str,
        *,
        footer: str | None = None,
        files: Sequence[ToolAttachment] = (),
    ) -> None:
        """Render the complete answer, ``files`` attached.  Never loses text: edits
        are retried, and when editing doesn't work the answer is posted afresh (as a
        file when long)."""
        await self._finish(final_text, footer=footer, files=files)
        self.finished = True  # not when cancelled midway: then abort() marks it

    async def _finish(
        self,
        final_text: str,
        *,
        footer: str | None = None,
        files: Sequence[ToolAttachment] = (),
    ) -> None:
        await self._stop_updates()
        self.text, self.status = final_text, None
        as_file = len(self._render(final=True)) > MAX_MESSAGES
        fitting, left = fit_files(
            files,
            max_bytes=upload_limit(self.reply_to) - (len(final_text.encode()) if as_file else 0),
            max_count=MAX_FILES - (1 if as_file else 0),
        )
        if left:
            names = ", ".join(f"{f.filename} ({human_size(len(f.data))})" for f in left)
            note = f"not attached, over Discord's limits: {names}"
            if len(note) > FOOTER_ROOM // 2:  # the badge shares the room kept under the text
                note = f"{len(left)} files not attached, over Discord's limits"
            footer = f"{footer}\n-# {note}" if footer else note
        self.footer = footer
        chunks = self._render(final=True)
        if len(chunks) > MAX_MESSAGES:
            try:
                await self._send_as_file(footer, fitting)
                return
            except Exception as exc:
                log.warning(
                    "could not attach the answer (%s: %s); posting it afresh",
                    type(exc).__name__,
                    exc,
                )
                await self._post_fresh(footer)
                return
        for attempt in range(3):
            try:
                await self._sync(final=True)
                # Messages left over from a longer intermediate render go away.
                for extra in self.messages[len(chunks) :]:
                    with contextlib.suppress(Exception):
                        await extra.delete()
                del self.messages[len(chunks) :]
                if fitting:
                    await self._attach(fitting)
                return
            except discord.HTTPException as exc:
                log.warning("final edit failed (attempt %d): %s", attempt + 1, exc)
                await asyncio.sleep(1 + attempt)
            except Exception as exc:
                # Not a refusal by Discord but an answer we can't use (e.g. one
                # discord.py cannot parse): retrying the same edit won't help.
                log.warning(
                    "final edit failed (%s: %s); posting the answer afresh",
                    type(exc).__name__,
                    exc,
                )
                break
        else:
            log.warning("final edit failed 3 times; posting the answer afresh")
        await self._post_fresh(footer, fitting)

    async def _attach(self, files: list[ToolAttachment]) -> None:
        """Add ``files`` to the answer's last message (a reply of their own when the
        answer has no message).  A refusal is logged and said under the answer: the
        text is delivered already, and the model knows nothing of Discord's limits."""
        try:
            async with self.pacer.slot(self.channel.id, Priority.EDIT):
                if self.messages:
                    last = self.messages[-1]
                    self.messages[-1] = await last.edit(attachments=_discord_files(files))
                else:
                    self.messages.append(
                        await self.reply_to.reply(files=_discord_files(files), mention_author=False)
                    )
        except Exception as exc:
            log.warning("could not attach %d file(s) (%s: %s)", len(files), type(exc).__name__, exc)
            if not self.messages:
                return
            status = getattr(exc, "status", None)
            why = "too large for this server" if status == 413 else "Discord refused them"
            if status == 403:
                why = "I may not attach files in this channel"
            with contextlib.suppress(Exception):
                last = self.messages[-1]
                self.messages[-1] = await last.edit(
                    content=f"{last.content}\n-# files not attached: {why}"[: self.limit]
                )

    async def _post_fresh(self, footer: str | None, files: Sequence[ToolAttachment] = ()) -> None:
        """The fallback route: the whole answer in new messages (a file when long),
        then the partial messages go, so the reader ends with one intact answer."""
        stale, self.messages = self.messages, []
        try:
            if len(self._render(final=True)) > MAX_MESSAGES:
                await self._send_as_file(footer, files)
            else:
                await self._sync(final=True)
                if files:
                    await self._attach(list(files))
        except Exception as exc:
            # Nothing more to try; what was streamed stays visible.
            log.warning("could not deliver the final answer (%s: %s)", type(exc).__name__, exc)
            self.messages = stale + self.messages
            return
        for old in stale:
            with contextlib.suppress(Exception):
                await old.delete()

    async def _send_as_file(self, footer: str | None, files: Sequence[ToolAttachment] = ()) -> None:
        preview = self.text[:1200].rsplit("\n", 1)[0]
        note = f"{preview}\n\n-# The full answer ({len(self.text):,} characters) is attached."
        if footer:
            note += f"\n-# {footer}"
        answer = ToolAttachment("clara-reply.md", self.text.encode())
        self._file_note = note[: self.limit]
        await self._write(0, final=True, files=[answer, *files])
        for extra in self.messages[1:]:
            with contextlib.suppress(Exception):
                await extra.delete()
        del self.messages[1:]

    async def abort(self, note: str) -> None:
        """Stop streaming and leave what was written, marked with ``note``.  A reply
        already finished is left as it is: what was cancelled came after the answer
        (storing the turn, say), and the answer itself was not stopped."""
        if self.finished:
            return
        await self._stop_updates()
        self.status, self.footer = None, note
        if self.messages or self.text:
            try:
                await self._sync(final=True)
            except Exception as exc:
                log.warning(
                    "could not mark the answer as stopped (%s: %s)", type(exc).__name__, exc
                )
