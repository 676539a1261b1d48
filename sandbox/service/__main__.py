"""``python -m sandbox.service [--host 127.0.0.1] [--port 8765]``

Reads Clara's sandbox settings (SANDBOX_API_KEY, SANDBOX_MODE=local|bwrap|auto,
DOCKER_SANDBOX_*, SANDBOX_* limits) from the environment or .env and serves
the sandbox API until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiohttp import web

from clara_core.config.tools import ToolSettings

from ..base import SandboxUnavailable
from ..manager import SandboxManager, select_backend
from .app import create_app

log = logging.getLogger("sandbox.service")


async def serve(host: str, port: int) -> int:
    settings = ToolSettings()
    key = settings.sandbox_api_key.get_secret_value() if settings.sandbox_api_key else ""
    if not key:
        print(
            "SANDBOX_API_KEY is not set: the service refuses to run without one.", file=sys.stderr
        )
        return 2
    if settings.sandbox_mode == "remote":
        print(
            "SANDBOX_MODE=remote makes no sense for the service itself; use local, bwrap or auto.",
            file=sys.stderr,
        )
        return 2
    # The service runs a local backend, whatever URL a shared .env may carry.
    local = settings.model_copy(update={"sandbox_api_url": None})
    try:
        backend, why = await select_backend(local)
    except SandboxUnavailable as exc:
        print(f"no sandbox backend can run here: {exc}", file=sys.stderr)
        return 1
    manager = SandboxManager(
        backend,
        idle_timeout=float(settings.docker_sandbox_timeout),
        max_sandboxes=int(settings.sandbox_max_sandboxes),
        selection=why,
    )
    runner = web.AppRunner(create_app(manager, key), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("sandbox service on http://%s:%d, backend %s", host, port, why)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Stop cleanly: reaping unmounts workspaces and removes containers.
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("stopping: reaping every sandbox")
    finally:
        await runner.cleanup()
        await manager.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
