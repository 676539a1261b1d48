"""The local file tools, called through the ToolRegistry the way the model calls them,
on real files on disk."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path

import pytest

from clara_core.console import ConsoleChat, ConsoleFilePoster
from clara_core.llm.types import ToolCall
from storage.local_files import LocalFileStore
from tests.fakes.fake_llm import FakeLLM, Reply
from tests.fakes.fake_llm import ToolCall as FakeToolCall
from tests.support.llm import build_runner, settings_for
from tools.files import READ_LIMIT, register_file_tools
from tools.ports import FILE_POSTER_KEY, FilePostError
from tools.registry import ToolContext, ToolRegistry, ToolResult

LOCAL_TOOLS = {
    "save_to_local",
    "list_local_files",
    "read_local_file",
    "delete_local_file",
    "send_local_file",
}


class RecordingPoster:
    """A FilePoster that keeps what it was given (the adapters' stand-in for
    tests of the tool side; the Discord one is tested end to end)."""

    def __init__(self, max_bytes: int | None = None, refuse: str | None = None) -> None:
        self.max_bytes = max_bytes
        self.refuse = refuse
        self.posted: list[tuple[str, bytes, Path | None]] = []

    async def post_file(self, name: str, data: bytes, *, path: Path | None = None) -> str:
        if self.refuse:
            raise FilePostError(self.refuse)
        self.posted.append((name, data, path))
        return "was attached to the chat"


@pytest.fixture
def store(tmp_path: Path) -> LocalFileStore:
    return LocalFileStore(tmp_path / "files", max_size=4096, quota=10_000)


@pytest.fixture
def registry(store: LocalFileStore) -> ToolRegistry:
    reg = ToolRegistry()
    assert register_file_tools(reg, store, None) == 5
    return reg


async def call(
    reg: ToolRegistry, user: str, name: str, *, extras: dict | None = None, **args: object
) -> ToolResult:
    ctx = ToolContext(user_id=user, extras=extras or {})
    return await reg.call(ToolCall("c1", name, json.dumps(args)), ctx)


def test_without_a_sandbox_only_the_local_tools_are_offered(registry: ToolRegistry) -> None:
    names = {s.name for s in registry.specs(ToolContext(user_id="1"))}
    assert names == LOCAL_TOOLS  # no download_from_sandbox / upload_to_sandbox


async def test_save_list_read_delete_round_trip(registry: ToolRegistry, store: LocalFileStore):
    r = await call(registry, "111", "save_to_local", filename="notes.md", content="# Hi\nthere\n")
    assert r.content == "saved notes.md (11 bytes) in local storage"
    assert (store.root / "111" / "notes.md").read_text() == "# Hi\nthere\n"
    # The same name again is never overwritten; the model is told the real name.
    r = await call(registry, "111", "save_to_local", filename="notes.md", content="second")
    assert r.content == (
        "saved notes (2).md (6 bytes) in local storage (a file called 'notes.md' already existed)"
    )
    r = await call(registry, "111", "list_local_files")
    assert r.content.splitlines() == [
        "notes (2).md  (6 bytes)",
        "notes.md  (11 bytes)",
        "2 files, 17 bytes of the 9.8 KiB allowed",
    ]
    # A listed name that is not a "safe" name (parentheses) is still found.
    r = await call(registry, "111", "read_local_file", filename="notes (2).md")
    assert (r.is_error, r.content) == (False, "second")
    r = await call(registry, "111", "delete_local_file", filename="notes (2).md")
    assert r.content == "deleted notes (2).md (6 bytes)"
    assert not (store.root / "111" / "notes (2).md").exists()
    r = await call(registry, "111", "read_local_file", filename="notes (2).md")
    assert r.is_error and "no stored file named 'notes (2).md'" in r.content
    assert "list_local_files" in r.content


async def test_one_user_never_reaches_anothers_files(registry: ToolRegistry, store: LocalFileStore):
    await call(registry, "alice1", "save_to_local", filename="diary.txt", content="secret")
    r = await call(registry, "bob2", "list_local_files")
    assert r.content == "no files are stored for this user yet"
    for name in ("diary.txt", "../alice1/diary.txt", "..\\alice1\\diary.txt", "/alice1/diary.txt"):
        r = await call(registry, "bob2", "read_local_file", filename=name)
        assert r.is_error and "secret" not in r.content, name
        r = await call(registry, "bob2", "delete_local_file", filename=name)
        assert r.is_error, name
    assert (store.root / "alice1" / "diary.txt").read_text() == "secret"
    # A user id that is itself a path is refused, not resolved.
    r = await call(registry, "../alice1", "read_local_file", filename="diary.txt")
    assert r.is_error and "invalid user id" in r.content


async def test_dot_dot_names_stay_inside_the_users_folder(
    registry: ToolRegistry, store: LocalFileStore, tmp_path: Path
):
    r = await call(registry, "111", "save_to_local", filename="../../escape.txt", content="x")
    assert not r.is_error
    assert (
        not (tmp_path / "escape.txt").exists() and not (tmp_path / "files" / "escape.txt").exists()
    )
    assert [p.name for p in (store.root / "111").iterdir()] == ["_.._escape.txt"]
    (tmp_path / "outside.txt").write_text("host file")
    for name in ("../../outside.txt", "..", ".", "/etc/passwd", "a\x00b"):
        r = await call(registry, "111", "read_local_file", filename=name)
        assert r.is_error and "host file" not in r.content and "root:" not in r.content, name


async def test_symlinks_are_never_followed(
    registry: ToolRegistry, store: LocalFileStore, tmp_path: Path
):
    secret = tmp_path / "host-secret.txt"
    secret.write_text("TOKEN=hunter2")
    await call(registry, "111", "save_to_local", filename="ok.txt", content="fine")
    folder = store.root / "111"
    os.symlink(secret, folder / "link.txt")  # planted behind Clara's back
    r = await call(registry, "111", "list_local_files")
    assert "link.txt" not in r.content  # not listed (its size would leak too)
    for tool in ("read_local_file", "send_local_file", "delete_local_file"):
        poster = RecordingPoster()
        r = await call(registry, "111", tool, filename="link.txt", extras={FILE_POSTER_KEY: poster})
        assert r.is_error and "not a file Clara stored" in r.content, tool
        assert "hunter2" not in r.content and poster.posted == []
    assert secret.read_text() == "TOKEN=hunter2" and (folder / "link.txt").is_symlink()
    # A user folder that is a link (to another user's folder) is refused too.
    await call(registry, "alice1", "save_to_local", filename="diary.txt", content="dear diary")
    os.symlink(store.root / "alice1", store.root / "mallory3")
    r = await call(registry, "mallory3", "read_local_file", filename="diary.txt")
    assert r.is_error and "dear diary" not in r.content
    assert "operator" in r.content


async def test_limits_are_said_plainly(registry: ToolRegistry, store: LocalFileStore):
    r = await call(registry, "111", "save_to_local", filename="big.txt", content="x" * 5000)
    assert r.is_error and "limit is 4,096 (CLARA_MAX_FILE_SIZE)" in r.content
    for i in range(2):
        r = await call(registry, "111", "save_to_local", filename=f"f{i}.txt", content="y" * 4000)
        assert not r.is_error
    r = await call(registry, "111", "save_to_local", filename="more.txt", content="z" * 3000)
    assert r.is_error and "CLARA_FILES_QUOTA" in r.content and "was not saved" in r.content
    r = await call(registry, "111", "save_to_local", filename="  ", content="x")
    assert r.is_error and "filename must name a file" in r.content


async def test_read_caps_long_files_and_names_binary_ones(tmp_path: Path):
    store = LocalFileStore(tmp_path / "files", max_size=1 << 20)
    reg = ToolRegistry()
    register_file_tools(reg, store)
    await store.save("111", "long.txt", b"a" * (READ_LIMIT + 10))
    await store.save("111", "img.png", b"\x89PNG\r\n\x1a\n\0\0\0")
    r = await call(reg, "111", "read_local_file", filename="long.txt")
    assert r.content.startswith("a" * 100)
    assert r.content.endswith(f"[showing the first {READ_LIMIT:,} of {READ_LIMIT + 10:,} bytes]")
    r = await call(reg, "111", "read_local_file", filename="img.png")
    assert not r.is_error and "binary file of 11 bytes" in r.content


async def test_send_local_file_posts_through_the_port(
    registry: ToolRegistry, store: LocalFileStore
):
    await call(registry, "111", "save_to_local", filename="report.csv", content="a,b\n1,2\n")
    poster = RecordingPoster()
    r = await call(
        registry, "111", "send_local_file", filename="report.csv", extras={FILE_POSTER_KEY: poster}
    )
    assert r.content == "report.csv (8 bytes) was attached to the chat"
    assert poster.posted == [("report.csv", b"a,b\n1,2\n", store.root / "111" / "report.csv")]


async def test_send_local_file_failures_are_clear(registry: ToolRegistry):
    await call(registry, "111", "save_to_local", filename="r.txt", content="x" * 3000)
    r = await call(registry, "111", "send_local_file", filename="r.txt")
    assert r.is_error and "cannot receive files" in r.content
    small = RecordingPoster(max_bytes=1000)
    r = await call(
        registry, "111", "send_local_file", filename="r.txt", extras={FILE_POSTER_KEY: small}
    )
    assert r.is_error and "this chat accepts files up to 1,000 bytes" in r.content
    assert small.posted == []
    refusing = RecordingPoster(refuse="Clara may not attach files in this channel")
    r = await call(
        registry, "111", "send_local_file", filename="r.txt", extras={FILE_POSTER_KEY: refusing}
    )
    assert r.is_error and r.content == "Error: Clara may not attach files in this channel"
    r = await call(
        registry, "111", "send_local_file", filename="nope.txt", extras={FILE_POSTER_KEY: small}
    )
    assert r.is_error and "no stored file named 'nope.txt'" in r.content


async def test_the_console_prints_the_path(registry: ToolRegistry, store: LocalFileStore):
    await call(registry, "111", "save_to_local", filename="plot.svg", content="<svg/>")
    printed: list[str] = []
    r = await call(
        registry,
        "111",
        "send_local_file",
        filename="plot.svg",
        extras={FILE_POSTER_KEY: ConsoleFilePoster(printed.append)},
    )
    assert not r.is_error and "shown to the user as a path" in r.content
    assert printed == [f"\n  [file] plot.svg: {store.root / '111' / 'plot.svg'}\n"]


async def test_send_local_file_in_the_console_prints_the_path(tmp_path: Path) -> None:
    """Through the real pipeline: the model's call reaches ConsoleChat's poster."""
    store = LocalFileStore(tmp_path / "files", max_size=4096)
    reg = ToolRegistry()
    register_file_tools(reg, store)
    await store.save("console1", "plot.svg", b"<svg/>")
    async with FakeLLM(api_keys={"test-key"}) as llm:
        runner, service = build_runner(settings_for(llm, "openai"), reg)
        out = io.StringIO()
        chat = ConsoleChat(runner, user_id="console1", out=out)
        llm.enqueue(
            Reply("", tool_calls=[FakeToolCall("send_local_file", {"filename": "plot.svg"})]),
            Reply("It is on your disk."),
        )
        typed = asyncio.StreamReader()
        typed.feed_data(b"show me the plot\n")
        typed.feed_eof()
        try:
            assert await chat.run(typed) == 0
        finally:
            await service.aclose()
    assert f"[file] plot.svg: {store.root / 'console1' / 'plot.svg'}" in out.getvalue()
    assert "clara> It is on your disk." in out.getvalue()
