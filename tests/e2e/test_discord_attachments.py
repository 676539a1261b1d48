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
