"""Clara's own image (the repository's Dockerfile), built and run for real.

Built FROM the local debootstrap image (no registry is reachable here; PyPI is),
as ``docker build --build-arg BASE_IMAGE=clara-sandbox:bookworm`` does, then run
the way ``docker-compose --profile discord up`` runs it: the image's own user,
command and HEALTHCHECK, nothing but /data mounted, and the embedded PostgreSQL
and Redis inside (no DATABASE_URL / REDIS_URL).  The container uses the host's
network to reach the loopback fake Discord and fake LLM.  It must connect,
answer a mention, report healthy through its HEALTHCHECK, stop cleanly on
SIGTERM, and start again on the same volume.  Skipped with the reason when no
dockerd or base image is here (``bash .ci/sandbox-setup.sh``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any

import pytest

from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_llm import FakeLLM, RecordedRequest, Reply
from tests.sandbox.conftest import TEST_IMAGE
from tests.support.clara_process import fakes_env
from tests.support.docker_images import clara_test_image, docker_client_or_skip
from tests.support.ports import free_port

# A first build takes ~2.5 min here (PyPI); the embedded servers start cold inside.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

TAG = re.compile(r"tag-[0-9a-z]+")
START_TIMEOUT = 240  # embedded PostgreSQL initdb + migrations + the embedder, cold


def echo(request: RecordedRequest) -> Reply:
    users = [m for m in request.body.get("messages", []) if m.get("role") == "user"]
    found = TAG.findall(json.dumps(users[-1] if users else {}))
    return Reply(f"noted {found[-1] if found else 'nothing'}")


@pytest.fixture(scope="module")
def client() -> Any:
    return docker_client_or_skip(TEST_IMAGE)


@pytest.fixture(scope="module")
def image(client: Any) -> str:
    return clara_test_image(client, TEST_IMAGE)


class Container:
    """One ``docker run`` of the image; every SDK call off the event loop (the
    fakes serve from it)."""

    def __init__(self, client: Any, image: str, env: dict[str, str], volume: str) -> None:
        self.client = client
        self.image = image
        self.env = env
        self.volume = volume
        self.container: Any = None

    async def start(self) -> None:
        self.container = await asyncio.to_thread(
            self.client.containers.run,
            self.image,
            detach=True,
            network_mode="host",
            environment=self.env,
            volumes={self.volume: {"bind": "/data", "mode": "rw"}},
            init=True,  # as compose's `init: true`
            # The image's own HEALTHCHECK command (an empty test inherits it),
            # polled every 2 s instead of 30 s so the test need not wait.
            healthcheck={"test": [], "interval": 2_000_000_000, "start_period": 0},
            labels={"clara.test": "docker-image"},
        )

    async def logs(self) -> str:
        raw = await asyncio.to_thread(self.container.logs)
        return raw.decode(errors="replace")

    async def state(self) -> dict[str, Any]:
        await asyncio.to_thread(self.container.reload)
        return self.container.attrs["State"]

    async def wait_for(self, predicate: Any, timeout: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            state = await self.state()
            logs = await self.logs()
            if await predicate(state, logs):
                return
            if not state["Running"]:
                raise AssertionError(f"the container exited ({state['ExitCode']}):\n{logs}")
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{logs[-4000:]}")
            await asyncio.sleep(1)

    async def stop(self) -> int:
        """``docker stop``: SIGTERM, then SIGKILL after compose's stop_grace_period."""
        await asyncio.to_thread(self.container.stop, timeout=45)
        result = await asyncio.to_thread(self.container.wait, timeout=60)
        return int(result["StatusCode"])

    async def remove(self) -> None:
        if self.container is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.container.remove, force=True)


async def test_the_image_runs_clara_on_its_embedded_default(client, image):
    async with (
        FakeDiscord(heartbeat_interval_ms=1000) as fake,
        FakeLLM(api_keys={"k"}, default=echo) as llm,
    ):
        alice = fake.add_user("alice", global_name="Alice")
        guild = fake.add_guild("Home", members=[alice.id])
        channel = guild.text_channels[0].id
        env = {
            **fakes_env(fake, llm),
            # Host network: the monitor (and so the HEALTHCHECK) on a free port.
            "DISCORD_MONITOR_PORT": str(free_port()),
        }
        volume = await asyncio.to_thread(
            client.volumes.create, labels={"clara.test": "docker-image"}
        )
        runs: list[Container] = []
        try:
            for run, tag in enumerate(["tag-first", "tag-again"]):
                box = Container(client, image, env, volume.name)
                runs.append(box)
                await box.start()

                async def connected(state: dict[str, Any], logs: str) -> bool:
                    return "connected to Discord" in logs

                await box.wait_for(connected, START_TIMEOUT, "Clara to connect")
                await fake.send_message(channel, alice.id, f"<@{fake.bot.id}> please note {tag}")
                await fake.wait_until(
                    lambda t=tag: any(
                        m.content == f"noted {t}" for m in fake.bot_messages(channel)
                    ),
                    timeout=60,
                    what=f"the answer to {tag}",
                )

                async def healthy(state: dict[str, Any], logs: str) -> bool:
                    return state.get("Health", {}).get("Status") == "healthy"

                await box.wait_for(healthy, 60, "the HEALTHCHECK to pass")
                # The embedded servers, not a stack's (nothing else was given); the
                # database is made once and found again on the volume.
                logs = await box.logs()
                assert "embedded Redis ready" in logs, logs
                assert ("initialising embedded PostgreSQL cluster" in logs) == (run == 0), logs
                assert await box.stop() == 0
                logs = await box.logs()
                assert "Traceback" not in logs, logs
            # Each answer once, in order: the second run kept the first's data
            # (the same embedded database on the volume) and answered anew.
            assert [m.content for m in fake.bot_messages(channel)] == [
                "noted tag-first",
                "noted tag-again",
            ]
        finally:
            for box in runs:
                await box.remove()
            with contextlib.suppress(Exception):
                await asyncio.to_thread(volume.remove, force=True)
