"""The mcp_* management tools through the registry, with the real mcp_servers table."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clara_core.config import Settings
from clara_core.mcp import ServerState, start_mcp
from storage.mcp_servers import McpServerStore
from tests.mcp.conftest import LOCAL_SERVER, call
from tools.registry import ToolContext, ToolRegistry

pytestmark = pytest.mark.storage

ADMIN = ToolContext("42", is_admin=True)
USER = ToolContext("7")
MCP_TOOLS = {
    "mcp_install",
    "mcp_uninstall",
    "mcp_list",
    "mcp_enable",
    "mcp_disable",
    "mcp_restart",
    "mcp_status",
}


def _settings(tmp_path: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        clara_data_dir=tmp_path / "data",
        mcp_servers_dir=tmp_path / "servers",
        mcp_connect_timeout=20,
    )


async def test_admin_installs_uses_and_manages_a_server(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    reg = ToolRegistry()
    sup = await start_mcp(reg, engine, _settings(tmp_path))
    try:
        assert {t.name for t in reg.available(ADMIN)} >= MCP_TOOLS
        out = await call(
            reg,
            "mcp_install",
            ADMIN,
            source="local",
            package=str(LOCAL_SERVER),
            name="local",
            env={"WEATHER_KEY": "k"},
        )
        assert not out.is_error, out.content
        assert "MCP server 'local' installed and running" in out.content
        assert "local__echo" in out.content
        # Offered at once (the next message's tool list), through the same registry.
        assert "local__echo" in {s.name for s in reg.specs(USER)}
        assert (await call(reg, "local__echo", USER, text="hi")).content == "echo: hi"

        store = McpServerStore(engine)
        row = await store.get("local")
        assert row is not None
        assert (row["source"], row["transport"], row["enabled"]) == ("local", "stdio", True)
        # The value is stored encrypted (tests/mcp/test_secrets.py), its name readable.
        assert set(row["env"]) == {"WEATHER_KEY"} and row["env"]["WEATHER_KEY"] != "k"
        assert row["installed_by"] == "42"

        listing = (await call(reg, "mcp_list", ADMIN)).content
        assert "- local (local: " in listing and "running" in listing

        assert not (await call(reg, "mcp_disable", ADMIN, name="local")).is_error
        assert (await store.get("local"))["enabled"] is False  # type: ignore[index]
        off = await call(reg, "local__echo", USER, text="x")
        assert off.is_error and "stopped" in off.content

        assert "running" in (await call(reg, "mcp_enable", ADMIN, name="local")).content
        assert (await call(reg, "local__echo", USER, text="x")).content == "echo: x"
        assert (
            "restarted and running" in (await call(reg, "mcp_restart", ADMIN, name="local")).content
        )
        status = (await call(reg, "mcp_status", ADMIN, name="local")).content
        assert "restarts: 0" in status or "restarts:" in status

        dup = await call(
            reg, "mcp_install", ADMIN, source="local", package=str(LOCAL_SERVER), name="local"
        )
        assert dup.is_error and "already installed" in dup.content

        gone = await call(reg, "mcp_uninstall", ADMIN, name="local")
        assert "uninstalled" in gone.content
        assert reg.get("local__echo") is None and await store.get("local") is None
        missing = await call(reg, "mcp_status", ADMIN, name="local")
        assert missing.is_error and "there is no MCP server named 'local'" in missing.content
    finally:
        await sup.aclose()


async def test_non_admin_install_is_refused_and_hidden(engine: AsyncEngine, tmp_path: Path) -> None:
    reg = ToolRegistry()
    sup = await start_mcp(reg, engine, _settings(tmp_path))
    try:
        assert not MCP_TOOLS & {s.name for s in reg.specs(USER)}
        res = await call(reg, "mcp_install", USER, source="local", package=str(LOCAL_SERVER))
        assert res.is_error and "restricted to server admins" in res.content
        assert sup.runners == {} and await McpServerStore(engine).list() == []
    finally:
        await sup.aclose()


async def test_enabled_servers_start_with_clara_from_the_table(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    store = McpServerStore(engine)
    import sys

    for name, enabled in (("on", True), ("off", False)):
        await store.save(
            name,
            source="local",
            package=str(LOCAL_SERVER),
            transport="stdio",
            command=sys.executable,
            args=[str(LOCAL_SERVER)],
            enabled=enabled,
        )
    reg = ToolRegistry()
    sup = await start_mcp(reg, engine, _settings(tmp_path))
    try:
        assert sup.runners["on"].state is ServerState.RUNNING
        assert sup.runners["off"].state is ServerState.STOPPED
        assert reg.get("on__echo") is not None and reg.get("off__echo") is None
    finally:
        await sup.aclose()


async def test_failed_start_is_recorded_and_forget_clears_installer(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    import sys

    store = McpServerStore(engine)
    await store.save(
        "broken",
        source="local",
        package="x",
        transport="stdio",
        command=sys.executable,
        args=["-c", "raise SystemExit(2)"],
        installed_by="42",
    )
    reg = ToolRegistry()
    sup = await start_mcp(reg, engine, _settings(tmp_path))
    try:
        row = await store.get("broken")
        assert row is not None and row["last_error"]
    finally:
        await sup.aclose()
    assert await store.delete_user_data("42") == 1
    assert (await store.get("broken"))["installed_by"] is None  # type: ignore[index]
