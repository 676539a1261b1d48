"""A loopback Smithery: the registry lookup (``GET /servers/{qualifiedName}``) and the
hosted-server gateway (``/{qualifiedName}/mcp``), proxied to a real MCP HTTP server."""

from .server import FakeSmithery, ProxiedRequest

__all__ = ["FakeSmithery", "ProxiedRequest"]
