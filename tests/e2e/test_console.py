"""`discord_bot.py --console`: the pipeline in a terminal, Ctrl-C cancels an answer."""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest

from tests.fakes.fake_llm import FakeLLM, Hang, Reply
from tests.support.clara_process import ENTRY, clara_env

pytestmark = pytest.mark.slow


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


async def test_console_chat_cancel_and_exit(tmp_path):
    async with FakeLLM(api_keys={"k"}) as fake:
        env = clara_env(
            tmp_path,
            LLM_PROVIDER="openai",
            CUSTOM_OPENAI_API_KEY="k",
            CUSTOM_OPENAI_BASE_URL=fake.openai_base_url,
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ENTRY),
            "--console",
            env=env,
            cwd=tmp_path,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        term = Terminal(proc)
        try:
            await term.expect("you> ")
            fake.enqueue(Reply("Hello from Clara!", chunks=["Hello ", "from ", "Clara!"]))
            await term.type("hello")
            await term.expect("clara> Hello from Clara!")

            fake.enqueue(Hang(["Let me think "]))
            await term.type("a long question")
            await term.expect("Let me think")
            proc.send_signal(signal.SIGINT)
            await term.expect("[stopped]")
            disconnect = await fake.wait_for_disconnect(timeout=2)
            assert disconnect.chunks_sent == 1

            fake.enqueue(Reply("Still here."))
            await term.type("!high again")
            await term.expect("Still here.")
            last = fake.requests[-1]
            text = str(last.messages)
            assert "hello" in text and "Hello from Clara!" in text  # history kept
            assert "a long question" not in text  # the cancelled turn left no trace
            assert "[high tier, asked:" in term.output

            proc.stdin.close()
            await asyncio.wait_for(proc.wait(), 30)
            await term._reader
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0
        assert "bye" in term.output
        assert (tmp_path / "data" / "console.log").exists()


async def test_console_without_llm_key_says_which(tmp_path):
    env = clara_env(tmp_path, LLM_PROVIDER="anthropic")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ENTRY),
        "--console",
        env=env,
        cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert b"ANTHROPIC_API_KEY is not set" in err and b"DISCORD_BOT_TOKEN" not in err
