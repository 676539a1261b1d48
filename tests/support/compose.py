"""The real ``docker-compose`` (Compose v2) on the repository's docker-compose.yml.

No registry is reachable here, so a test names local images through the
variables the compose file reads (CLARA_IMAGE, CLARA_POSTGRES_IMAGE,
CLARA_REDIS_IMAGE: Clara's test build and the stand-ins of
``tests/support/standin_images``) and runs ``up`` with ``--no-build --pull
never``.  Everything else is the file as an operator runs it: its profiles,
services, environment, healthchecks, depends_on and volumes.

The one addition is the network: the stack joins a network the test made, so
its gateway address exists on the host before the stack starts and the
loopback fakes can listen on it (the containers reach the host there; dockerd
runs without NAT here, so published ports would not help).

Every Compose command runs as an asyncio subprocess: the fakes the stack talks
to are served from the same event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.docker_images import REPO, build_test_image

COMPOSE_FILE = REPO / "docker-compose.yml"
STANDINS = REPO / "tests" / "support" / "standin_images"
MIN_VERSION = (2, 24)


def compose_or_skip() -> str:
    """The ``docker-compose`` on PATH when it is Compose v2.24+, else the test skips
    with the reason (``bash .ci/compose-setup.sh`` installs one)."""
    exe = shutil.which("docker-compose")
    why = "no docker-compose on PATH"
    if exe:
        out = subprocess.run(
            [exe, "version", "--short"], capture_output=True, text=True, timeout=30
        )
        version = out.stdout.strip().removeprefix("v")
        try:
            parts = tuple(int(p) for p in version.split(".")[:2])
        except ValueError:
            parts = (0, 0)
        if out.returncode == 0 and parts >= MIN_VERSION:
            return exe
        why = f"{exe} is {version or out.stderr.strip()!r}, not Compose v2.24+"
    pytest.skip(f"{why} (bash .ci/compose-setup.sh)")


def standin_images(client: Any, clara_image: str, debian_image: str) -> dict[str, str]:
    """CLARA_POSTGRES_IMAGE and CLARA_REDIS_IMAGE: the stand-ins, built if needed."""
    images = {}
    for name, var, base in (
        ("postgres", "CLARA_POSTGRES_IMAGE", clara_image),
        ("redis", "CLARA_REDIS_IMAGE", debian_image),
    ):
        folder = STANDINS / name
        images[var] = build_test_image(
            client,
            dockerfile=str((folder / "Dockerfile").relative_to(REPO)),
            repository=f"clara-standin-{name}",
            inputs=[str((folder / "entrypoint.sh").relative_to(REPO))],
            base_image=base,
            context=folder,
        )
    return images


def make_network(client: Any, name: str) -> tuple[Any, str]:
    """A bridge network on a free /24 and its gateway (the host's address on it)."""
    from docker.errors import APIError
    from docker.types import IPAMConfig, IPAMPool

    used = set()
    for net in client.networks.list():
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            with contextlib.suppress(KeyError, ValueError):
                used.add(ipaddress.ip_network(cfg["Subnet"]))
    for third in range(200, 255):
        subnet = ipaddress.ip_network(f"172.31.{third}.0/24")
        if any(subnet.overlaps(u) for u in used):
            continue
        gateway = str(subnet.network_address + 1)
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=gateway)])
        try:
            network = client.networks.create(
                name, driver="bridge", ipam=ipam, labels={"clara.test": "compose"}
            )
        except APIError:
            continue  # taken meanwhile (another dockerd user)
        return network, gateway
    pytest.fail("no free 172.31.x.0/24 for the compose test's network")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class ComposeProject:
    """One Compose project: the repository's file, a project directory holding the
    ``.env`` an operator would write, and the test's network."""

    def __init__(
        self, exe: str, directory: Path, name: str, network: str, env: dict[str, str]
    ) -> None:
        self.exe = exe
        self.directory = directory
        self.name = name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        self.override = directory / "network.yml"
        self.override.write_text(
            json.dumps({"networks": {"default": {"name": network, "external": True}}})
        )

    def command(self, profiles: Iterable[str], *args: str) -> list[str]:
        cmd = [self.exe, "-f", str(COMPOSE_FILE), "-f", str(self.override)]
        cmd += ["--project-directory", str(self.directory), "-p", self.name]
        for profile in profiles:
            cmd += ["--profile", profile]
        return [*cmd, *args]

    async def run(
        self, profiles: Iterable[str], *args: str, timeout: float = 300, check: bool = True
    ) -> Result:
        proc = await asyncio.create_subprocess_exec(
            *self.command(profiles, *args),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(
                f"docker-compose {' '.join(args)}: no end in {timeout} s"
            ) from None
        result = Result(
            proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
        )
        if check and result.returncode != 0:
            logs = await self.logs(profiles)
            raise AssertionError(
                f"docker-compose {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stderr[-3000:]}\n--- logs ---\n{logs[-6000:]}"
            )
        return result

    async def up(self, profiles: Iterable[str], *, wait_s: float) -> None:
        """``up``, as an operator types it, with -d/--wait so the test goes on once
        every service is up (healthy where it has a healthcheck); the images are the
        ones the .env names, never built or pulled."""
        await self.run(
            profiles,
            "up",
            "-d",
            "--wait",
            "--wait-timeout",
            str(int(wait_s)),
            "--no-build",
            "--pull",
            "never",
            timeout=wait_s + 60,
        )

    async def stop_cleanly(self, profiles: Iterable[str], services: Iterable[str]) -> None:
        """``stop`` (SIGTERM, compose's grace period): each of ``services`` exited 0,
        and no traceback anywhere in the stack's logs."""
        profiles = list(profiles)
        await self.run(profiles, "stop", "--timeout", "60", timeout=180)
        ps = await self.ps(profiles)
        for service in services:
            assert (ps[service]["State"], ps[service]["ExitCode"]) == ("exited", 0), (
                service,
                ps[service],
            )
        logs = await self.logs(profiles)
        assert "Traceback" not in logs, logs[-6000:]

    async def ps(self, profiles: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``docker-compose ps --all --format json``: service -> its container's row."""
        out = (await self.run(profiles, "ps", "--all", "--format", "json")).stdout
        rows = []
        for line in out.splitlines():
            line = line.strip()
            if not line:
                continue
            parsed = json.loads(line)
            rows.extend(parsed if isinstance(parsed, list) else [parsed])
        return {row["Service"]: row for row in rows}

    async def logs(self, profiles: Iterable[str], *services: str) -> str:
        result = await self.run(
            profiles, "logs", "--no-color", "--no-log-prefix", *services, check=False
        )
        return result.stdout + result.stderr

    async def down(self, profiles: Iterable[str]) -> None:
        await self.run(
            profiles, "down", "--volumes", "--remove-orphans", "--timeout", "60", check=False
        )
