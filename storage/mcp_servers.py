"""MCP server configurations in PostgreSQL (the ``mcp_servers`` table).

The store hands out plain dicts (column → value), so ``clara_core.mcp`` never
touches SQLAlchemy objects; it turns them into its own ``ServerConfig``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from .db import session_factory
from .models import McpServer
from .models.base import utcnow

#: Columns a caller may set; the rest (timestamps) are the store's business.
_WRITABLE = {
    "source",
    "package",
    "transport",
    "command",
    "args",
    "cwd",
    "url",
    "headers",
    "env",
    "include_tools",
    "exclude_tools",
    "enabled",
    "last_error",
    "installed_by",
}


class McpServerStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)

    async def list(self) -> list[dict[str, Any]]:
        async with self._sessions() as db:
            rows = (await db.execute(select(McpServer).order_by(McpServer.name))).scalars()
            return [r.as_dict() for r in rows]

    async def get(self, name: str) -> dict[str, Any] | None:
        async with self._sessions() as db:
            row = await db.get(McpServer, name)
            return row.as_dict() if row is not None else None

    async def save(self, name: str, **values: Any) -> None:
        """Insert or replace the server's configuration (a reinstall keeps created_at)."""
        unknown = set(values) - _WRITABLE
        if unknown:
            raise ValueError(f"unknown mcp_servers columns: {sorted(unknown)}")
        defaults: dict[str, Any] = {
            "args": [],
            "headers": {},
            "env": {},
            "include_tools": [],
            "exclude_tools": [],
            "enabled": True,
        }
        row = {**defaults, **values, "name": name, "updated_at": utcnow()}
        stmt = insert(McpServer).values(**row)
        stmt = stmt.on_conflict_do_update(
            index_elements=[McpServer.name], set_={k: stmt.excluded[k] for k in row if k != "name"}
        )
        async with self._sessions() as db, db.begin():
            await db.execute(stmt)

    async def update(self, name: str, **values: Any) -> bool:
        """Change some columns; False when there is no such server."""
        unknown = set(values) - _WRITABLE
        if unknown:
            raise ValueError(f"unknown mcp_servers columns: {sorted(unknown)}")
        async with self._sessions() as db, db.begin():
            res = await db.execute(
                update(McpServer)
                .where(McpServer.name == name)
                .values(**values, updated_at=utcnow())
            )
            return bool(res.rowcount)

    async def delete(self, name: str) -> bool:
        async with self._sessions() as db, db.begin():
            res = await db.execute(delete(McpServer).where(McpServer.name == name))
            return bool(res.rowcount)

    async def delete_user_data(self, user_id: str) -> int:
        """Forget who installed what; the servers themselves belong to the guild."""
        async with self._sessions() as db, db.begin():
            res = await db.execute(
                update(McpServer)
                .where(McpServer.installed_by == user_id)
                .values(installed_by=None, updated_at=utcnow())
            )
            return int(res.rowcount or 0)
