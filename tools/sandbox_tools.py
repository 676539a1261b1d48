"""The code sandbox as tools for the model.

``sandbox/`` runs argv lists for a user; this module turns that into the
spec's tools (execute_python, run_shell, read_file, write_file, list_files,
unzip_file) and turns results into text the model can act on:

- ``execute_python``: what the program printed, verbatim — stdout, then
  stderr and the exit status when non-zero; a timeout or kill is said plainly.
- What a run leaves for the *user* comes back as ``ToolResult.attachments``
  (the adapter attaches them to the reply; the model is told their names):
  every image file in the workspace (its top folder and subfolders down to
  ``IMAGE_SCAN_DEPTH`` levels, at most ``IMAGE_SCAN_ENTRIES`` entries looked at)
  that the command created or rewrote (compared by size and mtime before and
  after), and the whole
  output as ``output.txt`` when it is too long to read in a chat message.
  Only when the adapter attaches files to its reply (``REPLY_FILES_KEY`` in
  the context) and within its upload limit.
- Sandbox errors a user or the model can fix (bad path, full workspace, all
  sandboxes busy) become ``ToolError`` with what to do; nothing else of the
  sandbox's internals reaches the model.

Every path is workspace-relative and checked host-side without following
symlinks (``sandbox.workspace``); ``unzip_file`` extracts *inside* the
sandbox, so a hostile archive (``..`` members, zip bombs) can only touch the
workspace and is bounded by its quota and the command timeout.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from sandbox.base import (
    ExecResult,
    FileInfo,
    SandboxBusy,
    SandboxError,
    SandboxPathError,
    SandboxQuotaExceeded,
)
from sandbox.manager import SandboxManager
from sandbox.packages import PackageError, PackageInstaller
from sandbox.workspace import split_rel
from storage.local_files import human_size

from .registry import (
    REPLY_FILES_KEY,
    Tool,
    ToolAttachment,
    ToolContext,
    ToolError,
    ToolRegistry,
    ToolResult,
)

log = logging.getLogger(__name__)

READ_LIMIT = 100 * 1024  # bytes of a file shown to the model
WRITE_LIMIT = 10 * 1024 * 1024

#: Files a run leaves that the user wants to *see* (a matplotlib plot).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg")
#: Discord takes at most 10 files per message; one place is kept for output.txt.
MAX_IMAGES = 9
#: Output longer than this is unreadable in a chat reply (a Discord message holds
#: 2,000 characters, and the model's answer wraps it): the user gets it as a file.
LONG_OUTPUT_CHARS = 1500
LONG_OUTPUT_LINES = 40
OUTPUT_FILENAME = "output.txt"
#: Images are looked for this many folder levels deep (``plots/2024/fig.png``
#: is level 3)...
IMAGE_SCAN_DEPTH = 3
#: ...and in at most this many listed entries: the scan runs twice per command,
#: and a workspace holding an unzipped dataset tree must not stall every run.
IMAGE_SCAN_ENTRIES = 500

# Extracting with the sandbox's own Python: zipfile drops absolute paths and
# ".." components, and never creates symlinks.
_UNZIP = (
    "import sys, zipfile\n"
    "src, dest = sys.argv[1], sys.argv[2]\n"
    "with zipfile.ZipFile(src) as z:\n"
    "    names = z.namelist()\n"
    "    z.extractall(dest)\n"
    "print(f'extracted {len(names)} entries to {dest}')\n"
    "for n in names[:50]:\n"
    "    print(' ', n)\n"
    "if len(names) > 50:\n"
    "    print(f'  … and {len(names) - 50} more')\n"
)


def format_exec(result: ExecResult) -> str:
    """The model-facing text of a command's result: stdout verbatim, then what went wrong."""
    extras = []
    if result.timed_out:
        extras.append(
            f"[stopped: the command ran longer than its {result.timeout_s or result.duration_s:.0f}s"
            " limit and everything it started was killed; make it faster or do less per run]"
        )
    if result.stderr:
        extras.append(f"[stderr]\n{result.stderr.rstrip()}")
    if result.exit_code not in (0, None):
        extras.append(f"[exit status {result.exit_code}]")
    extras.extend(f"[{note}]" for note in result.notes)
    if not extras:
        return result.stdout or "(the program printed nothing; exit status 0)"
    if result.stdout:
        return result.stdout.rstrip("\n") + "\n" + "\n".join(extras)
    return "\n".join(extras)


def _user(ctx: ToolContext) -> str:
    return ctx.user_id


Snapshot = dict[str, tuple[int, int]]  # image path -> (size, mtime_ns)


def _images(files: list[FileInfo]) -> Snapshot:
    return {
        f.path: (f.size, f.mtime_ns)
        for f in files
        if not f.is_dir and f.path.lower().endswith(IMAGE_SUFFIXES)
    }


async def _snapshot(manager: SandboxManager, user: str) -> Snapshot | None:
    """The workspace's images, breadth first to ``IMAGE_SCAN_DEPTH`` levels and
    ``IMAGE_SCAN_ENTRIES`` entries (both scans walk in the same sorted order, so
    the bound cuts them at the same place); None when it cannot be listed (then
    no artifacts are collected: a missing "before" would make every image look
    new).  Hidden folders (``.cache``, ``.local``: pip's and matplotlib's) are
    not entered: nothing there is meant for the user."""
    found: list[FileInfo] = []
    level = ["."]
    try:
        for depth in range(1, IMAGE_SCAN_DEPTH + 1):
            below: list[str] = []
            for folder in level:
                if len(found) >= IMAGE_SCAN_ENTRIES:
                    break
                entries = (await manager.list_files(user, folder))[
                    : IMAGE_SCAN_ENTRIES - len(found)
                ]
                found.extend(entries)
                below.extend(
                    f.path
                    for f in entries
                    if f.is_dir and not f.path.rsplit("/", 1)[-1].startswith(".")
                )
            if depth == IMAGE_SCAN_DEPTH or not below or len(found) >= IMAGE_SCAN_ENTRIES:
                break
            level = below
    except SandboxError as exc:
        log.info("not collecting images of %s's run: %s", user, exc)
        return None
    return _images(found)


def _attachment_name(path: str, taken: set[str]) -> str:
    """The file's own name (``plots/a.png`` -> ``a.png``: a chat shows no folders),
    or its path with ``_`` for ``/`` when another image already took that name."""
    name = path.rsplit("/", 1)[-1]
    if name in taken:
        name = path.replace("/", "_")
    taken.add(name)
    return name


def _is_long(text: str) -> bool:
    return len(text) > LONG_OUTPUT_CHARS or text.count("\n") > LONG_OUTPUT_LINES


async def _artifacts(
    manager: SandboxManager,
    user: str,
    before: Snapshot,
    text: str,
    limit: int,
) -> tuple[list[ToolAttachment], list[str]]:
    """What the run leaves for the user, and notes telling the model about it."""
    after = await _snapshot(manager, user)
    if after is None:
        return [], []
    made = sorted(path for path, sig in after.items() if before.get(path) != sig)
    files: list[ToolAttachment] = []
    skipped: list[str] = []
    taken: set[str] = set()
    attached: list[str] = []  # workspace paths, what the model's code wrote
    for path in made:
        size = after[path][0]
        if len(files) >= MAX_IMAGES or size > limit:
            skipped.append(f"{path} ({human_size(size)})")
            continue
        try:
            data = await manager.get_file(user, path, max_bytes=limit)
        except SandboxError as exc:  # removed or grown since the listing
            log.info("image %s of %s not attached: %s", path, user, exc)
            skipped.append(path)
            continue
        files.append(ToolAttachment(_attachment_name(path, taken), data))
        attached.append(path)
    notes = []
    if files:
        notes.append("images attached to your reply for the user to see: " + ", ".join(attached))
    if skipped:
        notes.append(
            "not attached (over the chat's limit of "
            f"{MAX_IMAGES} images or {human_size(limit)}): " + ", ".join(skipped)
        )
    data = text.encode()
    if _is_long(text) and len(data) <= limit:
        files.append(ToolAttachment(OUTPUT_FILENAME, data))
        notes.append(
            f"the whole output is attached to your reply as {OUTPUT_FILENAME}; "
            "quote only the part that answers the question"
        )
    return files, notes


async def _guard(coro: Any) -> Any:
    """Run a sandbox call, turning what the user/model can fix into ToolError."""
    try:
        return await coro
    except (SandboxPathError, SandboxQuotaExceeded, SandboxBusy, PackageError) as exc:
        raise ToolError(str(exc)) from None
    except SandboxError as exc:
        log.warning("sandbox failure: %s", exc)
        raise ToolError(
            "the code sandbox is unavailable right now; try again later or answer without it"
        ) from None


def _timeout(args: dict[str, Any], manager: SandboxManager, default: float) -> float:
    requested = args.get("timeout")
    if requested is None:
        return default
    if requested <= 0:
        raise ToolError("timeout must be a positive number of seconds")
    return min(float(requested), default)


def sandbox_tools(manager: SandboxManager, *, exec_timeout: float = 30.0) -> list[Tool]:
    # The registry's own timeout is a backstop above the command's.
    tool_timeout = exec_timeout + 30

    async def run(
        ctx: ToolContext, argv: list[str], *, stdin: bytes | None, timeout: float
    ) -> ToolResult:
        user = _user(ctx)
        # Only a chat that attaches files to its reply gets them (see REPLY_FILES_KEY).
        limit = ctx.extras.get(REPLY_FILES_KEY)
        before = await _snapshot(manager, user) if isinstance(limit, int) else None
        result = await _guard(manager.exec(user, argv, stdin=stdin, timeout=timeout))
        text = format_exec(result)
        if before is None or not isinstance(limit, int):
            return ToolResult(text)
        files, notes = await _artifacts(manager, user, before, text, limit)
        if notes:
            text = text.rstrip("\n") + "\n" + "\n".join(f"[{note}]" for note in notes)
        return ToolResult(text, attachments=files)

    async def execute_python(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        timeout = _timeout(args, manager, exec_timeout)
        # The code goes in on stdin: no temporary file in the user's workspace.
        return await run(ctx, ["python3", "-"], stdin=args["code"].encode(), timeout=timeout)

    async def run_shell(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        timeout = _timeout(args, manager, exec_timeout)
        return await run(ctx, ["sh", "-c", args["command"]], stdin=None, timeout=timeout)

    async def read_file(args: dict[str, Any], ctx: ToolContext) -> str:
        data = await _guard(manager.get_file(_user(ctx), args["path"], max_bytes=WRITE_LIMIT))
        if b"\0" in data[:8192]:
            return (
                f"{args['path']} is a binary file of {len(data):,} bytes; "
                "inspect it with execute_python instead"
            )
        text = data[:READ_LIMIT].decode("utf-8", "replace")
        if len(data) > READ_LIMIT:
            text += f"\n… [showing the first {READ_LIMIT:,} of {len(data):,} bytes]"
        return text

    async def write_file(args: dict[str, Any], ctx: ToolContext) -> str:
        data = args["content"].encode()
        if len(data) > WRITE_LIMIT:
            raise ToolError(f"content is {len(data):,} bytes; the limit is {WRITE_LIMIT:,}")
        await _guard(manager.put_file(_user(ctx), args["path"], data))
        return f"wrote {len(data):,} bytes to /workspace/{'/'.join(split_rel(args['path']))}"

    async def list_files(args: dict[str, Any], ctx: ToolContext) -> str:
        path = args.get("path") or "."
        files = await _guard(manager.list_files(_user(ctx), path))
        if not files:
            return f"{path} is empty"
        lines = [f"{f.path}/" if f.is_dir else f"{f.path}  ({f.size:,} bytes)" for f in files]
        return "\n".join(lines)

    async def unzip_file(args: dict[str, Any], ctx: ToolContext) -> str:
        src = "/".join(_checked(args["path"]))
        dest = "/".join(_checked(args.get("destination") or ".")) or "."
        result = await _guard(
            manager.exec(_user(ctx), ["python3", "-c", _UNZIP, src, dest], timeout=exec_timeout)
        )
        if not result.ok:
            raise ToolError(f"could not unzip {args['path']}: {format_exec(result)}")
        return result.stdout.rstrip()

    timeout_prop = {
        "type": "number",
        "description": f"Seconds before the run is stopped (at most {exec_timeout:.0f}).",
    }
    return [
        Tool(
            name="execute_python",
            description=(
                "Run Python 3 code in the user's private sandbox (no network; files persist in "
                "/workspace between calls). Returns exactly what the program printed: stdout, "
                "then stderr and the exit status when it failed. Print what you need to see. "
                "Images it saves in /workspace (e.g. plt.savefig('plot.png')) are attached to "
                "your reply. Show the user the output in a code block."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "code": {"type": "string", "description": "A complete Python program."},
                    "timeout": timeout_prop,
                },
                "required": ["code"],
                "additionalProperties": False,
            },
            handler=execute_python,
            activity="running Python",
            timeout=tool_timeout,
            source="sandbox",
        ),
        Tool(
            name="run_shell",
            description=(
                "Run a shell command (sh) in the user's sandbox, working directory /workspace, "
                "no network. Returns its output and exit status."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "The shell command line."},
                    "timeout": timeout_prop,
                },
                "required": ["command"],
                "additionalProperties": False,
            },
            handler=run_shell,
            activity="running a shell command",
            timeout=tool_timeout,
            source="sandbox",
        ),
        Tool(
            name="read_file",
            description="Read a text file from the sandbox workspace (path relative to /workspace).",
            parameters=_path_schema(required=True),
            handler=read_file,
            activity="reading a sandbox file",
            timeout=30,
            source="sandbox",
        ),
        Tool(
            name="write_file",
            description="Write a text file into the sandbox workspace, creating folders as needed.",
            parameters={
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "Path relative to /workspace."},
                    "content": {"type": "string", "description": "The file's full text."},
                },
                "required": ["path", "content"],
                "additionalProperties": False,
            },
            handler=write_file,
            activity="writing a sandbox file",
            timeout=30,
            source="sandbox",
        ),
        Tool(
            name="list_files",
            description="List a folder of the sandbox workspace (default: /workspace itself).",
            parameters=_path_schema(required=False),
            handler=list_files,
            activity="listing sandbox files",
            timeout=30,
            source="sandbox",
        ),
        Tool(
            name="unzip_file",
            description="Extract a .zip archive in the sandbox workspace.",
            parameters={
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "The .zip file, relative path."},
                    "destination": {
                        "type": "string",
                        "description": "Folder to extract into (default: the workspace).",
                    },
                },
                "required": ["path"],
                "additionalProperties": False,
            },
            handler=unzip_file,
            activity="unzipping",
            timeout=tool_timeout,
            source="sandbox",
        ),
    ]


def install_package_tool(installer: PackageInstaller) -> Tool:
    async def install_package(args: dict[str, Any], ctx: ToolContext) -> str:
        wheels = await _guard(installer.install(_user(ctx), args["package"]))
        return (
            f"installed {args['package']} for this user's sandbox: {', '.join(wheels)}. "
            "Import it in execute_python; it stays installed while the workspace exists."
        )

    return Tool(
        name="install_package",
        description=(
            "Install a Python package (with its dependencies) from the package index into the "
            "user's sandbox, e.g. 'numpy' or 'requests==2.32.3'. Wheels only."
        ),
        parameters={
            "type": "object",
            "properties": {
                "package": {"type": "string", "description": "A requirement: name[extras]==version"}
            },
            "required": ["package"],
            "additionalProperties": False,
        },
        handler=install_package,
        activity="installing a package",
        timeout=installer.timeout + 60,
        source="sandbox",
    )


def _checked(path: str) -> list[str]:
    try:
        return split_rel(path)
    except SandboxPathError as exc:
        raise ToolError(str(exc)) from None


def _path_schema(*, required: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"path": {"type": "string", "description": "Path relative to /workspace."}},
        "additionalProperties": False,
    }
    if required:
        schema["required"] = ["path"]
    return schema


def register_sandbox_tools(
    registry: ToolRegistry,
    manager: SandboxManager | None,
    *,
    exec_timeout: float = 30.0,
    pip_index_url: str | None = None,
    pip_cache_dir: Path | None = None,
) -> int:
    """Register the sandbox tools when a sandbox runs; return how many were added.

    With no manager (no backend can run here) nothing is registered, so the
    model is never offered a tool that cannot work; ``install_package`` only
    when a package index is configured.
    """
    if manager is None:
        return 0
    tools = sandbox_tools(manager, exec_timeout=exec_timeout)
    if pip_index_url:
        installer = PackageInstaller(
            manager,
            index_url=pip_index_url,
            cache_root=pip_cache_dir or Path(tempfile.gettempdir()) / "clara-pip",
        )
        tools.append(install_package_tool(installer))
    for tool in tools:
        registry.register(tool)
    return len(tools)
