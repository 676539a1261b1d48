"""Ports: what a tool may ask of the chat it runs in, without knowing the chat.

A tool that must put something into the conversation (``send_local_file``)
finds the port in ``ToolContext.extras`` under its key; each adapter (the
Discord client, the console) puts its own implementation there for the turn.
No port there means this chat cannot do it, and the tool says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from clara_core.errors import ClaraError

#: ``ToolContext.extras`` key of the turn's ``FilePoster``.
FILE_POSTER_KEY = "file_poster"


class FilePostError(ClaraError):
    """The chat would not take the file; the message says why and what to do."""


@runtime_checkable
class FilePoster(Protocol):
    """Posts a file into the conversation the current turn came from."""

    #: Largest file this chat accepts, in bytes (None: no limit known).
    max_bytes: int | None

    async def post_file(self, name: str, data: bytes, *, path: Path | None = None) -> str:
        """Post ``data`` as a file called ``name``; ``path`` is where it is stored
        (for adapters that show a path rather than upload).  Returns a short phrase
        for the model ("attached to the chat"); raises ``FilePostError``."""
        ...
