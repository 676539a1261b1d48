"""``docker-compose --profile … up``, taken literally, with a real Compose v2.

The repository's docker-compose.yml, run by Compose itself against the local
dockerd: its profiles, services, healthchecks, depends_on, environment and
volumes as an operator gets them.  What differs (no registry is reachable
here): the images are named through CLARA_IMAGE / CLARA_POSTGRES_IMAGE /
CLARA_REDIS_IMAGE in the project's ``.env`` (Clara's image built from the
Dockerfile, and the stand-ins of ``tests/support/standin_images``), and the
stack joins a network the test made so that the fake Discord and fake LLM can
listen on its gateway (``tests/support/compose.py``).

- ``--profile scale``: two shard processes, a worker, PostgreSQL and Redis.
  Each shard IDENTIFYs as its own ``[id, 2]`` and answers exactly the mentions
  in its guilds; the shards turn healthy through the image's HEALTHCHECK; a
  consolidation the shards queue runs on the worker (the shards never run it
  themselves with CORTEX_WORKER_QUEUE on); ``stop`` ends every process with 0.
- ``--profile discord`` (the embedded default) and ``--profile discord
  --profile postgres`` (the stack's PostgreSQL and Redis): the bot answers, and
  uses the servers the profile says it uses.
- ``--profile discord --profile sandbox``: the bot finds the stack's sandbox
  service, and code a model asks to run runs there, in a sibling container on
  the host's dockerd that the service removes when it stops.

Skipped with the reason when no dockerd, base image or Compose v2.24+ is here
(``bash .ci/sandbox-setup.sh``, ``bash .ci/compose-setup.sh``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from clara_core.cortex.consolidation.records import JOB_CONSOLIDATION
from storage.db import create_engine
from tests.fakes.fake_discord import FakeDiscord, FakeUser
from tests.fakes.fake_llm import FakeLLM, RecordedRequest, Reply, ToolCall
from tests.sandbox.conftest import TEST_IMAGE
from tests.support.clara_process import fakes_env
from tests.support.compose import ComposeProject, compose_or_skip, make_network, standin_images
from tests.support.cortex import remember_one
from tests.support.docker_images import (
    clara_test_image,
    docker_client_or_skip,
    sandbox_service_test_image,
)

# A cold build of Clara's image takes ~2.5 min here (shared with test_docker_image).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

TAG = re.compile(r"tag-[0-9a-z]+")
UP_TIMEOUT = 300  # image HEALTHCHECK: first probe 30 s in; cold starts on 2 cores
CONSOLIDATION_S = 5.0
SHARDS = 2


def answer(request: RecordedRequest) -> Reply:
    """Pattern extraction (the worker's consolidation) gets an empty report; a chat
    turn gets the tag of its last user message back."""
    if "report_patterns" in json.dumps(request.body):
        return Reply(json.dumps({"patterns": []}))
    users = [m for m in request.body.get("messages", []) if m.get("role") == "user"]
    found = TAG.findall(json.dumps(users[-1] if users else {}))
    return Reply(f"noted {found[-1] if found else 'nothing'}")


@pytest.fixture(scope="module")
def compose_exe() -> str:
    return compose_or_skip()


@pytest.fixture(scope="module")
def client(compose_exe: str) -> Any:
    return docker_client_or_skip(TEST_IMAGE)


@pytest.fixture(scope="module")
def images(client: Any) -> dict[str, str]:
    clara = clara_test_image(client, TEST_IMAGE)
    return {"CLARA_IMAGE": clara, **standin_images(client, clara, TEST_IMAGE)}


@pytest.fixture
def network(client: Any) -> Any:
    """(name, gateway) of the stack's network; removed after the test."""
    net, gateway = make_network(client, f"clara-compose-test-{uuid.uuid4().hex[:8]}")
    yield net.name, gateway
    with contextlib.suppress(Exception):
        net.remove()


async def container_ip(client: Any, container_id: str) -> str:
    box = await asyncio.to_thread(client.containers.get, container_id)
    [settings] = box.attrs["NetworkSettings"]["Networks"].values()
    return settings["IPAddress"]


async def answered_once(fake: FakeDiscord, expected: dict[int, list[str]]) -> None:
    def replies(channel: int) -> list[str]:
        return [m.content for m in fake.bot_messages(channel)]

    await fake.wait_until(
        lambda: all(replies(c) == want for c, want in expected.items()),
        timeout=90,
        what="the whole answer to every mention",
    )
    await asyncio.sleep(1.5)  # time for a wrong second answer (or edit) to show up
    await fake.flush()
    assert {c: replies(c) for c in expected} == expected


def stack_env(fake: FakeDiscord, llm: FakeLLM, images: dict[str, str]) -> dict[str, str]:
    """The project's .env, as an operator writes it (the images aside)."""
    return {**images, **fakes_env(fake, llm)}


async def test_compose_profile_scale_up_runs_two_shards_and_a_worker(
    tmp_path, client, compose_exe, images, network
):
    network_name, gateway = network
    async with (
        FakeDiscord(
            host=gateway,
            heartbeat_interval_ms=1000,
            shard_count=SHARDS,
            identify_max_concurrency=SHARDS,
        ) as fake,
        FakeLLM(host=gateway, api_keys={"k"}, default=answer) as llm,
    ):
        alice = fake.add_user("alice", global_name="Alice")
        guilds = {
            shard: [
                fake.add_guild(
                    f"S{shard}-{i}",
                    guild_id=fake.guild_id_for_shard(shard, SHARDS),
                    members=[alice.id],
                )
                for i in range(2)
            ]
            for shard in range(SHARDS)
        }
        env = stack_env(fake, llm, images)
        env["CORTEX_CONSOLIDATION_INTERVAL_HOURS"] = str(CONSOLIDATION_S / 3600)
        env["CORTEX_PATTERN_MIN_MEMORIES"] = "1"
        project = ComposeProject(
            compose_exe,
            tmp_path / "stack",
            f"clara-scale-{uuid.uuid4().hex[:6]}",
            network_name,
            env,
        )
        profiles = ["scale"]
        try:
            # What an operator types, with -d/--wait so the test goes on once every
            # service is up (healthy where it has a healthcheck).
            await project.up(profiles, wait_s=UP_TIMEOUT)
            ps = await project.ps(profiles)
            assert set(ps) == {
                "clara-shard-0",
                "clara-shard-1",
                "clara-worker",
                "postgres",
                "redis",
            }
            for service, row in ps.items():
                assert row["State"] == "running", (service, row)
            # Each through its own check: the shards' monitors (the image's HEALTHCHECK),
            # the worker's beacon, pg_isready, redis-cli ping.
            for service, row in ps.items():
                assert row["Health"] == "healthy", (service, row)

            # Each shard IDENTIFYed as its own [id, 2], once.
            assert fake.identify_count == SHARDS
            assert [len(fake.sessions_on_shard(s)) for s in range(SHARDS)] == [1, 1]

            # Every mention answered once, by the shard that owns its guild.
            expected = await mention(fake, alice, guilds[0] + guilds[1], "r1")
            await answered_once(fake, expected)

            # A user with a memory in the stack's PostgreSQL: the shards' sweep queues
            # their consolidation and the worker runs it (a pattern call, a log row).
            pg_ip = await container_ip(client, ps["postgres"]["ID"])
            engine = create_engine(f"postgresql://clara:clara@{pg_ip}:5432/clara")
            try:
                await remember_one(engine, "ida")
                await fake.wait_until(
                    lambda: any("report_patterns" in json.dumps(r.body) for r in llm.requests),
                    timeout=20 * CONSOLIDATION_S,
                    what="the worker's consolidation call",
                )

                async def logged() -> list[str]:
                    async with engine.connect() as conn:
                        rows = await conn.execute(
                            text(
                                "SELECT user_id FROM consolidation_logs "
                                "WHERE job = :job AND user_id = 'ida'"
                            ),
                            {"job": JOB_CONSOLIDATION},
                        )
                        return [r.user_id for r in rows]

                for _ in range(100):
                    if await logged():
                        break
                    await asyncio.sleep(0.2)
                assert await logged(), "no consolidation log row for ida"
            finally:
                await engine.dispose()
            shard_logs = await project.logs(profiles, "clara-shard-0", "clara-shard-1")
            assert "users queued for the workers" in shard_logs, shard_logs[-4000:]
            worker_log = await project.logs(profiles, "clara-worker")
            assert "worker ready" in worker_log, worker_log[-4000:]

            # `stop`: SIGTERM, and every Clara process ends cleanly.
            await project.stop_cleanly(profiles, ["clara-shard-0", "clara-shard-1", "clara-worker"])
            fake.assert_clean()
        finally:
            await project.down(profiles)


async def mention(
    fake: FakeDiscord, alice: FakeUser, guilds: list[Any], round_tag: str
) -> dict[int, list[str]]:
    expected: dict[int, list[str]] = {}
    for n, guild in enumerate(guilds):
        channel = guild.text_channels[0].id
        tag = f"tag-{round_tag}g{n}"
        await fake.send_message(channel, alice.id, f"<@{fake.bot.id}> please note {tag}")
        expected[channel] = [f"noted {tag}"]
    return expected


@pytest.mark.parametrize(
    "profiles",
    [["discord"], ["discord", "postgres"]],
    ids=["embedded-default", "with-postgres-profile"],
)
async def test_compose_profile_discord_up_answers(
    tmp_path, client, compose_exe, images, network, profiles
):
    """``docker-compose --profile discord up``: the bot on its embedded servers;
    with ``--profile postgres`` too, on the stack's PostgreSQL and Redis."""
    network_name, gateway = network
    async with (
        FakeDiscord(host=gateway, heartbeat_interval_ms=1000) as fake,
        FakeLLM(host=gateway, api_keys={"k"}, default=answer) as llm,
    ):
        alice = fake.add_user("alice", global_name="Alice")
        guild = fake.add_guild("Home", members=[alice.id])
        project = ComposeProject(
            compose_exe,
            tmp_path / "stack",
            f"clara-{profiles[-1]}-{uuid.uuid4().hex[:6]}",
            network_name,
            stack_env(fake, llm, images),
        )
        try:
            await project.up(profiles, wait_s=UP_TIMEOUT)
            ps = await project.ps(profiles)
            want = {"clara"} | ({"postgres", "redis"} if "postgres" in profiles else set())
            assert set(ps) == want
            for service, row in ps.items():
                assert (row["State"], row["Health"]) == ("running", "healthy"), (service, row)

            expected = await mention(fake, alice, [guild], "d1")
            await answered_once(fake, expected)

            log = await project.logs(profiles, "clara")
            if "postgres" in profiles:
                # The stack's servers, not embedded ones; the conversation is in
                # the stack's PostgreSQL.
                assert "embedded" not in log.lower(), log[-4000:]
                pg_ip = await container_ip(client, ps["postgres"]["ID"])
                engine = create_engine(f"postgresql://clara:clara@{pg_ip}:5432/clara")
                try:
                    async with engine.connect() as conn:
                        tables = set(
                            await conn.scalars(
                                text("SELECT tablename FROM pg_tables WHERE schemaname='public'")
                            )
                        )
                finally:
                    await engine.dispose()
                assert "alembic_version" in tables and "consolidation_logs" in tables, tables
            else:
                assert "embedded Redis ready" in log, log[-4000:]
                assert "initialising embedded PostgreSQL cluster" in log, log[-4000:]

            await project.stop_cleanly(profiles, ["clara"])
            fake.assert_clean()
        finally:
            await project.down(profiles)


SANDBOX_KEY = "compose-test-sandbox-key-0123456789"


def run_code(request: RecordedRequest) -> Reply:
    """A chat turn asks to run Python; the turn after the tool's result quotes it."""
    messages = request.body.get("messages", [])
    if messages and messages[-1].get("role") == "tool":
        return Reply(f"the sandbox said: {messages[-1].get('content')}")
    return Reply(
        tool_calls=[ToolCall("execute_python", {"code": "import os; print(6 * 7, os.getuid())"})]
    )


async def test_compose_profile_sandbox_runs_the_bots_code_in_a_sibling_container(
    tmp_path, client, compose_exe, images, network
):
    """``docker-compose --profile discord --profile sandbox up``."""
    from sandbox.docker import LABEL

    network_name, gateway = network
    profiles = ["discord", "sandbox"]
    service_image = sandbox_service_test_image(client, TEST_IMAGE)
    # The workspaces' path, the same on the host and in the service (compose's
    # SANDBOX_HOST_DIR); under /tmp, not pytest's 0700 tmp_path.
    host_dir = Path(tempfile.mkdtemp(prefix="clara-compose-sbx-", dir="/tmp"))
    host_dir.chmod(0o711)
    async with (
        FakeDiscord(host=gateway, heartbeat_interval_ms=1000) as fake,
        FakeLLM(host=gateway, api_keys={"k"}, default=run_code) as llm,
    ):
        alice = fake.add_user("alice", global_name="Alice")
        guild = fake.add_guild("Home", members=[alice.id])
        channel = guild.text_channels[0].id
        env = stack_env(fake, llm, images)
        env |= {
            "CLARA_SANDBOX_SERVICE_IMAGE": service_image,
            "SANDBOX_API_KEY": SANDBOX_KEY,
            "DOCKER_SANDBOX_IMAGE": TEST_IMAGE,
            "SANDBOX_HOST_DIR": str(host_dir),
        }
        project = ComposeProject(
            compose_exe,
            tmp_path / "stack",
            f"clara-sandbox-{uuid.uuid4().hex[:6]}",
            network_name,
            env,
        )
        try:
            await project.up(profiles, wait_s=UP_TIMEOUT)
            ps = await project.ps(profiles)
            assert set(ps) == {"clara", "sandbox"}
            for service, row in ps.items():
                assert (row["State"], row["Health"]) == ("running", "healthy"), (service, row)
            log = await project.logs(profiles, "clara")
            assert "remote http://sandbox:8765" in log, log[-4000:]

            before = {
                b.id
                for b in await asyncio.to_thread(
                    client.containers.list, all=True, filters={"label": LABEL}
                )
            }
            await fake.send_message(channel, alice.id, f"<@{fake.bot.id}> what is 6*7? run it")
            await fake.wait_until(
                lambda: any("the sandbox said" in m.content for m in fake.bot_messages(channel)),
                timeout=120,
                what="the answer with the sandbox's output",
            )
            [reply] = [m.content for m in fake.bot_messages(channel) if "sandbox said" in m.content]
            # The program's output, from a sandbox that is not root.
            found = re.search(r"42 (\d+)", reply)
            assert found and found.group(1) != "0", reply
            # The code ran in a sibling container the service started on the host's dockerd.
            boxes = await asyncio.to_thread(
                client.containers.list, all=True, filters={"label": LABEL}
            )
            ours = [b for b in boxes if b.id not in before]
            assert len(ours) == 1 and TEST_IMAGE in ours[0].image.tags, [b.name for b in boxes]

            await project.stop_cleanly(profiles, ["clara", "sandbox"])
            # Stopping the service removed its sandboxes.
            left = await asyncio.to_thread(
                client.containers.list, all=True, filters={"label": LABEL}
            )
            assert not {b.id for b in left} & {b.id for b in ours}, [b.name for b in left]
            fake.assert_clean()
        finally:
            await project.down(profiles)
            shutil.rmtree(host_dir, ignore_errors=True)
