"""The whole process: `discord_bot.py --daemon` against fake Discord and fake LLM.

Wiring that unit-level harnesses can't see (sessions, monitor, storage) is
checked here, on the real composition root.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal

import aiohttp
import pytest
from sqlalchemy import select

from clara_core.monitor import user_tag
from storage.db import session_factory
from storage.models import Message
from storage.services import Storage
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_llm import FakeLLM, Reply
from tests.support.clara_process import clara_env, pid_alive, run_clara, wait_for

pytestmark = pytest.mark.slow


#: How each wire is configured against the fake LLM (its key is "k").
WIRES = {
    "openai": lambda llm: {
        "LLM_PROVIDER": "openai",
        "CUSTOM_OPENAI_API_KEY": "k",
        "CUSTOM_OPENAI_BASE_URL": llm.openai_base_url,
    },
    # The spec recommends this provider for Claude proxies; memory once never worked on it.
    "anthropic": lambda llm: {
        "LLM_PROVIDER": "anthropic",
        "ANTHROPIC_API_KEY": "k",
        "ANTHROPIC_BASE_URL": llm.anthropic_base_url,
    },
}


def _env(
    tmp_path, discord_fake: FakeDiscord, llm: FakeLLM, wire: str = "openai", **extra: str
) -> dict[str, str]:
    return clara_env(
        tmp_path,
        DISCORD_BOT_TOKEN=discord_fake.token,
        DISCORD_API_BASE=discord_fake.api_base,
        DISCORD_GATEWAY_URL=discord_fake.gateway_url,
        **WIRES[wire](llm),
        **extra,
    )


async def test_daemon_answers_stores_and_reports(tmp_path):
    async with (
        FakeDiscord(heartbeat_interval_ms=1000) as discord_fake,
        FakeLLM(api_keys={"k"}) as llm,
    ):
        alice = discord_fake.add_user("alice", global_name="Alice")
        guild = discord_fake.add_guild("Home", members=[alice.id])
        channel = guild.text_channels[0]
        env = _env(tmp_path, discord_fake, llm, DISCORD_MONITOR_PORT="0")
        log = tmp_path / "data" / "clara.log"
        try:
            started = await asyncio.to_thread(run_clara, "--daemon", env=env, cwd=tmp_path)
            assert started.returncode == 0, started.stderr
            await discord_fake.wait_until(
                lambda: "connected to Discord" in log.read_text(), timeout=30
            )
            # The link to add her to a server (DISCORD_CLIENT_ID unset: READY's application).
            assert (
                "invite link: https://discord.com/oauth2/authorize?client_id="
                f"{discord_fake.application_id}&scope=bot+applications.commands&permissions="
            ) in log.read_text()
            llm.enqueue(Reply("Hello from the real process!"))
            await discord_fake.send_message(
                channel.id, alice.id, f"<@{discord_fake.bot.id}> hi there"
            )
            await discord_fake.wait_until(
                lambda: any(
                    m.content == "Hello from the real process!"
                    for m in discord_fake.bot_messages(channel.id)
                ),
                timeout=30,
                what="the reply",
            )
            port = int(
                re.search(r"monitor listening on http://127.0.0.1:(\d+)/", log.read_text()).group(1)
            )
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                    assert resp.status == 200
                for _ in range(50):  # recorded right after the conversation is stored
                    async with http.get(f"http://127.0.0.1:{port}/status") as resp:
                        status = await resp.json()
                    if status["recent"]:
                        break
                    await asyncio.sleep(0.1)
            assert status["discord_connected"] is True and status["servers"] == 1
            # User names are hidden by default (CLARA_MONITOR_SHOW_CONTENT=false): a tag.
            assert status["recent"][0]["user"] == user_tag("Alice")
            assert status["recent"][0]["ok"] is True

            storage = await Storage.open(tmp_path / "data", attach=True)
            try:
                rows = []
                for _ in range(50):
                    async with session_factory(storage.engine)() as db:
                        rows = (
                            await db.execute(
                                select(Message.role, Message.content).order_by(Message.id)
                            )
                        ).all()
                    if len(rows) == 2:
                        break
                    await asyncio.sleep(0.1)
                assert rows == [("user", "hi there"), ("assistant", "Hello from the real process!")]
            finally:
                await storage.close()
        finally:
            stopped = await asyncio.to_thread(run_clara, "--stop", env=env, cwd=tmp_path)
        assert stopped.returncode == 0
        assert discord_fake.rate_limited_count.earned == 0


def _system(request) -> str:
    """The system prompt, on either wire (a top-level field on Anthropic's)."""
    if "system" in request.body:
        system = request.body["system"]
        return system if isinstance(system, str) else " ".join(b["text"] for b in system)
    return request.body["messages"][0]["content"]


def _extraction(request) -> bool:
    return "long-term memory" in str(request.body.get("messages", "")) + str(
        request.body.get("system", "")
    )


def _answers(request):
    if _extraction(request):
        if "my sister Ana is a nurse in Lisbon" in str(request.body["messages"]):
            facts = [
                {
                    "content": "Their sister Ana works as a nurse in Lisbon",
                    "type": "semantic",
                    "key": None,
                    "value": None,
                    "corrects": None,
                    "emotion": 0.3,
                },
                {
                    "content": "Their sister is called Ana",
                    "type": "identity",
                    "key": "sister",
                    "value": "Ana",
                    "corrects": None,
                    "emotion": 0.3,
                },
            ]
            return Reply(json.dumps({"facts": facts}))
        return Reply('{"facts": []}')
    return Reply("Noted!")


@pytest.mark.parametrize("wire", sorted(WIRES))
async def test_memories_survive_a_restart_and_reach_the_prompt(tmp_path, wire):
    async with (
        FakeDiscord(heartbeat_interval_ms=1000) as discord_fake,
        FakeLLM(api_keys={"k"}, default=_answers) as llm,
    ):
        alice = discord_fake.add_user("alice", global_name="Alice")
        guild = discord_fake.add_guild("Home", members=[alice.id])
        channel = guild.text_channels[0]
        env = _env(tmp_path, discord_fake, llm, wire, DISCORD_MONITOR_ENABLED="false")
        log = tmp_path / "data" / "clara.log"

        async def start_and_say(text: str, replies: int) -> None:
            started = await asyncio.to_thread(run_clara, "--daemon", env=env, cwd=tmp_path)
            assert started.returncode == 0, started.stderr
            await discord_fake.wait_until(
                lambda: log.read_text().count("connected to Discord") >= replies, timeout=30
            )
            await discord_fake.send_message(
                channel.id, alice.id, f"<@{discord_fake.bot.id}> {text}"
            )
            await discord_fake.wait_until(
                lambda: len(discord_fake.bot_messages(channel.id)) >= replies,
                timeout=30,
                what="the reply",
            )

        try:
            await start_and_say("my sister Ana is a nurse in Lisbon", 1)
            await discord_fake.wait_until(
                lambda: sum(_extraction(r) and r.outcome == "completed" for r in llm.requests) == 1,
                timeout=30,
                what="the memory extraction",
            )
            # stop waits for after-turn work: the memory is written before exit
            stopped = await asyncio.to_thread(run_clara, "--stop", env=env, cwd=tmp_path)
            assert stopped.returncode == 0
            await start_and_say("what does my sister do for a living?", 2)
        finally:
            await asyncio.to_thread(run_clara, "--stop", env=env, cwd=tmp_path)
        chats = [r for r in llm.requests if not _extraction(r)]
        system = _system(chats[-1])
        assert "sister: Ana" in system and "nurse in Lisbon" in system
        assert "nurse" not in _system(chats[0])  # learnt, not preset
        assert "Traceback" not in log.read_text()


async def test_health_says_whether_discord_and_storage_are_up(tmp_path):
    """/health (Docker's HEALTHCHECK): 200 only while connected to Discord with storage
    answering; 503 with a JSON body naming what is down otherwise."""
    async with (
        FakeDiscord(heartbeat_interval_ms=1000) as discord_fake,
        FakeLLM(api_keys={"k"}) as llm,
    ):
        discord_fake.add_guild("Home")
        discord_fake.refuse_gateway()  # Discord's gateway is down when Clara starts
        env = _env(tmp_path, discord_fake, llm, DISCORD_MONITOR_PORT="0")
        data = tmp_path / "data"
        log = data / "clara.log"

        async def health(port: int) -> tuple[int, dict]:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/health") as resp,
            ):
                return resp.status, await resp.json()

        try:
            started = await asyncio.to_thread(run_clara, "--daemon", env=env, cwd=tmp_path)
            assert started.returncode == 0, started.stderr
            await discord_fake.wait_until(
                lambda: "monitor listening" in log.read_text(), timeout=30, what="the monitor"
            )
            port = int(
                re.search(r"monitor listening on http://127.0.0.1:(\d+)/", log.read_text()).group(1)
            )
            assert await health(port) == (
                503,
                {"status": "unhealthy", "discord": "disconnected", "storage": "ok"},
            )

            discord_fake.refuse_gateway(False)
            await discord_fake.wait_until(
                lambda: "connected to Discord" in log.read_text(), timeout=30
            )
            assert await health(port) == (
                200,
                {"status": "ok", "discord": "connected", "storage": "ok"},
            )

            redis_pid = int((data / "run" / "redis.pid").read_text().strip())
            os.kill(redis_pid, signal.SIGKILL)  # the embedded Redis dies
            await asyncio.to_thread(wait_for, lambda: not pid_alive(redis_pid), 10)
            status, body = await health(port)
            assert status == 503 and body["status"] == "unhealthy"
            assert body["discord"] == "connected" and body["storage"].startswith("cannot reach")
            assert "Redis" in body["storage"]
        finally:
            await asyncio.to_thread(run_clara, "--stop", env=env, cwd=tmp_path)
