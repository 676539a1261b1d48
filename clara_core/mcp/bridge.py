"""MCP tools in Clara's ToolRegistry, as ``{server}__{tool}``, and their results as text.

Tools go through ``ToolRegistry.register`` like built-ins, so the registry's
checks (admin-only, argument validation, timeouts) apply to them too.  A name
already taken by a built-in or another server is *refused* (logged, and shown
by mcp_status), never silently replaced.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import TYPE_CHECKING, Any

from mcp_types import (
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
)

from clara_core.llm.types import ImagePart
from tools.registry import NAME_RE, Tool, ToolContext, ToolResult

if TYPE_CHECKING:
    from .supervisor import ServerRunner, Supervisor

log = logging.getLogger(__name__)

SEPARATOR = "__"
#: Tool output kept for the model; a server can return megabytes.
MAX_RESULT_CHARS = 20_000
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
#: Image formats both wires take inline (others stay a text line).
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
#: The smaller of the wires' per-image limits (Anthropic: 5 MB); bigger ones stay text.
MAX_IMAGE_BYTES = 5 * 1024 * 1024
#: Images of one result sent to the model; a server can return dozens.
MAX_IMAGES = 4


def tool_source(server: str) -> str:
    return f"mcp:{server}"


def _size(b64: str) -> str:
    n = len(b64) * 3 // 4
    return f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} bytes"


def result_text(result: CallToolResult) -> str:
    """Flatten MCP content blocks into the text the model reads."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, TextContent):
            parts.append(block.text)
        elif isinstance(block, ImageContent):
            # Said in words too: a model that can't see learns the image exists
            # (its pixels go separately, see ``result_images``).
            parts.append(f"[image: {block.mime_type}, {_size(block.data)}]")
        elif isinstance(block, AudioContent):
            parts.append(f"[audio: {block.mime_type}, {_size(block.data)}]")
        elif isinstance(block, EmbeddedResource):
            res = block.resource
            if isinstance(res, TextResourceContents):
                parts.append(f"[resource {res.uri}]\n{res.text}")
            elif isinstance(res, BlobResourceContents):
                mime = res.mime_type or "application/octet-stream"
                parts.append(f"[resource {res.uri}: {mime}, {_size(res.blob)}]")
        elif isinstance(block, ResourceLink):
            parts.append(f"[resource link {block.name}: {block.uri}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    text = "\n".join(parts) if parts else "(the tool returned nothing)"
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n[… {len(text) - MAX_RESULT_CHARS} more characters cut]"
    return text


def _image(mime: str | None, b64: str) -> ImagePart | None:
    if mime not in IMAGE_TYPES or len(b64) * 3 // 4 > MAX_IMAGE_BYTES:
        return None
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None  # a broken image from a server must not break the turn
    # The wires check the bytes against the type: trust the bytes, not the label.
    actual = _sniff(data)
    return ImagePart(media_type=actual, data=data) if actual is not None else None


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def result_images(result: CallToolResult) -> list[ImagePart]:
    """The result's images (image blocks and image blobs), for models that can see."""
    images: list[ImagePart] = []
    for block in result.content:
        image = None
        if isinstance(block, ImageContent):
            image = _image(block.mime_type, block.data)
        elif isinstance(block, EmbeddedResource) and isinstance(
            block.resource, BlobResourceContents
        ):
            image = _image(block.resource.mime_type, block.resource.blob)
        if image is not None:
            images.append(image)
        if len(images) == MAX_IMAGES:
            break
    return images


class ToolBridge:
    def __init__(self, registry: Any, supervisor: Supervisor) -> None:
        self.registry = registry
        self.supervisor = supervisor
        self._names: dict[str, set[str]] = {}  # server -> registered full names

    def sync(self, runner: ServerRunner) -> None:
        """Make the registry hold exactly this server's (wanted) tools."""
        server = runner.name
        source = tool_source(server)
        wanted: dict[str, Tool] = {}
        refused: list[str] = []
        for mt in runner.tools:
            if not runner.config.wants_tool(mt.name):
                continue
            full = f"{server}{SEPARATOR}{mt.name}"
            if not NAME_RE.match(full):
                refused.append(
                    f"{full} (not a valid tool name: at most 64 letters, digits, _ or -)"
                )
                continue
            schema = mt.input_schema if mt.input_schema.get("type") == "object" else _EMPTY_SCHEMA
            wanted[full] = Tool(
                name=full,
                description=(mt.description or getattr(mt, "title", None) or mt.name)[:1024],
                parameters=schema,
                handler=self._handler(server, mt.name),
                # Our own per-call timeout answers first, with the clearer message.
                timeout=self.supervisor.call_timeout + 5,
                source=source,
            )
        mine = self._names.setdefault(server, set())
        for stale in mine - set(wanted):
            self.registry.unregister(stale)
        mine &= set(wanted)
        for full, tool in wanted.items():
            existing = self.registry.get(full)
            if existing is not None and existing.source != source:
                refused.append(f"{full} (already provided by {existing.source})")
                log.warning(
                    "MCP server %s: tool %s refused, the name is taken by %s",
                    server,
                    full,
                    existing.source,
                )
                continue
            self.registry.register(tool, replace=True)
            mine.add(full)
        runner.refused_tools = refused

    def drop(self, server: str) -> None:
        for full in self._names.pop(server, set()):
            self.registry.unregister(full)

    def _handler(self, server: str, tool: str) -> Any:
        async def handler(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
            result = await self.supervisor.call(server, tool, args)
            text = result_text(result)
            if result.is_error:
                return ToolResult(f"Error from {server}{SEPARATOR}{tool}: {text}", True)
            return ToolResult(text, images=result_images(result))

        return handler
