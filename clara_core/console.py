"""``python discord_bot.py --console``: chat with Clara in the terminal.

The same pipeline as Discord (tiers, tools, streaming).  Ctrl-C while Clara
answers cancels that answer (the model stream and running tools stop at
once); Ctrl-C at the prompt, ``/quit`` or end of input exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from clara_core.llm.types import Message
from clara_core.pipeline.events import (
    Done,
    Failed,
    TextDelta,
    TierChosen,
    ToolFinished,
    ToolStarted,
)
from clara_core.pipeline.turn import TurnInput, TurnRunner
from tools.ports import FILE_POSTER_KEY
from tools.registry import ToolContext

log = logging.getLogger(__name__)

HISTORY_MESSAGES = 40


class ConsoleFilePoster:
    """``send_local_file`` in a terminal: the file is already on this machine,
    so its path is printed instead of uploading anything."""

    max_bytes: int | None = None

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write

    async def post_file(self, name: str, data: bytes, *, path: Path | None = None) -> str:
        self._write(f"\n  [file] {name}: {path or '(not stored on disk)'}\n")
        return "was shown to the user as a path on this machine"


class ConsoleChat:
    def __init__(
        self, runner: TurnRunner, *, user_id: str, out: TextIO | None = None, prompt: str = "you> "
    ) -> None:
        self.runner = runner
        self.user_id = user_id
        self.out = out or sys.stdout
        self.prompt = prompt
        self.history: list[Message] = []
        self._turn: asyncio.Task[None] | None = None
        self._exit = asyncio.Event()

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def on_interrupt(self) -> None:
        if self._turn is not None and not self._turn.done():
            self._turn.cancel()
        else:
            self._exit.set()

    async def _answer(self, text: str) -> None:
        turn = TurnInput(
            text=text,
            context=ToolContext(
                user_id=self.user_id,
                platform="console",
                is_admin=True,
                extras={FILE_POSTER_KEY: ConsoleFilePoster(self._write)},
            ),
            history=self.history[-HISTORY_MESSAGES:],
        )
        answer: Done | None = None
        started = False
        async for event in self.runner.run(turn):
            if isinstance(event, TierChosen):
                if event.explicit or event.auto:
                    how = "auto" if event.auto else "asked"
                    self._write(f"[{event.tier or 'base'} tier, {how}: {event.model}]\n")
            elif isinstance(event, TextDelta):
                if not started:
                    self._write("clara> ")
                    started = True
                self._write(event.text)
            elif isinstance(event, ToolStarted):
                self._write(f"\n  ... running {event.name}\n")
            elif isinstance(event, ToolFinished):
                mark = "done" if event.ok else "failed"
                self._write(f"  ... {event.name} {mark} ({event.duration_s:.1f}s)\n")
            elif isinstance(event, Done):
                answer = event
            elif isinstance(event, Failed):
                self._write(f"\n[{event.message}]\n")
        self._write("\n")
        if answer is not None:
            self.history += [Message.text("user", text), Message.text("assistant", answer.text)]

    async def run(self, reader: asyncio.StreamReader | None = None) -> int:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, self.on_interrupt)
        reader = reader or await _stdin_reader()
        self._write("Clara console. Ctrl-C stops an answer; Ctrl-C again (or /quit) exits.\n")
        try:
            while not self._exit.is_set():
                self._write(self.prompt)
                read = asyncio.create_task(reader.readline())
                exit_wait = asyncio.create_task(self._exit.wait())
                done, _ = await asyncio.wait({read, exit_wait}, return_when=asyncio.FIRST_COMPLETED)
                if read not in done:
                    read.cancel()
                    break
                exit_wait.cancel()
                raw = read.result()
                if not raw:  # end of input
                    break
                text = raw.decode(errors="replace").strip()
                if not text:
                    continue
                if text in ("/quit", "/exit"):
                    break
                self._turn = asyncio.create_task(self._answer(text))
                try:
                    await self._turn
                except asyncio.CancelledError:
                    if not self._turn.cancelled():
                        raise  # we ourselves are being cancelled
                    self._write("\n[stopped]\n")
                finally:
                    self._turn = None
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
        self._write("\nbye\n")
        return 0


def _pollable(stream: TextIO) -> bool:
    """Can the event loop watch this stdin (a terminal, pipe or socket)?

    A regular file or /dev/null can't be polled: with /dev/null the pipe transport
    even "connects" and then fails in a callback, and the console waited forever.
    """
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        if not _pollable(sys.stdin):
            raise ValueError("stdin cannot be polled")
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except ValueError:
        # A regular file or /dev/null on stdin can't be a pipe transport: read it
        # from a thread.
        async def pump() -> None:
            while line := await asyncio.to_thread(sys.stdin.buffer.readline):
                reader.feed_data(line)
            reader.feed_eof()

        # Keep a reference: a task only weakly held can be garbage-collected.
        reader._clara_pump = loop.create_task(pump())  # type: ignore[attr-defined]
    return reader
