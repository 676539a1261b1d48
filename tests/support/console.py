"""Driving ``discord_bot.py --console`` as a person at a terminal would."""

from __future__ import annotations

import asyncio
import sys
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


async def start_console(env: dict[str, str], cwd: Path) -> Terminal:
    """The real console process with piped stdin/stdout, read as it writes."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ENTRY),
        "--console",
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return Terminal(proc)
