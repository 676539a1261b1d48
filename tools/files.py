"""The user's local file storage as tools for the model.

Tools (names are the spec's public interface): ``save_to_local``,
``list_local_files``, ``read_local_file``, ``delete_local_file``,
``send_local_file``, and, only while a code sandbox runs,
``download_from_sandbox`` / ``upload_to_sandbox``.

Every tool works on ``ToolContext.user_id``'s own folder of the
``LocalFileStore`` (CLARA_FILES_DIR/<user>/), whose rules make escapes
impossible: names never contain a separator, files are opened relative to the
user's folder without following links, and saves respect CLARA_MAX_FILE_SIZE
and CLARA_FILES_QUOTA.  ``send_local_file`` posts through the turn's
``FilePoster`` port (``tools.ports``), so this module never imports discord.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import Any

from sandbox.base import (
    SandboxBusy,
    SandboxError,
    SandboxPathError,
    SandboxQuotaExceeded,
)
from sandbox.manager import SandboxManager
from sandbox.workspace import split_rel
from storage.local_files import FileStoreError, LocalFileStore, human_size

from .ports import FILE_POSTER_KEY, FilePoster, FilePostError
from .registry import Tool, ToolContext, ToolError, ToolRegistry

log = logging.getLogger(__name__)

#: Text of a stored file shown to the model at once (the rest is said, not sent).
READ_LIMIT = 100 * 1024
#: Bytes sniffed for NUL to tell binary files from text.
_SNIFF = 8192


def _from_store(exc: FileStoreError) -> ToolError:
    return ToolError(str(exc))


async def _sandbox(coro: Any) -> Any:
    """A sandbox call; what the user or model can fix becomes a ToolError saying so."""
    try:
        return await coro
    except (SandboxPathError, SandboxQuotaExceeded, SandboxBusy) as exc:
        raise ToolError(str(exc)) from None
    except SandboxError as exc:
        log.warning("sandbox failure during a file transfer: %s", exc)
        raise ToolError("the code sandbox is unavailable right now; try again later") from None


def _name_arg(args: dict[str, Any], key: str) -> str:
    name = args[key].strip()
    if not name:
        raise ToolError(f"{key} must name a file")
    return name


def local_file_tools(store: LocalFileStore) -> list[Tool]:
    """The tools that need nothing but the store (always offered)."""

    async def save_to_local(args: dict[str, Any], ctx: ToolContext) -> str:
        name = _name_arg(args, "filename")
        try:
            saved = await store.save(ctx.user_id, name, args["content"].encode())
        except FileStoreError as exc:
            raise _from_store(exc) from None
        renamed = f" (a file called {name!r} already existed)" if saved.name != name else ""
        return f"saved {saved.name} ({human_size(saved.size)}) in local storage{renamed}"

    async def list_local_files(args: dict[str, Any], ctx: ToolContext) -> str:
        try:
            files = await store.list(ctx.user_id)
        except FileStoreError as exc:
            raise _from_store(exc) from None
        if not files:
            return "no files are stored for this user yet"
        used = sum(f.size for f in files)
        lines = [f"{f.name}  ({human_size(f.size)})" for f in files]
        total = f"{len(files)} file{'s' if len(files) != 1 else ''}, {human_size(used)}"
        if store.quota:
            total += f" of the {human_size(store.quota)} allowed"
        return "\n".join([*lines, total])

    async def read_local_file(args: dict[str, Any], ctx: ToolContext) -> str:
        name = _name_arg(args, "filename")
        try:
            found, data = await store.read(ctx.user_id, name)
        except FileStoreError as exc:
            raise _from_store(exc) from None
        if b"\0" in data[:_SNIFF]:
            return (
                f"{found.name} is a binary file of {human_size(found.size)}; it cannot be "
                "shown as text (send it with send_local_file, or inspect it in the sandbox)"
            )
        text = data[:READ_LIMIT].decode("utf-8", "replace")
        if len(data) > READ_LIMIT:
            text += f"\n… [showing the first {READ_LIMIT:,} of {len(data):,} bytes]"
        return text

    async def delete_local_file(args: dict[str, Any], ctx: ToolContext) -> str:
        name = _name_arg(args, "filename")
        try:
            gone = await store.delete(ctx.user_id, name)
        except FileStoreError as exc:
            raise _from_store(exc) from None
        return f"deleted {gone.name} ({human_size(gone.size)})"

    async def send_local_file(args: dict[str, Any], ctx: ToolContext) -> str:
        name = _name_arg(args, "filename")
        poster = ctx.extras.get(FILE_POSTER_KEY)
        if not isinstance(poster, FilePoster):
            raise ToolError("this conversation cannot receive files; tell the user where it is")
        try:
            # Checked before reading: a 50 MB file is not loaded to be refused.
            found = await store.info(ctx.user_id, name)
            if poster.max_bytes is not None and found.size > poster.max_bytes:
                raise ToolError(
                    f"{found.name} is {human_size(found.size)}; this chat accepts files up to "
                    f"{human_size(poster.max_bytes)}. Offer a smaller part or a summary."
                )
            found, data = await store.read(ctx.user_id, found.name, max_bytes=poster.max_bytes)
        except FileStoreError as exc:
            raise _from_store(exc) from None
        try:
            where = await poster.post_file(found.name, data, path=found.path)
        except FilePostError as exc:
            raise ToolError(str(exc)) from None
        return f"{found.name} ({human_size(found.size)}) {where}"

    filename = {"type": "string", "description": "The stored file's name, as listed."}
    # read, delete and send take one argument, the file's name.
    by_filename = {
        "type": "object",
        "properties": {"filename": filename},
        "required": ["filename"],
        "additionalProperties": False,
    }
    return [
        Tool(
            name="save_to_local",
            description=(
                "Save text as a file in the user's own storage, kept across conversations. "
                "An existing file is never replaced: a taken name gets a number."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "filename": {"type": "string", "description": "File name, e.g. notes.md."},
                    "content": {"type": "string", "description": "The file's full text."},
                },
                "required": ["filename", "content"],
                "additionalProperties": False,
            },
            handler=save_to_local,
            timeout=30,
            source="files",
        ),
        Tool(
            name="list_local_files",
            description="List the files in the user's storage (their uploads and saved files).",
            parameters={"type": "object", "properties": {}, "additionalProperties": False},
            handler=list_local_files,
            timeout=30,
            source="files",
        ),
        Tool(
            name="read_local_file",
            description="Read a text file from the user's storage.",
            parameters=by_filename,
            handler=read_local_file,
            timeout=30,
            source="files",
        ),
        Tool(
            name="delete_local_file",
            description="Delete a file from the user's storage, for good.",
            parameters=by_filename,
            handler=delete_local_file,
            timeout=30,
            source="files",
        ),
        Tool(
            name="send_local_file",
            description="Post a file from the user's storage to this chat, as an attachment.",
            parameters=by_filename,
            handler=send_local_file,
            timeout=120,
            source="files",
        ),
    ]


def sandbox_transfer_tools(store: LocalFileStore, manager: SandboxManager) -> list[Tool]:
    """The two tools that move files between local storage and the sandbox."""

    async def download_from_sandbox(args: dict[str, Any], ctx: ToolContext) -> str:
        path = _name_arg(args, "sandbox_path")
        data = await _sandbox(manager.get_file(ctx.user_id, path, max_bytes=store.max_size))
        name = (args.get("local_filename") or "").strip() or PurePosixPath(path).name
        try:
            saved = await store.save(ctx.user_id, name, data)
        except FileStoreError as exc:
            raise _from_store(exc) from None
        return f"copied {path} to local storage as {saved.name} ({human_size(saved.size)})"

    async def upload_to_sandbox(args: dict[str, Any], ctx: ToolContext) -> str:
        name = _name_arg(args, "local_filename")
        try:
            found, data = await store.read(ctx.user_id, name)
        except FileStoreError as exc:
            raise _from_store(exc) from None
        dest = (args.get("sandbox_path") or "").strip() or found.name
        await _sandbox(manager.put_file(ctx.user_id, dest, data))
        shown = "/workspace/" + "/".join(split_rel(dest))  # valid: put_file accepted it
        return f"copied {found.name} ({human_size(found.size)}) to {shown} in the sandbox"

    return [
        Tool(
            name="download_from_sandbox",
            description=(
                "Copy a file from the code sandbox's /workspace into the user's local storage, "
                "where it stays after the sandbox is gone (and can be sent with send_local_file)."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "sandbox_path": {
                        "type": "string",
                        "description": "Path in the sandbox, relative to /workspace.",
                    },
                    "local_filename": {
                        "type": "string",
                        "description": "Name to store it under (default: the file's own name).",
                    },
                },
                "required": ["sandbox_path"],
                "additionalProperties": False,
            },
            handler=download_from_sandbox,
            timeout=120,
            source="files",
        ),
        Tool(
            name="upload_to_sandbox",
            description=(
                "Copy a file from the user's local storage (e.g. something they uploaded) into "
                "the code sandbox's /workspace, to work on it with code."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "local_filename": {
                        "type": "string",
                        "description": "The stored file's name, as listed.",
                    },
                    "sandbox_path": {
                        "type": "string",
                        "description": "Destination relative to /workspace (default: same name).",
                    },
                },
                "required": ["local_filename"],
                "additionalProperties": False,
            },
            handler=upload_to_sandbox,
            timeout=120,
            source="files",
        ),
    ]


def register_file_tools(
    registry: ToolRegistry, store: LocalFileStore, sandbox_manager: SandboxManager | None = None
) -> int:
    """Register the local file tools; the sandbox transfers only when a sandbox
    runs (the model is never offered a tool that cannot work).  Returns the count."""
    tools = local_file_tools(store)
    for tool in tools:
        registry.register(tool)
    return len(tools) + register_sandbox_transfer_tools(registry, store, sandbox_manager)


def register_sandbox_transfer_tools(
    registry: ToolRegistry, store: LocalFileStore, sandbox_manager: SandboxManager | None
) -> int:
    """Add download_from_sandbox / upload_to_sandbox once a sandbox runs (for a
    composition root that starts the sandbox after the other tools)."""
    if sandbox_manager is None:
        return 0
    tools = sandbox_transfer_tools(store, sandbox_manager)
    for tool in tools:
        registry.register(tool)
    return len(tools)
