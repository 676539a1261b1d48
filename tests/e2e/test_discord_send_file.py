"""send_local_file on Discord: a model's tool call posts the stored file to the chat
(fake Discord + scripted fake LLM, the real discord.py client)."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.local_files import LocalFileStore
from tests.fakes.fake_llm import Reply, ToolCall
from tests.support.discord_app import clara_on_discord
from tools.files import register_file_tools
from tools.registry import ToolRegistry

pytestmark = pytest.mark.slow

REPORT = b"month,total\nnov,41\ndec,42\n"


def _file_tools(folder: Path) -> tuple[ToolRegistry, LocalFileStore]:
    store = LocalFileStore(folder, max_size=1 << 20)
    tools = ToolRegistry()
    register_file_tools(tools, store)
    return tools, store


def _tool_results(request) -> list[str]:
    return [str(m.get("content")) for m in request.messages if m.get("role") == "tool"]


async def test_a_send_local_file_call_posts_the_file(tmp_path: Path) -> None:
    tools, store = _file_tools(tmp_path / "files")
    async with clara_on_discord(tools=tools, clara_files_dir=str(tmp_path / "files")) as w:
        await store.save(str(w.alice.id), "report.csv", REPORT)
        w.llm.enqueue(
            Reply(
                "Here you go.", tool_calls=[ToolCall("send_local_file", {"filename": "report.csv"})]
            ),
            Reply("That's the report."),
        )
        question = await w.mention(w.alice, "send me my report")
        await w.discord.wait_until(
            lambda: any(m.attachments for m in w.replies()), timeout=20, what="the file"
        )
        await w.wait_reply_text("Here you go.\n\nThat's the report.")
        [posted] = [m for m in w.replies() if m.attachments]
        assert [(a.filename, a.data) for a in posted.attachments] == [("report.csv", REPORT)]
        assert posted.referenced_message_id == question.id  # a reply to the asker
        # The model was told it worked, in words it can relay.
        assert _tool_results(w.llm.requests[-1]) == [
            "report.csv (26 bytes) was attached to the chat"
        ]


async def test_a_file_discord_refuses_is_explained_to_the_model(tmp_path: Path) -> None:
    tools, store = _file_tools(tmp_path / "files")
    async with clara_on_discord(tools=tools, clara_files_dir=str(tmp_path / "files")) as w:
        # This server takes smaller uploads than discord.py expects: a real 413.
        w.discord.config.attachment_size_limit = 10
        await store.save(str(w.alice.id), "report.csv", REPORT)
        w.llm.enqueue(
            Reply("", tool_calls=[ToolCall("send_local_file", {"filename": "report.csv"})]),
            Reply("Discord would not take it, sorry."),
        )
        await w.mention(w.alice, "send me my report")
        await w.wait_reply_text("Discord would not take it, sorry.")
        assert not any(m.attachments for m in w.replies())
        [result] = _tool_results(w.llm.requests[-1])
        assert "over this chat's upload limit" in result and "smaller part" in result


async def test_another_users_file_is_not_sent(tmp_path: Path) -> None:
    tools, store = _file_tools(tmp_path / "files")
    async with clara_on_discord(tools=tools, clara_files_dir=str(tmp_path / "files")) as w:
        await store.save(str(w.bob.id), "bobs.txt", b"bob's notes")
        w.llm.enqueue(
            Reply("", tool_calls=[ToolCall("send_local_file", {"filename": "bobs.txt"})]),
            Reply("You have no file by that name."),
        )
        await w.mention(w.alice, "send me bobs.txt")
        await w.wait_reply_text("You have no file by that name.")
        assert not any(m.attachments for m in w.replies())
        [result] = _tool_results(w.llm.requests[-1])
        assert "no stored file named 'bobs.txt'" in result
