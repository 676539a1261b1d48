"""MCP servers' env and header values are encrypted at rest (real PostgreSQL).

The raw ``mcp_servers`` row (``McpServerStore.get`` returns the columns as stored)
must hold ciphertext; the server must still get its value; plain rows from before
encryption are rewritten encrypted; a key rotation (``new,old``) reads and
re-encrypts; a wrong key is a clear error naming the server, never a traceback;
the values never reach the log or the mcp_list/mcp_status answers.
"""

from __future__ import annotations

import logging
import stat
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine

from clara_core.config import Settings
from clara_core.mcp import ServerState, start_mcp
from clara_core.mcp.secrets import KEY_FILE_NAME, PREFIX
from storage.mcp_servers import McpServerStore
from tests.mcp.conftest import LOCAL_SERVER, call
from tools.registry import ToolContext, ToolRegistry

pytestmark = pytest.mark.storage

ADMIN = ToolContext("42", is_admin=True)
SECRET = "sk-live-0123456789abcdef"


def _settings(tmp_path: Path, key: str | None = None) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        clara_data_dir=tmp_path / "data",
        mcp_servers_dir=tmp_path / "servers",
        mcp_connect_timeout=20,
        clara_secret_key=key,
    )


async def _save_local(store: McpServerStore, name: str, env: dict[str, str]) -> None:
    await store.save(
        name,
        source="local",
        package=str(LOCAL_SERVER),
        transport="stdio",
        command=sys.executable,
        args=[str(LOCAL_SERVER)],
        env=env,
    )


async def test_install_stores_ciphertext_and_the_server_gets_the_value(
    engine: AsyncEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reg = ToolRegistry()
    sup = await start_mcp(reg, engine, _settings(tmp_path))
    try:
        out = await call(
            reg,
            "mcp_install",
            ADMIN,
            source="local",
            package=str(LOCAL_SERVER),
            name="local",
            env={"WEATHER_KEY": SECRET},
        )
        assert not out.is_error, out.content
        row = await McpServerStore(engine).get("local")
        assert row is not None and set(row["env"]) == {"WEATHER_KEY"}
        raw = row["env"]["WEATHER_KEY"]
        assert raw.startswith(PREFIX) and SECRET not in raw
        # No CLARA_SECRET_KEY: the key was generated once, readable by Clara's user only.
        key_file = tmp_path / "data" / KEY_FILE_NAME
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert Fernet(key_file.read_bytes().strip()).decrypt(raw[len(PREFIX) :].encode()) == (
            SECRET.encode()
        )
        assert "secret.key" in caplog.text and "CLARA_SECRET_KEY is not set" in caplog.text

        got = await call(reg, "local__env_value", ADMIN, name="WEATHER_KEY")
        assert got.content == SECRET

        answers = [
            out.content,
            (await call(reg, "mcp_list", ADMIN)).content,
            (await call(reg, "mcp_status", ADMIN)).content,
            (await call(reg, "mcp_status", ADMIN, name="local")).content,
            (await call(reg, "mcp_restart", ADMIN, name="local")).content,
        ]
        assert not any(SECRET in a for a in answers), answers
        assert repr(sup.runners["local"].config).count(SECRET) == 0
    finally:
        await sup.aclose()
    # The value appears in no log record (the log channel mirrors these same records).
    assert SECRET not in caplog.text


async def test_plain_rows_are_read_and_rewritten_encrypted(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    store = McpServerStore(engine)
    await _save_local(store, "old", {"WEATHER_KEY": SECRET})  # as stored before encryption
    key = Fernet.generate_key().decode()
    reg = ToolRegistry()
    sup = await start_mcp(reg, engine, _settings(tmp_path, key))
    try:
        assert (await call(reg, "old__env_value", ADMIN, name="WEATHER_KEY")).content == SECRET
        raw = (await store.get("old"))["env"]["WEATHER_KEY"]  # type: ignore[index]
        assert raw.startswith(PREFIX)
        assert Fernet(key).decrypt(raw[len(PREFIX) :].encode()) == SECRET.encode()
    finally:
        await sup.aclose()
    # CLARA_SECRET_KEY was set: no key file.
    assert not (tmp_path / "data" / KEY_FILE_NAME).exists()


async def test_key_rotation_reads_with_the_old_key_and_reencrypts_with_the_new(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    store = McpServerStore(engine)
    await _save_local(store, "rot", {"K": PREFIX + Fernet(old).encrypt(SECRET.encode()).decode()})
    reg = ToolRegistry()
    sup = await start_mcp(reg, engine, _settings(tmp_path, f"{new},{old}"))
    try:
        assert (await call(reg, "rot__env_value", ADMIN, name="K")).content == SECRET
    finally:
        await sup.aclose()
    raw = (await store.get("rot"))["env"]["K"]  # type: ignore[index]
    # Rewritten with the first key: the old one can be dropped now.
    assert Fernet(new).decrypt(raw[len(PREFIX) :].encode()) == SECRET.encode()


async def test_wrong_key_is_a_clear_error_naming_the_server_and_others_still_start(
    engine: AsyncEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    saved_with = Fernet.generate_key().decode()
    store = McpServerStore(engine)
    token = Fernet(saved_with).encrypt(SECRET.encode()).decode()
    await _save_local(store, "locked", {"WEATHER_KEY": PREFIX + token})
    await _save_local(store, "fine", {})
    reg = ToolRegistry()
    sup = await start_mcp(reg, engine, _settings(tmp_path, Fernet.generate_key().decode()))
    try:
        assert sup.runners["fine"].state is ServerState.RUNNING
        locked = sup.runners["locked"]
        assert locked.state is ServerState.BROKEN
        status = (await call(reg, "mcp_status", ADMIN, name="locked")).content
        assert "the stored env of MCP server 'locked' (WEATHER_KEY) cannot be decrypted" in status
        assert "CLARA_SECRET_KEY" in status
        restart = await call(reg, "mcp_restart", ADMIN, name="locked")
        assert "cannot start" in restart.content and "cannot be decrypted" in restart.content
        # The row is left alone (the right key may come back) and can still be uninstalled.
        assert (await store.get("locked"))["env"]["WEATHER_KEY"] == PREFIX + token  # type: ignore[index]
        assert "uninstalled" in (await call(reg, "mcp_uninstall", ADMIN, name="locked")).content
    finally:
        await sup.aclose()
    assert "Traceback" not in caplog.text
    assert any("MCP server 'locked'" in r.getMessage() for r in caplog.records)
