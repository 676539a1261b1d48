"""Attachments: images to vision models, text files inlined, copies in the user's folder."""

from __future__ import annotations

import pytest

from tests.fakes.fake_llm import Reply
from tests.support.discord_app import clara_on_discord
from tests.support.images import png_1x1

pytestmark = pytest.mark.slow

CODE = b"def greet():\n    return 'hi'\n"


def _parts(request) -> list[dict]:
    content = request.messages[-1]["content"]
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


async def test_image_and_code_reach_a_vision_model_and_are_saved(tmp_path):
    png = png_1x1()
    async with clara_on_discord(clara_files_dir=str(tmp_path / "files")) as w:
        w.llm.enqueue(Reply("A red pixel and a greeting function."))
        await w.mention(
            w.alice,
            "what are these?",
            attachments=[("pixel.png", png, "image/png"), ("greet.py", CODE, "text/x-python")],
        )
        await w.wait_reply_text("A red pixel and a greeting function.")
        parts = _parts(w.llm.requests[0])
        text = " ".join(p.get("text", "") for p in parts)
        assert "--- greet.py ---" in text and "return 'hi'" in text
        images = [p for p in parts if p["type"] == "image_url"]
        assert len(images) == 1 and images[0]["image_url"]["url"].startswith(
            "data:image/png;base64,"
        )
        folder = tmp_path / "files" / str(w.alice.id)
        assert (folder / "pixel.png").read_bytes() == png
        assert (folder / "greet.py").read_bytes() == CODE


async def test_models_without_vision_get_a_note_instead_of_the_image(tmp_path):
    async with clara_on_discord(
        clara_files_dir=str(tmp_path / "files"), custom_openai_model="my-local-model"
    ) as w:
        w.llm.enqueue(Reply("I can't see images, sorry."))
        await w.mention(w.alice, "look", attachments=[("pixel.png", png_1x1(), "image/png")])
        await w.wait_reply_text("I can't see images, sorry.")
        parts = _parts(w.llm.requests[0])
        assert all(p["type"] == "text" for p in parts)
        assert "can't see images" in " ".join(p["text"] for p in parts)


async def test_oversized_attachments_are_refused_with_a_note(tmp_path):
    async with clara_on_discord(
        clara_files_dir=str(tmp_path / "files"), clara_max_file_size="1KB"
    ) as w:
        w.llm.enqueue(Reply("noted"))
        await w.mention(w.alice, "big file", attachments=[("big.txt", b"x" * 5000, "text/plain")])
        await w.wait_reply_text("noted")
        text = str(w.llm.requests[0].messages[-1])
        assert "over the 1,000-byte limit" in text and "xxxxx" not in text
        assert not (tmp_path / "files" / str(w.alice.id) / "big.txt").exists()


async def test_an_attachment_over_the_quota_is_refused_in_plain_words(tmp_path):
    folder = tmp_path / "files"
    async with clara_on_discord(
        clara_files_dir=str(folder), clara_max_file_size="1KB", clara_files_quota="1500B"
    ) as w:
        w.llm.enqueue(Reply("Here is what the notes say."))
        await w.mention(w.alice, "keep this", attachments=[("a.txt", b"a" * 900, "text/plain")])
        await w.wait_reply_text("Here is what the notes say.")

        w.llm.enqueue(Reply("Thanks, I read it."))
        await w.mention(w.alice, "and this", attachments=[("b.txt", b"b" * 900, "text/plain")])
        refusal = (
            "⚠️ b.txt was not saved: your stored files take 900 bytes of the 1.5 KiB each "
            "person may keep, and this file needs 900 bytes. Ask the bot's operator for more "
            "space (CLARA_FILES_QUOTA); /clara forget deletes all your files, along with "
            "everything else Clara keeps about you.\n\nThanks, I read it."
        )
        await w.wait_reply_text(refusal)
        # The model still read the file, and knows the user was told.
        text = str(w.llm.requests[1].messages[-1])
        assert "b" * 900 in text and "the user's file space is full" in text
        assert sorted(p.name for p in (folder / str(w.alice.id)).iterdir()) == ["a.txt"]
