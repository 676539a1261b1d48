"""`discord_bot.py --console`: the pipeline in a terminal, Ctrl-C cancels an answer."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import pytest

from tests.fakes.fake_llm import FakeLLM, Hang, Reply
from tests.support.clara_process import ENTRY, clara_env, run_clara
from tests.support.console import spawn_console, start_console

pytestmark = pytest.mark.slow


async def test_console_chat_cancel_and_exit(tmp_path):
    async with FakeLLM(api_keys={"k"}) as fake:
        env = clara_env(
            tmp_path,
            LLM_PROVIDER="openai",
            CUSTOM_OPENAI_API_KEY="k",
            CUSTOM_OPENAI_BASE_URL=fake.openai_base_url,
        )
        term = await start_console(env, tmp_path)
        proc = term.proc
        try:
            await term.expect("you> ")
            fake.enqueue(Reply("Hello from Clara!", chunks=["Hello ", "from ", "Clara!"]))
            await term.type("hello")
            await term.expect("clara> Hello from Clara!")

            fake.enqueue(Hang(["Let me think "]))
            await term.type("a long question")
            await term.expect("Let me think")
            proc.send_signal(signal.SIGINT)
            await term.expect("[stopped]")
            disconnect = await fake.wait_for_disconnect(timeout=2)
            assert disconnect.chunks_sent == 1

            fake.enqueue(Reply("Still here."))
            await term.type("!high again")
            await term.expect("Still here.")
            # The chat request, not a memory-extraction call that may follow it.
            last = next(
                r
                for r in reversed(fake.requests)
                if r.messages and r.messages[-1].get("content") in ("again", "!high again")
            )
            text = str(last.messages)
            assert "hello" in text and "Hello from Clara!" in text  # history kept
            assert "a long question" not in text  # the cancelled turn left no trace
            assert "[high tier, asked:" in term.output

            proc.stdin.close()
            await asyncio.wait_for(proc.wait(), 30)
            await term._reader
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0
        assert "bye" in term.output
        assert (tmp_path / "data" / "console.log").exists()


async def test_console_without_llm_key_says_which(tmp_path):
    env = clara_env(tmp_path, LLM_PROVIDER="anthropic")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ENTRY),
        "--console",
        env=env,
        cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert b"ANTHROPIC_API_KEY is not set" in err and b"DISCORD_BOT_TOKEN" not in err


async def _interrupt_console_start(tmp_path, *, when) -> tuple[int, str, str]:
    """Start ``--console``, send Ctrl-C (SIGINT) once ``when()`` is true, before the prompt."""
    env = clara_env(
        tmp_path, LLM_PROVIDER="openai", CUSTOM_OPENAI_API_KEY="k", PYTHONWARNINGS="ignore"
    )
    proc = await spawn_console(env, tmp_path)
    try:
        async with asyncio.timeout(60):
            while not when():
                assert proc.returncode is None, "console exited before the interrupt"
                await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


@pytest.mark.parametrize("moment", ["loading", "initdb"])
async def test_ctrl_c_while_the_console_starts_is_quiet(tmp_path, moment):
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    staging = tmp_path / "data" / "postgres.initdb"
    pgdata = tmp_path / "data" / "postgres"
    when = {
        # while Python loads Clara and her settings
        "loading": lambda: loop.time() - t0 > 0.15,
        # while initdb creates the embedded PostgreSQL cluster (on first start; it
        # works aside and renames at the end, it used to write in place)
        "initdb": lambda: staging.exists() or pgdata.exists(),
    }[moment]
    code, out, err = await _interrupt_console_start(tmp_path, when=when)
    assert "Traceback" not in err, err
    if code == -signal.SIGINT:
        # A very slow start: the signal came before Python installed its handler.
        assert moment == "loading" and not err.strip(), err
    else:
        assert code == 130, (code, err)
        assert "interrupted" in err
    assert "you> " not in out  # it really was still starting
    if moment == "initdb":
        # The start-up was unwound and left no half-made cluster: the next start
        # creates a whole one (a partial one made every later start wait a minute
        # for a database that never came, then fail).
        env = clara_env(tmp_path)
        again = await asyncio.to_thread(run_clara, "migrate", "status", env=env, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert "current: (empty database)" in again.stdout


def test_embedder_that_does_not_match_the_stored_memories_is_a_config_error(tmp_path):
    # Found only once the database is open, after start-up began: exit 2 all the same,
    # naming the setting, no traceback.
    env = clara_env(tmp_path, LLM_PROVIDER="openai", CUSTOM_OPENAI_API_KEY="k")

    def clara(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        # End of input at once: the console exits right after it started.
        return subprocess.run(
            [sys.executable, str(ENTRY), *args],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = clara("--console", env=env)  # records the local embedder in the database
    # stdin is /dev/null, which the loop can't poll: the console used to wait forever.
    assert first.returncode == 0, first.stderr
    assert first.stdout.rstrip().endswith("bye")
    switched = {
        **env,
        "CORTEX_EMBEDDING_PROVIDER": "openai",
        "CORTEX_EMBEDDING_API_KEY": "sk-embedding-key-123456",
        "CORTEX_EMBEDDING_DIMS": "384",
    }
    for args in (("--console",), ()):
        result = clara(*args, env={**switched, "DISCORD_BOT_TOKEN": "t"})
        assert result.returncode == 2, (args, result.stderr)
        assert "CORTEX_EMBEDDING_MODEL" in result.stderr and "cortex reembed" in result.stderr
        assert "Traceback" not in result.stderr
        assert "sk-embedding-key-123456" not in result.stdout + result.stderr
