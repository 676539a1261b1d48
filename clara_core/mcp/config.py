"""One MCP server's configuration, as the supervisor and installer see it."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from clara_core.errors import ClaraError

SOURCES = ("npm", "pypi", "github", "docker", "local", "smithery")
TRANSPORTS = ("stdio", "http")

#: Lower-case, no double underscore: ``a__b`` + tool ``c`` and ``a`` + tool ``b__c`` would
#: otherwise both be ``a__b__c``.
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class McpConfigError(ClaraError):
    """A server configuration a user asked for cannot work; the message says why."""


def validate_server_name(name: str) -> str:
    if not _NAME_RE.match(name) or "__" in name or name.endswith("_"):
        raise McpConfigError(
            f"{name!r} is not a usable MCP server name: use 1-40 lower-case letters, digits, "
            "'-' or single '_' (it becomes the prefix of the tools, e.g. everything__echo)."
        )
    return name


@dataclass
class ServerConfig:
    name: str
    source: str
    package: str
    transport: Literal["stdio", "http"] = "stdio"
    command: str | None = None
    args: list[str] = field(default_factory=list)
    cwd: str | None = None
    url: str | None = None
    #: Values are secrets (API keys): kept out of repr (logs), encrypted at rest.
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    #: Everything the server's environment gets beyond PATH/HOME/USER/SHELL/TERM/LOGNAME.
    env: dict[str, str] = field(default_factory=dict, repr=False)
    include_tools: list[str] = field(default_factory=list)
    exclude_tools: list[str] = field(default_factory=list)
    enabled: bool = True
    installed_by: str | None = None
    last_error: str | None = None
    #: Why this stored configuration cannot run at all (its secrets cannot be decrypted);
    #: not a column: the runner refuses to start and says this instead.
    config_error: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        validate_server_name(self.name)
        if self.transport not in TRANSPORTS:
            raise McpConfigError(f"transport must be one of {TRANSPORTS}, not {self.transport!r}")
        if self.transport == "stdio" and not self.command:
            raise McpConfigError(f"MCP server {self.name!r} (stdio) needs a command")
        if self.transport == "http" and not self.url:
            raise McpConfigError(f"MCP server {self.name!r} (http) needs a url")

    def wants_tool(self, tool: str) -> bool:
        if self.include_tools and tool not in self.include_tools:
            return False
        return tool not in self.exclude_tools

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ServerConfig:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in row.items() if k in known})

    def to_row(self) -> dict[str, Any]:
        """The store's columns (everything but the name, its key)."""
        row = asdict(self)
        row.pop("name")
        row.pop("config_error")
        return row
