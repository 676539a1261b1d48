"""The code sandbox through Discord: fake Discord + scripted fake LLM, the real
discord.py client, and a REAL sandbox backend (bubblewrap, Docker) behind the
real sandbox tools.  Each test runs once per backend that can run here; one
that cannot is skipped with its reason (``bash .ci/sandbox-setup.sh``).

- a mention leads to an ``execute_python`` call whose output reaches the model
  and, through the model's answer, the reply; "running Python…" shows meanwhile;
- a PNG the code writes arrives as an attachment on the reply;
- long output arrives as ``output.txt``;
- "@Clara stop" kills a running ``while True`` (and the child it started) within
  2 s, the result never reaches the model, and nothing is posted after the
  stop confirmation.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox.manager import SandboxManager
from tests.fakes.fake_llm import Reply, ToolCall
from tests.sandbox.conftest import host_processes_with, make_backend, sandbox_root
from tests.support.discord_app import World, clara_on_discord
from tools.registry import ToolRegistry
from tools.sandbox_tools import register_sandbox_tools

pytestmark = pytest.mark.slow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# A 4x4 red PNG written with the standard library only (the sandbox image has
# no matplotlib): what `plt.savefig('plot.png')` would leave in the workspace.
WRITE_PNG = """
import struct, zlib

def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

w = h = 4
rows = b"".join(b"\\x00" + b"\\xff\\x00\\x00" * w for _ in range(h))
png = (
    b"\\x89PNG\\r\\n\\x1a\\n"
    + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    + chunk(b"IDAT", zlib.compress(rows))
    + chunk(b"IEND", b"")
)
with open("plot.png", "wb") as f:
    f.write(png)
print("saved plot.png")
"""


@pytest.fixture(params=["bwrap", "docker"])
async def sandbox(request: pytest.FixtureRequest) -> AsyncIterator[SandboxManager]:
    root = sandbox_root()
    manager = SandboxManager(make_backend(request.param, root / request.param), idle_timeout=600)
    try:
        yield manager
    finally:
        await manager.close()
        await asyncio.to_thread(_remove, root)


def _remove(root: Path) -> None:
    # A failed test may leave a loop-mounted workspace behind: release it first.
    for line in Path("/proc/mounts").read_text().splitlines():
        mnt = line.split()[1]
        if mnt.startswith(str(root)):
            subprocess.run(["umount", "-l", mnt], check=False)
    shutil.rmtree(root, ignore_errors=True)


def _tools(manager: SandboxManager) -> ToolRegistry:
    tools = ToolRegistry()
    register_sandbox_tools(tools, manager, exec_timeout=20)
    return tools


def _tool_results(request) -> list[str]:
    return [str(m.get("content")) for m in request.messages if m.get("role") == "tool"]


def _answer_with_output(request) -> Reply:
    """The model's second step: it quotes what the program printed in a code block."""
    [result] = _tool_results(request)
    return Reply(f"Here is what it printed:\n```\n{result.strip()}\n```")


async def _reply_with(w: World, needle: str, timeout: float = 30):
    await w.discord.wait_until(
        lambda: any(needle in m.content for m in w.replies()), timeout=timeout, what=needle
    )
    return next(m for m in w.replies() if needle in m.content)


async def test_python_output_reaches_the_model_and_the_reply(sandbox: SandboxManager) -> None:
    async with clara_on_discord(tools=_tools(sandbox)) as w:
        w.llm.enqueue(
            Reply("", tool_calls=[ToolCall("execute_python", {"code": "print(2**200)"})]),
            _answer_with_output,
        )
        await w.mention(w.alice, "what's 2**200?")
        reply = await _reply_with(w, "Here is what it printed")
        expected = str(2**200)
        # The model saw exactly what the program printed...
        assert _tool_results(w.llm.requests[-1]) == [expected + "\n"]
        # ...and the user got it in a code block, the status line gone.
        assert reply.content == f"Here is what it printed:\n```\n{expected}\n```"
        # While it ran, the status said what was happening, in words.
        history = w.discord.message_history(reply.id)
        assert any("-# ⚙️ running Python…" in h for h in history), history
        assert not reply.attachments


async def test_a_png_the_code_writes_is_attached_to_the_reply(sandbox: SandboxManager) -> None:
    async with clara_on_discord(tools=_tools(sandbox)) as w:
        w.llm.enqueue(
            Reply("Drawing it.", tool_calls=[ToolCall("execute_python", {"code": WRITE_PNG})]),
            Reply("Here's your plot."),
        )
        await w.mention(w.alice, "plot sin(x)")
        await w.discord.wait_until(
            lambda: any(m.attachments for m in w.replies()), timeout=30, what="the plot"
        )
        [posted] = [m for m in w.replies() if m.attachments]
        assert posted.content == "Drawing it.\n\nHere's your plot."
        [image] = posted.attachments
        assert image.filename == "plot.png"
        assert image.data.startswith(PNG_SIGNATURE)
        # The model was told the user can see it (so it need not describe bytes).
        [result] = _tool_results(w.llm.requests[-1])
        assert result.startswith("saved plot.png\n")
        assert "images attached to your reply for the user to see: plot.png" in result

        # Run again without touching the plot: nothing new, nothing attached.
        w.llm.enqueue(
            Reply("", tool_calls=[ToolCall("execute_python", {"code": "print('hi')"})]),
            Reply("Said hi."),
        )
        await w.mention(w.alice, "say hi")
        reply = await _reply_with(w, "Said hi.")
        assert not reply.attachments
        assert _tool_results(w.llm.requests[-1]) == ["hi\n"]


async def test_a_file_discord_refuses_is_said_under_the_answer(sandbox: SandboxManager) -> None:
    async with clara_on_discord(tools=_tools(sandbox)) as w:
        # This server takes smaller uploads than discord.py expects: a real 413.
        w.discord.config.attachment_size_limit = 10
        w.llm.enqueue(
            Reply("", tool_calls=[ToolCall("execute_python", {"code": WRITE_PNG})]),
            Reply("Here's your plot."),
        )
        await w.mention(w.alice, "plot sin(x)")
        reply = await _reply_with(w, "files not attached")
        # The answer stays, and the reader learns why the plot is missing.
        assert (
            reply.content == "Here's your plot.\n-# files not attached: too large for this server"
        )
        assert not reply.attachments


async def test_long_output_arrives_as_a_file(sandbox: SandboxManager) -> None:
    code = "for i in range(300):\n    print(f'line {i}')"
    async with clara_on_discord(tools=_tools(sandbox)) as w:
        w.llm.enqueue(
            Reply("", tool_calls=[ToolCall("execute_python", {"code": code})]),
            Reply("It printed 300 lines; they're all in the attached file."),
        )
        await w.mention(w.alice, "print 300 lines")
        await w.discord.wait_until(
            lambda: any(m.attachments for m in w.replies()), timeout=30, what="the output file"
        )
        [reply] = [m for m in w.replies() if m.attachments]
        assert "300 lines" in reply.content
        [out] = reply.attachments
        printed = "".join(f"line {i}\n" for i in range(300))
        assert (out.filename, out.data) == ("output.txt", printed.encode())
        [result] = _tool_results(w.llm.requests[-1])
        assert result.startswith(printed)  # the model still reads the output itself
        assert "attached to your reply as output.txt" in result


async def test_stop_kills_the_running_code_and_nothing_follows(sandbox: SandboxManager) -> None:
    marker = f"clara-stop-{uuid.uuid4().hex[:12]}"
    # The program and a child it started both spin: the whole tree must die.
    code = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'while True: pass', '{marker}'])\n"
        "while True:\n"
        "    pass\n"
    )
    async with clara_on_discord(tools=_tools(sandbox)) as w:
        # No second step is scripted: the model is never asked again this turn.
        w.llm.enqueue(Reply("", tool_calls=[ToolCall("execute_python", {"code": code})]))
        await w.mention(w.alice, "loop forever")
        await w.discord.wait_until(
            lambda: host_processes_with(marker), timeout=30, what="the code running"
        )
        await _reply_with(w, "running Python…")
        t0 = time.monotonic()
        await w.mention(w.alice, "stop")
        await w.discord.wait_until(
            lambda: not host_processes_with(marker), timeout=5, what="the code killed"
        )
        killed_after = time.monotonic() - t0
        confirmation = await _reply_with(w, "Stopped.", timeout=10)
        assert killed_after < 2.0, f"the code ran {killed_after:.2f}s after the stop"

        # Nothing is posted or edited after the confirmation, and the model never
        # sees a result for the stopped call.
        def snapshot() -> list[tuple[int, list[str]]]:
            return [(m.id, w.discord.message_history(m.id)) for m in w.replies()]

        before = snapshot()
        await asyncio.sleep(1.5)
        assert snapshot() == before
        assert max(m.id for m in w.replies()) == confirmation.id
        assert len(w.llm.requests) == 1
        stopped = next(m for m in w.replies() if "⏹ stopped" in m.content)
        assert "running Python" not in stopped.content

        # The sandbox answers the next request as usual.
        w.llm.enqueue(
            Reply("", tool_calls=[ToolCall("execute_python", {"code": "print(6 * 7)"})]),
            _answer_with_output,
        )
        await w.mention(w.alice, "what's 6*7?")
        reply = await _reply_with(w, "Here is what it printed")
        assert "```\n42\n```" in reply.content
