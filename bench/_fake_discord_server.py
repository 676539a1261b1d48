"""The fake Discord in its own process, so its CPU time isn't Clara's.

``python bench/_fake_discord_server.py [N]`` starts a ``FakeDiscord`` with the
default config (Discord's real per-channel and global rate limits), one guild
with N text channels (default 200) and one human user, prints one JSON line::

    {"api_base", "gateway_url", "token", "bot_id", "user_id", "guild_id", "channel_ids"}

``python bench/_fake_discord_server.py --guilds G --shards S`` instead makes G
guilds with one text channel each, their ids spread evenly over S shards (guild
``i`` on shard ``i % S``, as Discord routes ``(guild_id >> 22) % S``), accepts
up to S IDENTIFYs at once, and adds ``guild_ids`` and ``shards`` to the line
(``channel_ids[i]`` is guild ``i``'s channel, ``guild_id`` the first guild).

It then serves a line-based control protocol on stdin/stdout, one JSON object per
line each way:

* ``{"cmd": "send_all", "content": "..."}``: the user posts one message per
  channel, mentioning the bot.  Answer: ``{"sent": N, "first": t, "last": t}``.
  With ``"channels": [ids]``, only in those channels (they become the channels
  ``progress`` and ``report`` look at).
* ``{"cmd": "progress", "expected": "..."}``: how many channels' latest bot
  message (``-# `` lines ignored) reads ``expected``.  Answer: ``{"done": k}``.
* ``{"cmd": "report"}``: per channel the send time, each bot message's revision
  times and final content, and the bot's REST requests ``[kind, at, outcome]``;
  plus ``rate_limited`` (earned, earned_global, injected), ``internal_errors``,
  ``unknown_routes`` and request counts by ``kind:outcome``.
* ``{"cmd": "quit"}``: stop the server and exit.

All times are ``time.monotonic()``: CLOCK_MONOTONIC is system-wide on Linux, so
they compare with the benchmark process's clock.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

# Run as a script: put the repository (not bench/) on the path, so bench modules
# can never shadow a library and tests.fakes is importable.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from tests.fakes.fake_discord import FakeDiscord  # noqa: E402


def visible_text(content: str) -> str:
    """A bot message without Clara's ``-# `` status/badge lines."""
    return "\n".join(line for line in content.split("\n") if not line.startswith("-# ")).strip()


class Control:
    def __init__(self, fake: FakeDiscord, channel_ids: list[int], user_id: int) -> None:
        self.fake = fake
        self.channel_ids = channel_ids
        self.user_id = user_id
        self.sent_at: dict[int, float] = {}
        self.user_message_ids: dict[int, int] = {}

    async def send_all(self, content: str, channels: list[int] | None = None) -> dict[str, Any]:
        if channels is not None:
            self.channel_ids = [int(c) for c in channels]
        text = f"<@{self.fake.bot.id}> {content}"
        for channel_id in self.channel_ids:
            self.sent_at[channel_id] = time.monotonic()
            message = await self.fake.send_message(channel_id, self.user_id, text)
            self.user_message_ids[channel_id] = message.id
        times = list(self.sent_at.values())
        return {"sent": len(times), "first": min(times), "last": max(times)}

    def progress(self, expected: str) -> dict[str, Any]:
        want = expected.strip()
        done = 0
        for channel_id in self.channel_ids:
            bot = self.fake.bot_messages(channel_id)
            if bot and visible_text(bot[-1].content) == want:
                done += 1
        return {"done": done}

    def report(self) -> dict[str, Any]:
        by_channel: dict[int, list[list[Any]]] = {c: [] for c in self.channel_ids}
        kinds: Counter[str] = Counter()
        for r in self.fake.requests:
            kinds[f"{r.route_kind}:{r.outcome}"] += 1
            if r.channel_id in by_channel:
                by_channel[r.channel_id].append([r.route_kind, r.at, r.outcome])
        channels = []
        for channel_id in self.channel_ids:
            channels.append(
                {
                    "id": channel_id,
                    "sent_at": self.sent_at.get(channel_id),
                    "bot_messages": [
                        {
                            "revisions": [[rev.at, rev.content] for rev in m.revisions],
                            "content": m.content,
                            "deleted": m.deleted,
                        }
                        for m in self.fake.bot_messages(channel_id, include_deleted=True)
                    ],
                    "requests": by_channel[channel_id],
                }
            )
        stats = self.fake.rate_limited_count
        return {
            "channels": channels,
            "rate_limited": {
                "earned": stats.earned,
                "earned_global": stats.earned_global,
                "injected": stats.injected,
            },
            "request_counts": dict(sorted(kinds.items())),
            "internal_errors": list(self.fake.internal_errors),
            "unknown_routes": [f"{r.method} {r.path}" for r in self.fake.unknown_routes],
        }


async def main(n_channels: int, n_guilds: int | None = None, shards: int = 1) -> None:
    # Sharded: any [id, count] IDENTIFY is accepted (so one process may run all
    # shards), and S shards may IDENTIFY at once rather than one per 5 s.
    async with FakeDiscord(identify_max_concurrency=max(1, shards)) as fake:
        user = fake.add_user("bench-human", global_name="Bench Human")
        extra: dict[str, Any] = {}
        if n_guilds is None:
            guild = fake.add_guild(
                "Bench", channels=[f"chat-{i}" for i in range(n_channels)], members=[user.id]
            )
            channel_ids = [c.id for c in guild.text_channels]
            first_guild = guild.id
        else:
            guild_ids = []
            channel_ids = []
            for i in range(n_guilds):
                g = fake.add_guild(
                    f"Bench {i}",
                    guild_id=fake.guild_id_for_shard(i % shards, shards),
                    channels=["chat"],
                    members=[user.id],
                )
                guild_ids.append(g.id)
                channel_ids.append(g.text_channels[0].id)
            first_guild = guild_ids[0]
            extra = {"guild_ids": guild_ids, "shards": shards}
        control = Control(fake, channel_ids, user.id)
        print(
            json.dumps(
                {
                    "api_base": fake.api_base,
                    "gateway_url": fake.gateway_url,
                    "token": fake.token,
                    "bot_id": fake.bot.id,
                    "user_id": user.id,
                    "guild_id": first_guild,
                    "channel_ids": channel_ids,
                    **extra,
                }
            ),
            flush=True,
        )

        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 24)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return  # the benchmark went away
            try:
                request = json.loads(line)
                cmd = request.get("cmd")
                if cmd == "quit":
                    print(json.dumps({"ok": True}), flush=True)
                    return
                if cmd == "send_all":
                    answer = await control.send_all(
                        request.get("content", "hello"), request.get("channels")
                    )
                elif cmd == "progress":
                    answer = control.progress(request["expected"])
                elif cmd == "report":
                    answer = control.report()
                else:
                    answer = {"error": f"unknown command {cmd!r}"}
            except Exception as exc:  # keep serving; the benchmark reports it
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()


def _parse(argv: list[str]) -> tuple[int, int | None, int]:
    n_channels, n_guilds, shards = 200, None, 1
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--guilds":
            n_guilds = int(args.pop(0))
        elif arg == "--shards":
            shards = int(args.pop(0))
        else:
            n_channels = int(arg)
    return n_channels, n_guilds, shards


if __name__ == "__main__":
    asyncio.run(main(*_parse(sys.argv[1:])))
