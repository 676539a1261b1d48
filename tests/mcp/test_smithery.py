"""mcp_install source=smithery against the loopback fake Smithery (tests/fakes/fake_smithery),
whose gateway forwards to a real MCP server (tests/mcp/servers/local_server.py over
streamable HTTP), with the real mcp_servers table."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clara_core.config import Settings
from clara_core.mcp import start_mcp
from clara_core.mcp.secrets import PREFIX
from storage.mcp_servers import McpServerStore
from tests.fakes.fake_smithery import FakeSmithery
from tests.mcp.conftest import LOCAL_SERVER, call
from tests.support.ports import free_port
from tools.registry import ToolContext, ToolRegistry

pytestmark = pytest.mark.storage

ADMIN = ToolContext("42", is_admin=True)
KEY = "smithery-test-key-1234"
CONFIG_SECRET = "weather-secret-9876"


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    """The real MCP server the fake gateway forwards to (SDK, streamable HTTP, loopback)."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(LOCAL_SERVER),
        "--http",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the upstream MCP server did not listen")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        await proc.wait()


@pytest.fixture
async def smithery(upstream: str) -> AsyncIterator[FakeSmithery]:
    async with FakeSmithery(api_key=KEY) as fake:
        fake.add_server("clara/weather", upstream, {"type": "object"})
        fake.add_server("clara/local-only", None)
        yield fake


def _settings(tmp_path: Path, smithery: FakeSmithery, key: str | None = KEY) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        clara_data_dir=tmp_path / "data",
        mcp_servers_dir=tmp_path / "servers",
        mcp_connect_timeout=20,
        smithery_api_url=smithery.base_url,
        smithery_api_key=key,
    )


async def test_install_from_smithery_and_call_through_its_gateway(
    engine: AsyncEngine, tmp_path: Path, smithery: FakeSmithery
) -> None:
    reg = ToolRegistry()
    sup = await start_mcp(reg, engine, _settings(tmp_path, smithery))
    try:
        out = await call(
            reg,
            "mcp_install",
            ADMIN,
            source="smithery",
            package="@clara/weather?units=metric",
            env={"weatherApiKey": CONFIG_SECRET},
        )
        assert "MCP server 'weather' installed and running" in out.content, out.content
        assert smithery.lookups == ["clara/weather"]
        echo = await call(reg, "weather__echo", ADMIN, text="via smithery")
        assert (echo.content, echo.is_error) == ("echo: via smithery", False)

        # Every gateway request carried the Smithery key, the server's config header
        # and the package's query parameter.
        assert smithery.proxied and all(
            p.headers.get("Authorization") == f"Bearer {KEY}"
            and p.headers.get("weatherApiKey") == CONFIG_SECRET
            and p.query == {"units": "metric"}
            for p in smithery.proxied
        )
        row = await McpServerStore(engine).get("weather")
        assert row is not None and (row["transport"], row["source"]) == ("http", "smithery")
        assert row["url"] == f"{smithery.base_url}/clara/weather/mcp?units=metric"
        # The config secret is stored encrypted; Smithery's key is not stored at all.
        assert row["headers"]["weatherApiKey"].startswith(PREFIX)
        assert CONFIG_SECRET not in str(row) and KEY not in str(row)
        assert set(row["headers"]) == {"weatherApiKey"}
        listing = (await call(reg, "mcp_list", ADMIN)).content
        assert "weather (smithery: @clara/weather?units=metric)" in listing
        assert CONFIG_SECRET not in listing and KEY not in listing
    finally:
        await sup.aclose()

    # Next start without SMITHERY_API_KEY: the server says what is missing, not "HTTP 401".
    reg = ToolRegistry()
    sup = await start_mcp(reg, engine, _settings(tmp_path, smithery, key=None))
    try:
        status = (await call(reg, "mcp_status", ADMIN, name="weather")).content
        assert "SMITHERY_API_KEY is not set" in status, status
    finally:
        await sup.aclose()


async def test_smithery_failures_are_explained(
    engine: AsyncEngine, tmp_path: Path, smithery: FakeSmithery
) -> None:
    async def install(settings: Settings, package: str) -> str:
        reg = ToolRegistry()
        sup = await start_mcp(reg, engine, settings)
        try:
            res = await call(reg, "mcp_install", ADMIN, source="smithery", package=package)
            assert res.is_error and "Traceback" not in res.content
            assert sup.runners == {}
            return res.content
        finally:
            await sup.aclose()

    good = _settings(tmp_path, smithery)
    assert "needs SMITHERY_API_KEY" in await install(
        _settings(tmp_path, smithery, key=None), "clara/weather"
    )
    assert "Smithery refused SMITHERY_API_KEY" in await install(
        _settings(tmp_path, smithery, key="wrong-key"), "clara/weather"
    )
    assert "Smithery has no server named 'clara/nothing'" in await install(good, "clara/nothing")
    assert "is not hosted on Smithery" in await install(good, "clara/local-only")
