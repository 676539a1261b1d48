"""Installed MCP servers: how to start each one, and whether it should run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, TimestampMixin, utcnow


class McpServer(TimestampMixin, Base):
    """One MCP server configuration; ``name`` is the prefix of its tools (``name__tool``)."""

    __tablename__ = "mcp_servers"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    source: Mapped[str] = mapped_column(String(16), nullable=False)  # npm|pypi|github|docker|local
    package: Mapped[str] = mapped_column(Text, nullable=False)
    transport: Mapped[str] = mapped_column(String(8), nullable=False)  # stdio|http
    command: Mapped[str | None] = mapped_column(Text)
    args: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    cwd: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, str]] = mapped_column(JSONB, nullable=False, default=dict)
    #: The only variables the server gets besides PATH/HOME/…: never Clara's own tokens.
    env: Mapped[dict[str, str]] = mapped_column(JSONB, nullable=False, default=dict)
    include_tools: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    exclude_tools: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    installed_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    def as_dict(self) -> dict[str, Any]:
        return {c.name: getattr(self, c.name) for c in self.__table__.columns}
