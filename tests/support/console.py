"""Driving ``discord_bot.py --console`` as a person at a terminal would."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from tests.support.clara_process import ENTRY


class Terminal:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.output = ""
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while chunk := await self.proc.stdout.read(1024):
            self.output += chunk.decode(errors="replace")

    async def type(self, line: str) -> None:
        self.proc.stdin.write((line + "\n").encode())
        await self.proc.stdin.drain()

    async def expect(self, text: str, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while text not in self.output:
                if self.proc.returncode is not None:
                    raise AssertionError(f"console exited; output:\n{self.output}")
                await asyncio.sleep(0.02)


def at_a_terminal() -> None:
    """``preexec_fn``: Ctrl-C and Ctrl-\\ as a foreground terminal process gets them.

    A shell starts a background job (``cmd &``, as CI runners and ``nohup`` do)
    with SIGINT and SIGQUIT ignored, every child inherits that, and Python then
    leaves SIGINT ignored: a test that presses Ctrl-C must undo it, or the
    "person at a terminal" it plays could not interrupt anything."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


async def spawn_console(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    """The real console process with piped stdin, stdout and stderr."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(ENTRY),
        "--console",
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=at_a_terminal,
    )


async def start_console(env: dict[str, str], cwd: Path) -> Terminal:
    """The real console process, its output read as it writes."""
    return Terminal(await spawn_console(env, cwd))


@contextlib.asynccontextmanager
async def console_session(env: dict[str, str], cwd: Path) -> AsyncIterator[Terminal]:
    """A console at its first prompt; on leaving, stdin closed as a person ends it
    (Ctrl-D) and the process must exit 0 (killed if the block failed first)."""
    term = await start_console(env, cwd)
    proc = term.proc
    try:
        await term.expect("you> ")
        yield term
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 30)
        await term._reader
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, term.output
