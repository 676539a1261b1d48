"""How an MCP server from a Docker image runs: ``docker run -i`` with Clara's policy.

The policy, fixed into the stored command at install time (reinstall to change it):
- ``--rm``, and a label naming the server, so Clara can find and remove what is left
  when the ``docker`` client dies without its container (a SIGKILLed client leaves the
  container running);
- no host environment: ``docker run`` passes nothing of its own environment unless
  told, and only the variables the server's configuration names go in, as bare
  ``-e NAME`` (the value travels in the client's environment, not on a command line
  ``ps`` shows);
- limits: memory (MCP_DOCKER_MEMORY), CPUs (MCP_DOCKER_CPUS), 256 processes, no
  capabilities, no privilege gain through setuid binaries, ``--init`` so signals
  and zombies are handled whatever the image's entrypoint;
- network (MCP_DOCKER_NETWORK): ``default`` is Docker's default network (most servers
  call an API on the internet), ``none`` cuts it off, any other value names a Docker
  network to join.  Never the host's network unless an operator names ``host``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass

log = logging.getLogger(__name__)

LABEL = "clara.mcp.server"
PIDS_LIMIT = 256


@dataclass(frozen=True)
class DockerPolicy:
    network: str = "default"
    memory: str = "512m"
    cpus: float = 1.0

    def run_args(self, server: str, image: str, env_names: list[str]) -> list[str]:
        """``docker`` arguments (after the command itself) that run ``image`` for ``server``."""
        args = [
            "run",
            "-i",
            "--rm",
            "--init",
            "--label",
            f"{LABEL}={server}",
            "--memory",
            self.memory,
            "--cpus",
            f"{self.cpus:g}",
            "--pids-limit",
            str(PIDS_LIMIT),
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
        ]
        if self.network != "default":
            args += ["--network", self.network]
        for name in env_names:
            args += ["-e", name]
        return [*args, image]


async def _docker(*argv: str, timeout: float = 20.0) -> tuple[int, str]:
    exe = shutil.which("docker")
    if exe is None:
        return 127, "docker is not installed"
    proc = await asyncio.create_subprocess_exec(
        exe,
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return 124, f"docker {argv[0]} did not answer within {timeout:.0f}s"
    return proc.returncode or 0, out.decode("utf-8", "replace").strip()


async def image_present(image: str) -> bool:
    rc, _ = await _docker("image", "inspect", "--format", "{{.Id}}", image)
    return rc == 0


async def remove_containers(server: str) -> int:
    """Force-remove the containers Clara started for ``server``; how many there were."""
    rc, out = await _docker("ps", "-aq", "--filter", f"label={LABEL}={server}")
    ids = out.split() if rc == 0 else []
    if not ids:
        return 0
    rc, out = await _docker("rm", "-f", *ids)
    if rc != 0:
        log.warning("could not remove the containers of MCP server %s: %s", server, out[-300:])
    return len(ids)
