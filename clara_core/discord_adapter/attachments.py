"""Discord attachments -> model input, and a copy in the user's file store.

Images become image parts (the pipeline drops them, with a note, for models
without vision); text and code files are inlined up to a cap; everything
within CLARA_MAX_FILE_SIZE is saved to the user's folder.  When a file can't
be saved (the user's CLARA_FILES_QUOTA is full, a disk error) the user is told in
the reply itself (``user_notice``), not only the model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import discord

from clara_core.llm.types import ImagePart
from storage.local_files import FileStoreError, LocalFileStore, QuotaExceeded

log = logging.getLogger(__name__)

IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
IMAGE_MAX_BYTES = 5 * 1024 * 1024  # Anthropic's per-image limit; OpenAI allows more
INLINE_MAX_CHARS = 40_000
TEXT_SUFFIXES = {
    ".txt", ".md", ".py", ".js", ".ts", ".json", ".yaml", ".yml", ".toml", ".csv", ".html",
    ".css", ".sh", ".sql", ".rs", ".go", ".java", ".c", ".h", ".cpp", ".rb", ".ini", ".log", ".xml",
}  # fmt: skip


@dataclass
class PreparedAttachments:
    images: list[ImagePart] = field(default_factory=list)
    text_blocks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Problems the user must hear about from Clara herself, whatever the model says.
    user_notes: list[str] = field(default_factory=list)

    def as_text(self) -> str:
        return "\n\n".join([*self.text_blocks, *self.notes])

    def user_notice(self) -> str:
        """Text to put at the top of the reply ("" when all went well)."""
        return "".join(f"⚠️ {note}\n\n" for note in self.user_notes)


def _is_text(att: discord.Attachment) -> bool:
    ctype = (att.content_type or "").split(";")[0]
    return ctype.startswith("text/") or any(att.filename.lower().endswith(s) for s in TEXT_SUFFIXES)


async def prepare_attachments(
    attachments: list[discord.Attachment], *, user_id: str, store: LocalFileStore | None
) -> PreparedAttachments:
    out = PreparedAttachments()
    for att in attachments:
        if att.is_voice_message():
            continue  # heard by voice_messages.py, not filed away like a document
        limit = store.max_size if store is not None else IMAGE_MAX_BYTES
        if att.size > limit:
            out.notes.append(
                f"[{att.filename}: {att.size:,} bytes, over the {limit:,}-byte limit; not read]"
            )
            continue
        try:
            data = await att.read()
        except discord.HTTPException as exc:
            out.notes.append(f"[{att.filename}: could not be downloaded ({exc.status})]")
            continue
        if store is not None:
            try:
                saved = await store.save(user_id, att.filename, data)
                out.notes.append(f"[saved {att.filename} to your files as {saved.name}]")
            except QuotaExceeded as exc:
                out.user_notes.append(str(exc))
                out.notes.append(
                    f"[{att.filename}: not saved, the user's file space is full; "
                    "they have been told]"
                )
            except FileStoreError as exc:
                out.user_notes.append(str(exc))
                out.notes.append(f"[{att.filename}: not saved: {exc}]")
        ctype = (att.content_type or "").split(";")[0]
        if ctype in IMAGE_TYPES:
            if len(data) > IMAGE_MAX_BYTES:
                out.notes.append(f"[image {att.filename} is too large to show the model]")
            else:
                out.images.append(ImagePart(media_type=ctype, data=data))
        elif _is_text(att):
            text = data.decode("utf-8", errors="replace")
            if len(text) > INLINE_MAX_CHARS:
                text = (
                    text[:INLINE_MAX_CHARS] + f"\n[... truncated; {len(text):,} characters in all]"
                )
            out.text_blocks.append(f"--- {att.filename} ---\n{text}\n--- end of {att.filename} ---")
    return out
