"""A tiny MCP server for the tests, built on the official SDK, run over stdio.

``--hang`` never answers initialize (it does not even read stdin), like a
server stuck at start-up; ``--http PORT`` serves streamable HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from mcp.server.mcpserver import Image, MCPServer
from mcp_types import EmbeddedResource, TextContent, TextResourceContents

if "--hang" in sys.argv:
    time.sleep(3600)
    sys.exit(0)

server = MCPServer("clara-test-local")

# A 1x1 transparent PNG.
_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
)


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return f"echo: {text}"


@server.tool()
def env_keys() -> str:
    """The names of the environment variables this server received."""
    return ",".join(sorted(os.environ))


@server.tool()
def env_value(name: str) -> str:
    """One variable's value (for the tests that its stored, encrypted value arrives intact)."""
    return os.environ.get(name, "<unset>")


@server.tool()
def pid() -> str:
    """This server's process id."""
    return str(os.getpid())


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def fail(reason: str) -> str:
    """Always fails with the reason."""
    raise ValueError(reason)


@server.tool()
def picture() -> list:
    """A picture and a resource."""
    return [
        TextContent(text="here it is"),
        Image(data=_PNG, format="png").to_image_content(),
        EmbeddedResource(
            resource=TextResourceContents(uri="file:///notes.txt", text="resource body")
        ),
    ]


if __name__ == "__main__":
    if "--http" in sys.argv:  # --http PORT: streamable HTTP on loopback (the Smithery test)
        port = int(sys.argv[sys.argv.index("--http") + 1])
        server.run("streamable-http", host="127.0.0.1", port=port)
    else:
        server.run("stdio")
