"""The spec's own examples, typed into a real `discord_bot.py --daemon` on Discord.

Not the test harness's runner (tests/support/discord_app.py): the composition
root (clara_core/app.py) with its real pipeline, sandbox and memory wiring, on
the wire the spec recommends for Claude proxies (LLM_PROVIDER=anthropic), the
way an outside user meets Clara:

- "@Clara !opus …", "!sonnet", "!haiku", "!high", "!mid", "!low", "!fast": the
  tier's model answers (ANTHROPIC_MODEL_HIGH/MID/LOW);
- "@Clara stop" while she streams: the stream ends and she says so;
- "@Clara nevermind, …" cancels and answers the new request;
- a model's execute_python runs in the sandbox SANDBOX_MODE=auto picks, and its
  output is in the answer.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_llm import FakeLLM, Hang, RecordedRequest, Reply, ToolCall
from tests.sandbox.conftest import TEST_IMAGE
from tests.support.clara_process import clara_env, run_clara

pytestmark = pytest.mark.slow

MODELS = {
    "ANTHROPIC_MODEL": "claude-base-test",
    "ANTHROPIC_MODEL_HIGH": "claude-opus-test",
    "ANTHROPIC_MODEL_MID": "claude-sonnet-test",
    "ANTHROPIC_MODEL_LOW": "claude-haiku-test",
}
TIERS = {
    "!opus": "claude-opus-test",
    "!high": "claude-opus-test",
    "!sonnet": "claude-sonnet-test",
    "!mid": "claude-sonnet-test",
    "!haiku": "claude-haiku-test",
    "!low": "claude-haiku-test",
    "!fast": "claude-haiku-test",
}


def _last_user_text(request: RecordedRequest) -> str:
    users = [m for m in request.messages if m.get("role") == "user"]
    return json.dumps(users[-1]) if users else ""


def _answer(request: RecordedRequest) -> Reply | Hang:
    said = _last_user_text(request)
    if "long-term memory" in json.dumps(request.body):
        return Reply('{"facts": []}')  # memory extraction after a turn
    if "tool_result" in said:
        found = re.search(r"RESULT=(\d+) UID=(\d+)", said)
        return Reply(f"the sandbox printed {found.group(0) if found else 'nothing'}")
    if "run some code" in said:
        code = "import os; print(f'RESULT={6 * 7} UID={os.getuid()}')"
        return Reply(tool_calls=[ToolCall("execute_python", {"code": code})])
    if "think hard" in said:
        return Hang(["Let me think about this very carefully "])
    tag = re.search(r"tag-\w+", said)
    return Reply(f"{tag.group(0) if tag else 'ok'} from {request.model}")


async def test_the_specs_examples_in_the_real_process(tmp_path):
    async with (
        FakeDiscord(heartbeat_interval_ms=1000) as fake,
        FakeLLM(api_keys={"k"}, default=_answer) as llm,
    ):
        alice = fake.add_user("alice", global_name="Alice")
        guild = fake.add_guild("Home", members=[alice.id])
        channel = guild.text_channels[0].id
        me = f"<@{fake.bot.id}>"
        env = clara_env(
            tmp_path,
            DISCORD_BOT_TOKEN=fake.token,
            DISCORD_API_BASE=fake.api_base,
            DISCORD_GATEWAY_URL=fake.gateway_url,
            LLM_PROVIDER="anthropic",
            ANTHROPIC_API_KEY="k",
            ANTHROPIC_BASE_URL=llm.anthropic_base_url,
            DISCORD_MONITOR_PORT="0",
            SANDBOX_MODE="auto",
            DOCKER_SANDBOX_IMAGE=TEST_IMAGE,
            **MODELS,
        )
        log = tmp_path / "data" / "clara.log"

        def texts() -> list[str]:
            return [m.content for m in fake.bot_messages(channel)]

        async def answered(want: str, what: str, timeout: float = 30) -> None:
            # The answer's first line (a tier badge may follow on its own line).
            await fake.wait_until(
                lambda: any(t.splitlines()[0] == want for t in texts() if t),
                timeout=timeout,
                what=f"{what} (said so far: {texts()})",
            )

        # Off the loop: the fakes answer from it while the daemon starts.
        started = await asyncio.to_thread(run_clara, "--daemon", env=env, cwd=tmp_path)
        assert started.returncode == 0, started.stderr
        try:
            await fake.wait_until(
                lambda: "ready to answer" in log.read_text(), timeout=60, what="start-up"
            )
            # Every tier prefix of the spec, each answered by its tier's model.
            for n, (prefix, model) in enumerate(TIERS.items()):
                await fake.send_message(channel, alice.id, f"{me} {prefix} hi tag-t{n}")
                await answered(f"tag-t{n} from {model}", f"the {prefix} answer")

            # "@Clara stop" while she streams: the stream ends and she says so.
            await fake.send_message(channel, alice.id, f"{me} think hard about this")
            await fake.wait_until(
                lambda: any(t.startswith("Let me think") for t in texts()),
                timeout=30,
                what="the streamed start",
            )
            await fake.send_message(channel, alice.id, f"{me} stop")
            await llm.wait_for_disconnect(timeout=10)
            await fake.wait_until(
                lambda: any(t.startswith("Stopped.") for t in texts()),
                timeout=15,
                what="the stop confirmation",
            )

            # "nevermind, <new request>" when nothing runs: the request is answered.
            await fake.send_message(channel, alice.id, f"{me} nevermind, hi tag-nm")
            await answered("tag-nm from claude-base-test", "the answer after nevermind")

            # A model's execute_python runs in the sandbox auto picked.
            await fake.send_message(channel, alice.id, f"{me} please run some code")
            await fake.wait_until(
                lambda: any(t.startswith("the sandbox printed") for t in texts()),
                timeout=120,
                what="the sandbox's output in the answer",
            )
            [ran] = [t for t in texts() if t.startswith("the sandbox printed")]
            found = re.search(r"RESULT=42 UID=(\d+)", ran)
            assert found and found.group(1) != "0", ran  # ran, and not as root
        finally:
            stopped = await asyncio.to_thread(run_clara, "--stop", env=env, cwd=tmp_path)
        assert stopped.returncode == 0, stopped.stderr
        text = log.read_text()
        assert "Traceback" not in text, text[-4000:]
        fake.assert_clean()
