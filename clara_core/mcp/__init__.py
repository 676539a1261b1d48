"""MCP plug-in servers: configuration, supervision, installs, and their tools in the registry."""

from __future__ import annotations

from .config import ServerConfig, validate_server_name
from .supervisor import ServerState, Supervisor, build_mcp, start_mcp

__all__ = [
    "ServerConfig",
    "ServerState",
    "Supervisor",
    "build_mcp",
    "start_mcp",
    "validate_server_name",
]
