"""What execute_python / run_shell leave for the *user*: images the run wrote and
long output, as ``ToolResult.attachments`` (the Discord adapter attaches them to
the reply), and the notes telling the model so.  Real backends (bwrap, docker,
and remote through the real service)."""

from __future__ import annotations

import json

from clara_core.llm.types import ToolCall
from sandbox.base import Backend
from sandbox.manager import SandboxManager
from tools.registry import REPLY_FILES_KEY, ToolContext, ToolRegistry, ToolResult
from tools.sandbox_tools import MAX_IMAGES, register_sandbox_tools

LIMIT = 1 << 20  # the chat's upload limit in these tests


async def call(
    backend: Backend, user: str, name: str, *, limit: int | None = LIMIT, **args: object
) -> ToolResult:
    reg = ToolRegistry()
    register_sandbox_tools(reg, SandboxManager(backend, idle_timeout=600), exec_timeout=10)
    extras = {REPLY_FILES_KEY: limit} if limit is not None else {}
    ctx = ToolContext(user_id=user, extras=extras)
    return await reg.call(ToolCall("c1", name, json.dumps(args)), ctx)


def _write(name: str, data: bytes) -> str:
    return f"open({name!r}, 'wb').write({data!r})"


async def test_new_and_rewritten_images_are_attached(backend: Backend) -> None:
    u = "art-images"
    r = await call(backend, u, "execute_python", code=_write("a.png", b"PNG-1") + "\nprint('ok')")
    assert [(f.filename, f.data) for f in r.attachments] == [("a.png", b"PNG-1")]
    assert r.content == ("ok\n[images attached to your reply for the user to see: a.png]")
    # Untouched since: not attached again.
    r = await call(backend, u, "execute_python", code="print('nothing drawn')")
    assert r.attachments == [] and r.content == "nothing drawn\n"
    # Re-drawn at the very same size (a plot re-made with other data): attached,
    # told apart by its modification time (through the remote service too).
    r = await call(
        backend,
        u,
        "run_shell",
        command="sleep 0.02; printf PNG-2 > a.png; printf x > notes.txt; mkdir -p sub",
    )
    assert [(f.filename, f.data) for f in r.attachments] == [("a.png", b"PNG-2")]


async def test_nothing_is_collected_where_the_chat_shows_no_files(backend: Backend) -> None:
    # The console (no REPLY_FILES_KEY): no attachments, and the model is not told of any.
    r = await call(
        backend, "art-console", "execute_python", limit=None, code=_write("p.png", b"x") + "\n"
    )
    assert r.attachments == [] and "attached" not in r.content


async def test_what_does_not_fit_is_named_for_the_model(backend: Backend) -> None:
    u = "art-limits"
    code = (
        "open('big.png', 'wb').write(b'x' * 2048)\n"
        f"for i in range({MAX_IMAGES + 1}):\n"
        "    open(f'img{i:02}.gif', 'wb').write(b'g')\n"
    )
    r = await call(backend, u, "execute_python", limit=1024, code=code)
    names = [f.filename for f in r.attachments]
    assert "big.png" not in names and len(names) == MAX_IMAGES
    refused = r.content.split("[not attached (over the chat's limit of 9 images or 1.0 KiB): ")
    assert len(refused) == 2, r.content
    assert "big.png (2.0 KiB)" in refused[1] and "img09.gif" in refused[1]


async def test_long_output_comes_as_a_file_too(backend: Backend) -> None:
    r = await call(backend, "art-long", "execute_python", code="for i in range(100):\n    print(i)")
    printed = "".join(f"{i}\n" for i in range(100))
    [out] = r.attachments
    assert (out.filename, out.data) == ("output.txt", printed.encode())
    assert r.content.startswith(printed)  # the model still reads it all
    assert r.content.endswith(
        "[the whole output is attached to your reply as output.txt; "
        "quote only the part that answers the question]"
    )
    # Short output stays in the reply only.
    r = await call(backend, "art-long", "execute_python", code="print('short')")
    assert r.attachments == []


async def test_images_in_subfolders_are_attached_within_the_bounds(backend: Backend) -> None:
    u = "art-subfolders"
    code = (
        "import os\n"
        "for d in ('plots/2024', 'plots/2024/q1/deep', '.cache', 'other'):\n"
        "    os.makedirs(d, exist_ok=True)\n"
        "open('plots/a.png', 'wb').write(b'A')\n"  # level 2
        "open('plots/2024/b.png', 'wb').write(b'B')\n"  # level 3: the deepest scanned
        "open('plots/2024/q1/deep/c.png', 'wb').write(b'C')\n"  # level 5: not scanned
        "open('.cache/d.png', 'wb').write(b'D')\n"  # hidden folder: a tool's cache
        "open('other/a.png', 'wb').write(b'O')\n"  # same name as plots/a.png
        "print('drawn')\n"
    )
    r = await call(backend, u, "execute_python", code=code)
    got = sorted((f.filename, f.data) for f in r.attachments)
    assert got == [("a.png", b"O"), ("b.png", b"B"), ("plots_a.png", b"A")], got
    assert r.content == (
        "drawn\n[images attached to your reply for the user to see: "
        "other/a.png, plots/2024/b.png, plots/a.png]"
    )
    # Untouched since: nothing again.
    r = await call(backend, u, "run_shell", command="true")
    assert r.attachments == []


async def test_a_huge_tree_is_scanned_only_up_to_the_entry_bound(backend: Backend) -> None:
    u = "art-huge"
    # 600 entries in the top folder fill the bound: a plot in a subfolder after
    # them is not looked for (and the run is not slowed by the whole tree).
    code = (
        "import os\n"
        "os.makedirs('zz/plots', exist_ok=True)\n"
        "for i in range(600):\n"
        "    open(f'data{i:03}.csv', 'w').write('1')\n"
        "open('zz/plots/p.png', 'wb').write(b'P')\n"
        "open('aa.png', 'wb').write(b'T')\n"
    )
    r = await call(backend, u, "execute_python", code=code)
    assert [(f.filename, f.data) for f in r.attachments] == [("aa.png", b"T")]
