"""Installs from real registries (npm, PyPI), git, local paths — then run and call them.

These need the network to registry.npmjs.org and PyPI (it works here and in CI).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clara_core.mcp import ServerConfig
from clara_core.mcp.installer import Installer, InstallError, derive_name
from tests.mcp.conftest import LOCAL_SERVER, MakeSupervisor, call

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("source", "package", "name"),
    [
        ("npm", "@modelcontextprotocol/server-everything", "everything"),
        ("npm", "@modelcontextprotocol/server-everything@2026.8.31", "everything"),
        ("pypi", "mcp-server-time", "time"),
        ("pypi", "mcp-server-fetch==2025.1", "fetch"),
        ("github", "https://github.com/someone/weather-mcp.git", "weather"),
        ("docker", "ghcr.io/user/mcp-server-thing:latest", "thing"),
        ("local", "/srv/My Tools/notes_server.py", "notes_server"),
    ],
)
def test_derive_name(source: str, package: str, name: str) -> None:
    assert derive_name(source, package) == name


@pytest.fixture(scope="session")
async def everything(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerConfig]:
    """server-everything installed once per session, the way mcp_install does it."""
    installer = Installer(tmp_path_factory.mktemp("npm-servers"), timeout=180)
    yield await installer.install("npm", "@modelcontextprotocol/server-everything")


async def test_npm_install_server_everything_over_stdio(
    everything: ServerConfig, make_supervisor: MakeSupervisor
) -> None:
    assert everything.name == "everything" and everything.command == "node"
    entry = Path(everything.args[0])
    assert entry.is_file() and "node_modules/@modelcontextprotocol/server-everything" in str(entry)
    sup = await make_supervisor([everything])
    echo = await call(sup.registry, "everything__echo", message="Hello World")
    assert (echo.content, echo.is_error) == ("Echo: Hello World", False)
    img = await call(sup.registry, "everything__get-tiny-image")
    assert "[image: image/png," in img.content


async def test_streamable_http_server_everything_on_loopback_only(
    everything: ServerConfig,
) -> None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip for a private network namespace")
    probe = Path(__file__).parent / "servers" / "http_probe.py"
    proc = await asyncio.create_subprocess_exec(
        "unshare",
        "-rn",
        sys.executable,
        str(probe),
        everything.args[0],
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-2000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert (result["echo"], result["echo_error"]) == ("Echo: over http", False)
    assert "[image: image/png," in result["image"]
    assert result["status"][0]["state"] == "running"
    assert result["after_close"][0]["state"] == "stopped"


async def test_pypi_install_mcp_server_time_in_its_own_venv(
    tmp_path: Path, make_supervisor: MakeSupervisor
) -> None:
    installer = Installer(tmp_path / "servers", timeout=180)
    cfg = await installer.install("pypi", "mcp-server-time")
    assert cfg.name == "time"
    assert cfg.command == str(tmp_path / "servers" / "time" / "venv" / "bin" / "mcp-server-time")
    sup = await make_supervisor([cfg])
    res = await call(sup.registry, "time__get_current_time", timezone="UTC")
    assert not res.is_error, res.content
    assert json.loads(res.content)["timezone"] == "UTC"
    # Its own venv: Clara's interpreter never got the package.
    assert not list(Path(sys.prefix).glob("lib/python*/site-packages/mcp_server_time"))


async def test_local_file_server(tmp_path: Path, make_supervisor: MakeSupervisor) -> None:
    cfg = await Installer(tmp_path / "servers").install("local", str(LOCAL_SERVER), "mine")
    assert cfg.command == sys.executable
    sup = await make_supervisor([cfg])
    assert (await call(sup.registry, "mine__echo", text="a")).content == "echo: a"


def _git_repo_with_python_server(root: Path) -> Path:
    repo = root / "gitserver"
    (repo / "gitserver").mkdir(parents=True)
    (repo / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "clara-test-gitserver"
            version = "0.1"
            dependencies = ["mcp==2.3.0"]
            [project.scripts]
            clara-test-gitserver = "gitserver:main"
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"
            """
        )
    )
    (repo / "gitserver" / "__init__.py").write_text(
        textwrap.dedent(
            """
            from mcp.server.mcpserver import MCPServer

            server = MCPServer("gitserver")

            @server.tool()
            def shout(text: str) -> str:
                return text.upper()

            def main() -> None:
                server.run("stdio")
            """
        )
    )
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "."],
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "server"],
    ):
        subprocess.run(cmd, cwd=repo, check=True)
    return repo


async def test_git_repo_served_from_a_local_path(
    tmp_path: Path, make_supervisor: MakeSupervisor
) -> None:
    repo = await asyncio.to_thread(_git_repo_with_python_server, tmp_path)
    installer = Installer(tmp_path / "servers", timeout=240)
    cfg = await installer.install("github", f"file://{repo}", "gitserver")
    assert cfg.command == str(
        tmp_path / "servers" / "gitserver" / "venv" / "bin" / "clara-test-gitserver"
    )
    sup = await make_supervisor([cfg])
    assert (await call(sup.registry, "gitserver__shout", text="hi")).content == "HI"


async def test_install_timeout_stops_the_step_and_cleans_up(tmp_path: Path) -> None:
    project = tmp_path / "slowbuild"
    project.mkdir()
    (project / "package.json").write_text(
        json.dumps(
            {
                "name": "slowbuild",
                "version": "1.0.0",
                "bin": "index.js",
                "scripts": {"build": "sleep 60"},
            }
        )
    )
    installer = Installer(tmp_path / "servers", timeout=4)
    with pytest.raises(InstallError, match="did not finish in time"):
        await installer.install("local", str(project))
    assert not (tmp_path / "servers" / "slowbuild").exists()


async def test_unknown_source_and_missing_path_are_explained(tmp_path: Path) -> None:
    installer = Installer(tmp_path / "servers")
    with pytest.raises(InstallError, match="no file or directory"):
        await installer.install("local", str(tmp_path / "nope.py"))
    with pytest.raises(Exception, match="source must be one of"):
        await installer.install("brew", "thing")
