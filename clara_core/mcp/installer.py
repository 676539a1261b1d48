"""Install MCP servers: npm, PyPI, GitHub (git clone), Docker images, local paths.

Each server gets its own directory ``MCP_SERVERS_DIR/<name>/`` holding its
``node_modules`` or its own ``venv``, so servers never share (or break) each
other's dependencies, nor Clara's.  Every step is a subprocess awaited with
asyncio (never blocking the event loop) under one overall deadline; a step
that overruns is killed with its process group.  The result is a
``ServerConfig`` the caller stores and starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import SOURCES, McpConfigError, ServerConfig, validate_server_name
from .docker import DockerPolicy, image_present
from .smithery import DEFAULT_API_URL, lookup, split_package

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

#: What a subprocess of the installer sees: enough to find tools and caches, none of
#: Clara's secrets (npm/pip/git must not be able to leak DISCORD_BOT_TOKEN to a script).
_PASS_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "USER",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "DOCKER_HOST",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
)
#: The package managers' own settings (index, certificates, find-links) pass whole.
_PASS_PREFIXES = ("PIP_", "UV_", "NPM_CONFIG_", "npm_config_")


class InstallError(McpConfigError):
    """An install failed; the message says which step and what it printed."""


def derive_name(source: str, package: str) -> str:
    """everything from @modelcontextprotocol/server-everything, time from mcp-server-time."""
    base = package.rstrip("/")
    if source == "smithery":
        base = split_package(package)[0]
    if source == "docker":
        base = base.split("@", 1)[0].rsplit(":", 1)[0]
    elif source == "npm" and base.startswith("@"):
        base = base.split("/", 1)[-1]
    if source == "npm":
        base = re.sub(r"@[^/]*$", "", base) or base  # a version suffix
    elif source == "pypi":
        base = re.split(r"[<>=!~\[ ]", base, maxsplit=1)[0]
    base = base.rsplit("/", 1)[-1]
    base = re.sub(r"\.(git|py|js|mjs)$", "", base).lower()
    for affix in ("mcp-server-", "server-", "mcp-", "-mcp-server", "-mcp", "_mcp"):
        if base.startswith(affix) and len(base) > len(affix):
            base = base[len(affix) :]
        elif base.endswith(affix) and len(base) > len(affix):
            base = base[: -len(affix)]
    base = re.sub(r"[^a-z0-9_-]+", "-", base)
    base = re.sub(r"_{2,}", "_", base).strip("-_")[:40].rstrip("-_")
    return validate_server_name(base or "server")


def _child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in _PASS_ENV or k.startswith(_PASS_PREFIXES)}


async def _run(
    argv: list[str], *, cwd: Path | None, deadline: float, step: str, env: dict[str, str]
) -> str:
    left = deadline - time.monotonic()
    if left <= 0:
        raise InstallError(f"the install ran out of time before {step}")
    exe = shutil.which(argv[0], path=env.get("PATH")) if not os.path.isabs(argv[0]) else argv[0]
    if exe is None:
        raise InstallError(f"{step} needs {argv[0]!r}, which is not installed on Clara's host")
    proc = await asyncio.create_subprocess_exec(
        exe,
        *argv[1:],
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # its own process group: a timeout kills npm's children too
    )
    try:
        async with asyncio.timeout(left):
            out, _ = await proc.communicate()
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise InstallError(f"{step} did not finish in time and was stopped") from None
    text = out.decode("utf-8", "replace")
    if proc.returncode != 0:
        tail = text.strip()[-800:]
        raise InstallError(f"{step} failed (exit {proc.returncode}): {tail}")
    return text


def _npm_bin(pkg_dir: Path) -> Path:
    meta = json.loads((pkg_dir / "package.json").read_text(encoding="utf-8"))
    binary = meta.get("bin")
    if isinstance(binary, dict) and binary:
        rel = next(iter(binary.values()))
    elif isinstance(binary, str):
        rel = binary
    elif meta.get("main"):
        rel = meta["main"]
    else:
        raise InstallError(f"{meta.get('name', pkg_dir.name)} declares no executable (bin)")
    return (pkg_dir / rel).resolve()


def _npm_package_dir(root: Path, package: str) -> Path:
    spec = package
    if spec.startswith("@"):
        scope, _, rest = spec.partition("/")
        spec_name = f"{scope}/{rest.split('@', 1)[0]}"
    else:
        spec_name = spec.split("@", 1)[0]
    return root / "node_modules" / spec_name


def _console_script(venv: Path, dist_name: str) -> Path:
    """The console script the package installed (its own name first)."""
    norm = re.sub(r"[-_.]+", "_", dist_name).lower()
    scripts: list[str] = []
    for entry in venv.glob("lib/python*/site-packages/*.dist-info/entry_points.txt"):
        info = entry.parent.name.removesuffix(".dist-info").split("-", 1)[0]
        if re.sub(r"[-_.]+", "_", info).lower() != norm:
            continue
        section = None
        for line in entry.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line.startswith("["):
                section = line.strip("[]")
            elif section == "console_scripts" and "=" in line:
                scripts.append(line.split("=", 1)[0].strip())
    if not scripts:
        raise InstallError(f"{dist_name} installed no command to start it (no console script)")
    want = re.sub(r"[-_.]+", "-", dist_name).lower()
    best = want if want in scripts else scripts[0]
    return venv / "bin" / best


class Installer:
    def __init__(
        self,
        servers_dir: Path,
        *,
        timeout: float = 300.0,
        docker: DockerPolicy | None = None,
        smithery_api_url: str = DEFAULT_API_URL,
        smithery_api_key: str | None = None,
    ) -> None:
        # Absolute: the stored commands must work whatever Clara's working directory.
        self.servers_dir = servers_dir.absolute()
        self.timeout = timeout
        self.docker = docker or DockerPolicy()
        self.smithery_api_url = smithery_api_url
        self.smithery_api_key = smithery_api_key

    async def install(
        self,
        source: str,
        package: str,
        name: str | None = None,
        *,
        progress: Progress | None = None,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> ServerConfig:
        if source not in SOURCES:
            raise McpConfigError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
        package = package.strip()
        if not package:
            raise McpConfigError("say which package, repository, image or path to install")
        name = validate_server_name(name) if name else derive_name(source, package)
        say = progress or (lambda _msg: None)
        deadline = time.monotonic() + self.timeout
        target = self.servers_dir / name
        env = dict(env or {})
        build = {
            "npm": self._npm,
            "pypi": self._pypi,
            "github": self._github,
            "local": self._local,
        }.get(source)
        if await asyncio.to_thread(target.exists):
            raise InstallError(
                f"an MCP server directory named {name!r} already exists: uninstall it first "
                "or pick another name"
            )
        if source == "smithery":
            # Hosted: nothing to download or build, only the endpoint to find.
            say(f"looking up {package} on Smithery")
            url = await lookup(
                package,
                api_url=self.smithery_api_url,
                api_key=self.smithery_api_key,
                timeout=min(30.0, self.timeout),
            )
            return ServerConfig(
                name=name,
                source=source,
                package=package,
                transport="http",
                url=url,
                headers=env,  # its configuration's secrets, per Smithery's docs
            )
        # Built in place: a venv is not relocatable (its scripts name their own path).
        await asyncio.to_thread(target.mkdir, parents=True)
        try:
            if build is None:  # docker: the run command names the server and its env
                command, cmd_args, cwd = await self._docker(
                    package, name, sorted(env), deadline, say
                )
            else:
                command, cmd_args, cwd = await build(package, target, deadline, say)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, target, True)
            raise
        return ServerConfig(
            name=name,
            source=source,
            package=package,
            command=command,
            args=[*cmd_args, *(args or [])],
            cwd=cwd,
            env=env,
        )

    async def uninstall(self, name: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.servers_dir / validate_server_name(name), True)

    # Each builder works in ``target`` and returns (command, args, cwd).

    async def _npm(
        self, package: str, target: Path, deadline: float, say: Progress
    ) -> tuple[str, list[str], str | None]:
        say(f"npm install {package}")
        await _run(
            ["npm", "install", "--no-audit", "--no-fund", "--omit=dev", "--prefix", ".", package],
            cwd=target,
            deadline=deadline,
            step=f"npm install {package}",
            env=_child_env(),
        )
        pkg_dir = _npm_package_dir(target, package) if not Path(package).is_dir() else None
        if pkg_dir is None or not (pkg_dir / "package.json").exists():
            pkg_dir = self._single_dependency(target)
        entry = await asyncio.to_thread(_npm_bin, pkg_dir)
        return "node", [str(entry)], None

    @staticmethod
    def _single_dependency(root: Path) -> Path:
        deps = json.loads((root / "package.json").read_text(encoding="utf-8")).get(
            "dependencies", {}
        )
        if len(deps) != 1:
            raise InstallError("could not tell which npm package is the server")
        return root / "node_modules" / next(iter(deps))

    async def _pypi(
        self, package: str, target: Path, deadline: float, say: Progress
    ) -> tuple[str, list[str], str | None]:
        venv = target / "venv"
        say("creating a virtual environment")
        await _run(
            [sys.executable, "-m", "venv", str(venv)],
            cwd=target,
            deadline=deadline,
            step="python -m venv",
            env=_child_env(),
        )
        say(f"pip install {package}")
        await _run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                package,
            ],
            cwd=target,
            deadline=deadline,
            step=f"pip install {package}",
            env=_child_env(),
        )
        dist = package
        if Path(package).exists():
            dist = await asyncio.to_thread(_project_name, Path(package))
        dist = re.split(r"[<>=!~\[ @]", dist, maxsplit=1)[0]
        script = await asyncio.to_thread(_console_script, venv, dist)
        return str(script), [], None

    async def _github(
        self, package: str, target: Path, deadline: float, say: Progress
    ) -> tuple[str, list[str], str | None]:
        url = package
        if re.match(r"^(github\.com/)?[\w.-]+/[\w.-]+$", url):
            url = "https://github.com/" + url.removeprefix("github.com/")
        elif url.startswith("github.com/"):
            url = "https://" + url
        src = target / "src"
        say(f"git clone {url}")
        await _run(
            ["git", "clone", "--depth", "1", "--", url, str(src)],
            cwd=target,
            deadline=deadline,
            step=f"git clone {url}",
            env={**_child_env(), "GIT_TERMINAL_PROMPT": "0"},
        )
        return await self._build_tree(src, target, deadline, say)

    async def _build_tree(
        self, src: Path, target: Path, deadline: float, say: Progress
    ) -> tuple[str, list[str], str | None]:
        """A source tree: a Python project goes into a venv, a Node one gets npm install."""
        if (src / "pyproject.toml").exists() or (src / "setup.py").exists():
            command, args, _ = await self._pypi(str(src), target, deadline, say)
            return command, args, None
        if (src / "package.json").exists():
            say("npm install (and build, if the project has a build script)")
            env = _child_env()
            await _run(
                ["npm", "install", "--no-audit", "--no-fund"],
                cwd=src,
                deadline=deadline,
                step="npm install",
                env=env,
            )
            meta = json.loads((src / "package.json").read_text(encoding="utf-8"))
            if "build" in meta.get("scripts", {}):
                await _run(
                    ["npm", "run", "build"],
                    cwd=src,
                    deadline=deadline,
                    step="npm run build",
                    env=env,
                )
            entry = await asyncio.to_thread(_npm_bin, src)
            return "node", [str(entry)], None
        raise InstallError(
            "the repository has neither pyproject.toml/setup.py nor package.json at its top"
        )

    async def _docker(
        self, image: str, name: str, env_names: list[str], deadline: float, say: Progress
    ) -> tuple[str, list[str], str | None]:
        # An image already on the host is used as it is (offline hosts, images built
        # locally); pull it yourself to update it.
        if await image_present(image):
            say(f"using the local image {image}")
        else:
            say(f"docker pull {image}")
            await _run(
                ["docker", "pull", image],
                cwd=None,
                deadline=deadline,
                step=f"docker pull {image}",
                env=_child_env(),
            )
        return "docker", self.docker.run_args(name, image, env_names), None

    async def _local(
        self, package: str, target: Path, deadline: float, say: Progress
    ) -> tuple[str, list[str], str | None]:
        path = Path(package).expanduser()
        if not await asyncio.to_thread(path.exists):
            raise InstallError(f"there is no file or directory at {package} on Clara's host")
        path = path.resolve()
        if path.is_file():
            say(f"using {path}")
            if path.suffix == ".py":
                return sys.executable, [str(path)], str(path.parent)
            if path.suffix in (".js", ".mjs", ".cjs"):
                return "node", [str(path)], str(path.parent)
            if os.access(path, os.X_OK):
                return str(path), [], str(path.parent)
            raise InstallError(f"{path} is not a .py or .js file, nor executable")
        # A directory: build a copy, so the server never depends on the original staying put.
        src = target / "src"
        await asyncio.to_thread(
            shutil.copytree, path, src, ignore=shutil.ignore_patterns(".git", "node_modules")
        )
        return await self._build_tree(src, target, deadline, say)


def _project_name(path: Path) -> str:
    import tomllib

    pyproject = path / "pyproject.toml"
    if pyproject.exists():
        data: dict[str, Any] = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        name = data.get("project", {}).get("name")
        if name:
            return str(name)
    return path.name
