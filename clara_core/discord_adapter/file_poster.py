"""The Discord side of the ``FilePoster`` port: a stored file as an attachment.

``send_local_file`` (tools/files.py) asks the turn's poster to post; this one
replies to the message Clara is answering, with the file attached, through the
channel's pacer like every other write.  What Discord refuses (too large, no
permission to attach) comes back as a ``FilePostError`` the model can relay.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import discord

from storage.local_files import human_size
from tools.ports import FilePostError

from .pacing import ChannelPacer, Priority

log = logging.getLogger(__name__)


class DiscordFilePoster:
    def __init__(self, message: discord.Message, pacer: ChannelPacer) -> None:
        self.message = message
        self.pacer = pacer
        guild = message.guild
        # Discord's per-message upload limit: by the server's boost tier, 10 MiB in DMs.
        self.max_bytes: int | None = (
            guild.filesize_limit
            if guild is not None
            else discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES
        )

    async def post_file(self, name: str, data: bytes, *, path: Path | None = None) -> str:
        if self.max_bytes is not None and len(data) > self.max_bytes:
            raise FilePostError(self._too_large(name, len(data)))
        attachment = discord.File(io.BytesIO(data), filename=name)
        try:
            async with self.pacer.slot(self.message.channel.id, Priority.FIRST_MESSAGE):
                await self.message.reply(file=attachment, mention_author=False)
        except discord.HTTPException as exc:
            log.warning("could not post %s (%d bytes): %s", name, len(data), exc)
            if exc.status == 413:
                raise FilePostError(self._too_large(name, len(data))) from None
            if exc.status == 403:
                raise FilePostError(
                    "Clara may not attach files in this channel (a server admin can grant "
                    "her the Attach Files permission)"
                ) from None
            raise FilePostError(
                f"Discord did not take the file (HTTP {exc.status}); try again in a moment"
            ) from None
        return "was attached to the chat"

    def _too_large(self, name: str, size: int) -> str:
        limit = f" of {human_size(self.max_bytes)}" if self.max_bytes else ""
        return (
            f"{name} is {human_size(size)}, over this chat's upload limit{limit}; "
            "offer a smaller part or a summary instead"
        )
