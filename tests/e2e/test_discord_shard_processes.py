"""Two real Clara processes, one shard each, on one PostgreSQL + Redis and one
fake Discord.

Each process is ``python discord_bot.py`` with its own CLARA_DATA_DIR,
DISCORD_SHARD_COUNT=2 and DISCORD_SHARD_IDS=0 / 1, and the shared servers given
as DATABASE_URL / REDIS_URL (as an operator runs them: no embedded servers).
The fake Discord routes each guild's events to shard ``(guild_id >> 22) % 2``,
so each process must answer exactly the mentions in its own guilds.  SIGKILL of
shard 1's process must leave shard 0 answering; a restarted shard 1 IDENTIFYs
again, answers the mentions sent while it was down and then its guilds live,
and no message is ever answered twice.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.fakes.fake_discord import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.fake_llm import FakeLLM, RecordedRequest, Reply
from tests.support.clara_process import ClaraProcess, shard_env

pytestmark = [pytest.mark.slow, pytest.mark.storage]

SHARDS = 2
GUILDS_PER_SHARD = 3
TAG = re.compile(r"tag-[0-9a-z]+")
READY_TIMEOUT = 120  # two cold Clara start-ups on a shared 2-core machine


def echo(request: RecordedRequest) -> Reply:
    """Reply with the tag of the last user turn: a reply says which message it answers."""
    users = [m for m in request.body.get("messages", []) if m.get("role") == "user"]
    found = TAG.findall(json.dumps(users[-1] if users else {}))
    return Reply(f"noted {found[-1] if found else 'nothing'}")


class ShardProcess(ClaraProcess):
    """One ``discord_bot.py`` running one shard, its output in a file."""

    def __init__(self, root: Path, shard: int, env: dict[str, str]) -> None:
        super().__init__(root, env, name=f"shard{shard}")
        self.shard = shard

    def connected(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"shard {self.shard}'s process exited ({self.proc.returncode}):\n{self.output()}"
            )
        return "connected to Discord" in self.output()


@asynccontextmanager
async def shard_processes(
    tmp_path: Path, fake: FakeDiscord, llm: FakeLLM, database_url: str, redis_url: str
) -> AsyncIterator[list[ShardProcess]]:
    processes = []
    for shard in range(SHARDS):
        root = tmp_path / f"shard{shard}"
        root.mkdir()
        env = shard_env(
            root,
            discord=fake,
            llm=llm,
            shard=shard,
            count=SHARDS,
            api_key="k",
            database_url=database_url,
            redis_url=redis_url,
        )
        processes.append(ShardProcess(root, shard, env))
    try:
        for p in processes:
            p.start()
        await fake.wait_until(
            lambda: all(p.connected() for p in processes),
            timeout=READY_TIMEOUT,
            what="both shard processes connected",
        )
        yield processes
    finally:
        await asyncio.gather(*(p.stop() for p in processes))


class Conversation:
    """Mentions with unique tags, and the check that each got exactly its answer."""

    def __init__(self, fake: FakeDiscord, alice: FakeUser) -> None:
        self.fake = fake
        self.alice = alice
        #: channel -> the replies it must have, in order (every one exactly once).
        self.expected: dict[int, list[str]] = {}
        self.rounds = 0

    async def mention_all(self, guilds: list[FakeGuild]) -> list[int]:
        self.rounds += 1
        channels = []
        for n, guild in enumerate(guilds):
            channel = guild.text_channels[0].id
            tag = f"tag-r{self.rounds}g{n}s{guild.id % 97}"
            await self.fake.send_message(
                channel, self.alice.id, f"<@{self.fake.bot.id}> please note {tag}"
            )
            self.expected.setdefault(channel, []).append(f"noted {tag}")
            channels.append(channel)
        return channels

    def replies(self, channel: int) -> list[str]:
        return [m.content for m in self.fake.bot_messages(channel)]

    async def answered(self, channels: list[int], timeout: float = 60) -> None:
        # The whole answer: a streamed reply shows its first words first and its
        # last edit comes DISCORD_EDIT_INTERVAL_SECONDS (1.2 s) later.
        await self.fake.wait_until(
            lambda: all(self.replies(c) == self.expected[c] for c in channels),
            timeout=timeout,
            what="the whole answer to every mention",
        )
        await asyncio.sleep(1.5)  # time for a wrong second answer (or edit) to show up
        await self.fake.flush()
        assert {c: self.replies(c) for c in self.expected} == self.expected


async def test_two_shard_processes_share_one_database_and_survive_a_kill(
    tmp_path, database_url, redis_url
):
    async with (
        FakeDiscord(
            heartbeat_interval_ms=1000, shard_count=SHARDS, identify_max_concurrency=SHARDS
        ) as fake,
        FakeLLM(api_keys={"k"}, default=echo) as llm,
    ):
        alice = fake.add_user("alice", global_name="Alice")
        guilds = {
            shard: [
                fake.add_guild(
                    f"S{shard}-{i}",
                    guild_id=fake.guild_id_for_shard(shard, SHARDS),
                    members=[alice.id],
                )
                for i in range(GUILDS_PER_SHARD)
            ]
            for shard in range(SHARDS)
        }
        talk = Conversation(fake, alice)
        async with shard_processes(tmp_path, fake, llm, database_url, redis_url) as procs:
            assert fake.identify_count == SHARDS
            assert [len(fake.sessions_on_shard(s)) for s in range(SHARDS)] == [1, 1]

            # Each process answers the mentions in its own guilds, once.
            await talk.answered(await talk.mention_all(guilds[0] + guilds[1]))

            # Shard 1's process dies without a goodbye: shard 0 keeps answering.
            procs[1].kill()
            await talk.answered(await talk.mention_all(guilds[0]))
            # Mentions in shard 1's guilds now reach no process.
            missed = await talk.mention_all(guilds[1])

            # Restarted, shard 1 connects again (a new process has no session to
            # RESUME: it IDENTIFYs), answers what was said while it was down
            # (read back from the channels' history), once, and then its guilds
            # live; shard 0 still answers its own.
            identifies = fake.identify_count
            procs[1].start()
            await fake.wait_until(
                procs[1].connected, timeout=READY_TIMEOUT, what="shard 1 restarted"
            )
            await talk.answered(missed)
            assert fake.identify_count + fake.resume_count > identifies
            identified = [
                s for s in fake.sessions_on_shard(1) if s.connection is not None
            ]  # the live one is the new process's
            assert len(identified) == 1
            await talk.answered(await talk.mention_all(guilds[1] + guilds[0]))

            # The shared budget counted both processes (both were alive just now).
            fake.assert_clean()
        for p in procs:
            out = p.output()
            assert "Traceback" not in out, out
