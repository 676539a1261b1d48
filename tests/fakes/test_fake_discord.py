"""The fake Discord server against the real discord.py client (and raw HTTP/websocket
where discord.py would hide what the server does)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.fakes.fake_discord import (
    DiscordAPIError,
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeUser,
    discord_py_pointed_at,
    running_client,
)

HEARTBEAT_MS = 1000
RATE_WINDOW = 1.0


@dataclass
class World:
    fake: FakeDiscord
    guild: FakeGuild
    channel: FakeChannel
    alice: FakeUser
    bob: FakeUser


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    before = {t for t in asyncio.all_tasks() if not t.done()}
    async with FakeDiscord(
        heartbeat_interval_ms=HEARTBEAT_MS,
        message_rate_limit=5,
        message_rate_window=RATE_WINDOW,
    ) as server:
        with discord_py_pointed_at(server):
            yield server
    server.assert_clean()
    # Nothing the client or the fake started may outlive the test.
    await asyncio.sleep(0.05)
    leaked = {t for t in asyncio.all_tasks() if not t.done()} - before - {asyncio.current_task()}
    assert not leaked, f"leaked tasks: {leaked}"
    deadline = time.monotonic() + 3
    while any(t.name.startswith("keep-alive-handler") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "discord.py heartbeat thread still running"
        await asyncio.sleep(0.02)


@pytest.fixture
def world(fake: FakeDiscord) -> World:
    guild = fake.add_guild("Test Guild", channels=("general", "random"))
    alice = fake.add_user("alice", global_name="Alice")
    bob = fake.add_user("bob")
    fake.add_member(guild.id, alice.id)
    fake.add_member(guild.id, bob.id)
    return World(fake, guild, guild.channel_named("general"), alice, bob)


def make_client(*, message_content: bool = True, cls: type[discord.Client] = discord.Client):
    intents = discord.Intents.default()
    intents.message_content = message_content
    # discord.py waits guild_ready_timeout after the last GUILD_CREATE before on_ready.
    return cls(intents=intents, guild_ready_timeout=0.05)


class Recorder(discord.Client):
    """A client that keeps the events tests look at."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.messages: list[discord.Message] = []
        self.edits: list[discord.RawMessageUpdateEvent] = []
        self.deletes: list[discord.RawMessageDeleteEvent] = []
        self.threads: list[discord.Thread] = []
        self.ready_count = 0
        self.resumed_count = 0

    async def on_ready(self) -> None:
        self.ready_count += 1

    async def on_resumed(self) -> None:
        self.resumed_count += 1

    async def on_message(self, message: discord.Message) -> None:
        self.messages.append(message)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        self.edits.append(payload)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        self.deletes.append(payload)

    async def on_thread_create(self, thread: discord.Thread) -> None:
        self.threads.append(thread)

    def received(self, content: str) -> discord.Message | None:
        return next((m for m in self.messages if m.content == content), None)


def recorder(*, message_content: bool = True) -> Recorder:
    return make_client(message_content=message_content, cls=Recorder)  # type: ignore[return-value]


# ---------------------------------------------------------------- gateway


async def test_connects_and_gets_ready(world: World) -> None:
    fake = world.fake
    client = recorder()
    async with running_client(fake, client):
        await fake.wait_until(lambda: client.ready_count == 1, what="on_ready")
        assert client.user is not None and client.user.id == fake.bot.id
        assert client.application_id == fake.application_id
        [guild] = client.guilds
        assert guild.id == world.guild.id
        assert sorted(c.name for c in guild.text_channels) == ["general", "random"]
        assert guild.me is not None and guild.me.id == fake.bot.id
        assert {r.name for r in guild.roles} >= {"@everyone", "Clara"}
        # discord.py asked for zlib-stream and got it; heartbeats are ACKed.
        [conn] = fake.gateway_connections
        assert conn.query["v"] == "10" and conn.query["encoding"] == "json"
        assert conn.compression == conn.query.get("compress") == "zlib-stream"
        await fake.wait_until(lambda: client.latency != float("inf"), what="heartbeat ack")
        assert fake.identify_count == 1 and fake.resume_count == 0
    assert fake.requests_for("me")[0].status == 200


async def test_guild_added_after_ready_is_dispatched(world: World) -> None:
    fake = world.fake
    client = recorder()
    async with running_client(fake, client):
        second = fake.add_guild("Second")
        await fake.wait_until(lambda: client.get_guild(second.id) is not None, what="guild")
        channel = fake.add_channel(second.id, "late")
        await fake.wait_until(lambda: client.get_channel(channel.id) is not None, what="channel")


async def test_on_message_resolves_mentions_and_replies(world: World) -> None:
    fake, channel, alice, bob = world.fake, world.channel, world.alice, world.bob
    client = recorder()
    async with running_client(fake, client):
        text_channel = client.get_channel(channel.id)
        assert isinstance(text_channel, discord.TextChannel)
        bot_message = await text_channel.send("I am Clara")

        reply = await fake.send_message(
            channel.id,
            alice.id,
            f"{bob.mention} look at this",
            reference_message_id=bot_message.id,
        )
        await fake.wait_until(lambda: client.received("I am Clara"), what="own message")
        await fake.wait_until(lambda: client.received(reply.content), what="reply")
        got = client.received(reply.content)
        assert got is not None
        assert got.author.id == alice.id and isinstance(got.author, discord.Member)
        assert got.guild is not None and got.guild.id == world.guild.id
        # bob from <@id>, Clara because replying pings the replied-to author.
        assert {u.id for u in got.mentions} == {bob.id, fake.bot.id}
        assert got.type is discord.MessageType.reply
        assert got.reference is not None and got.reference.message_id == bot_message.id
        assert isinstance(got.reference.resolved, discord.Message)
        assert got.reference.resolved.content == "I am Clara"

        explicit = await fake.send_message(channel.id, bob.id, "no ping", mentions=[fake.bot])
        await fake.wait_until(lambda: client.received("no ping"), what="explicit mention")
        assert [u.id for u in client.received("no ping").mentions] == [fake.bot.id]  # type: ignore[union-attr]
        assert explicit.mention_ids == [fake.bot.id]

        dm = fake.add_dm_channel(alice.id)
        await fake.send_message(dm.id, alice.id, "private hello")
        await fake.wait_until(lambda: client.received("private hello"), what="DM")
        got_dm = client.received("private hello")
        assert got_dm is not None and got_dm.guild is None
        assert isinstance(got_dm.channel, discord.DMChannel)
        answer = await got_dm.channel.send("private answer")
        assert fake.get_message(answer.id).channel_id == dm.id


async def test_message_content_intent_is_enforced(world: World) -> None:
    fake, channel, alice = world.fake, world.channel, world.alice
    client = recorder(message_content=False)
    async with running_client(fake, client):
        await fake.send_message(channel.id, alice.id, "secret chatter")
        await fake.send_message(channel.id, alice.id, f"{fake.bot.mention} hello bot")
        await fake.wait_until(lambda: len(client.messages) == 2, what="two messages")
        assert [m.content for m in client.messages] == ["", f"<@{fake.bot.id}> hello bot"]


# ---------------------------------------------------------- REST rules


async def test_rejects_too_long_and_empty_messages(world: World) -> None:
    fake = world.fake
    client = make_client()
    async with running_client(fake, client):
        channel = client.get_channel(world.channel.id)
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x" * 2001)
        assert too_long.value.status == 400 and too_long.value.code == 50035
        assert "content" in too_long.value.text and "2000 or fewer" in too_long.value.text

        with pytest.raises(discord.HTTPException) as empty:
            await channel.send("   ")
        assert empty.value.status == 400 and empty.value.code == 50006

        ok = await channel.send("x" * 2000)
        assert fake.get_message(ok.id).content == "x" * 2000
        assert [m.id for m in fake.bot_messages(world.channel.id)] == [ok.id]

        with pytest.raises(discord.HTTPException) as bad_reply:
            await channel.send(
                "reply",
                reference=discord.MessageReference(message_id=1, channel_id=world.channel.id),
            )
        assert bad_reply.value.code == 50035

        alice_message = await fake.send_message(world.channel.id, world.alice.id, "mine")
        partial = channel.get_partial_message(alice_message.id)
        with pytest.raises(discord.Forbidden) as not_yours:
            await partial.edit(content="hijacked")
        assert not_yours.value.code == 50005
        assert fake.message_history(alice_message.id) == ["mine"]


async def test_upload_size_limit(world: World) -> None:
    fake = world.fake
    fake.config.attachment_size_limit = 1024
    client = make_client()
    async with running_client(fake, client):
        channel = client.get_channel(world.channel.id)
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises(discord.HTTPException) as too_big:
            await channel.send(file=discord.File(io.BytesIO(b"x" * 1025), "big.bin"))
        assert too_big.value.status == 413 and too_big.value.code == 40005
        fits = await channel.send(file=discord.File(io.BytesIO(b"x" * 1024), "fits.bin"))
        assert fits.attachments[0].size == 1024


async def test_file_upload_becomes_attachment(world: World) -> None:
    fake = world.fake
    client = recorder()
    async with running_client(fake, client):
        channel = client.get_channel(world.channel.id)
        assert isinstance(channel, discord.TextChannel)
        sent = await channel.send(
            "see attached", file=discord.File(io.BytesIO(b"hello file"), "notes.txt")
        )
        [attachment] = sent.attachments
        assert attachment.filename == "notes.txt" and attachment.size == 10
        assert attachment.content_type == "text/plain"
        assert attachment.url.startswith(fake.base_url)
        assert await attachment.read() == b"hello file"

        stored = fake.get_message(sent.id)
        assert stored.content == "see attached" and stored.attachments[0].data == b"hello file"
        request = fake.requests_for("send")[-1]
        assert request.json["content"] == "see attached"
        assert [(f.field, f.filename, f.size) for f in request.files] == [
            ("files[0]", "notes.txt", 10)
        ]

        # Edit keeps the attachment and replaces the text.
        edited = await sent.edit(content="see attached (v2)")
        assert [a.filename for a in edited.attachments] == ["notes.txt"]

        # A user's upload reaches the bot with a URL the fake serves.
        await fake.send_message(
            world.channel.id, world.alice.id, "my picture", attachments=[("cat.png", b"\x89PNG")]
        )
        await fake.wait_until(lambda: client.received("my picture"), what="upload")
        [user_file] = client.received("my picture").attachments  # type: ignore[union-attr]
        assert user_file.content_type == "image/png"
        assert await user_file.read() == b"\x89PNG"


async def test_history_fetch_delete_and_typing(world: World) -> None:
    fake = world.fake
    client = recorder()
    async with running_client(fake, client):
        channel = client.get_channel(world.channel.id)
        assert isinstance(channel, discord.TextChannel)
        first = await channel.send("one")
        await fake.send_message(world.channel.id, world.alice.id, "two")
        third = await channel.send("three")

        newest_first = [m.content async for m in channel.history(limit=10)]
        assert newest_first == ["three", "two", "one"]
        after_first = [m.content async for m in channel.history(after=first, oldest_first=True)]
        assert after_first == ["two", "three"]
        assert (await channel.fetch_message(first.id)).content == "one"

        await third.delete()
        await fake.wait_until(lambda: client.deletes, what="MESSAGE_DELETE")
        assert client.deletes[0].message_id == third.id
        with pytest.raises(discord.NotFound) as gone:
            await channel.fetch_message(third.id)
        assert gone.value.code == 10008
        assert fake.get_message(third.id).deleted

        async with channel.typing():
            pass
        assert [c for c, _ in fake.typing_events] == [world.channel.id]


# ---------------------------------------------------------- rate limits


async def test_burst_of_messages_respects_rate_limit(world: World) -> None:
    """12 concurrent sends, 5 per window allowed: discord.py reads the
    X-RateLimit-* headers and waits on its bucket, so every message lands and
    the fake never has to answer 429 (``earned == 0``)."""
    fake = world.fake
    client = make_client()
    async with running_client(fake, client):
        channel = client.get_channel(world.channel.id)
        assert isinstance(channel, discord.TextChannel)
        started = time.monotonic()
        sent = await asyncio.gather(*(channel.send(f"burst {i}") for i in range(12)))
        elapsed = time.monotonic() - started

    assert sorted(m.content for m in sent) == sorted(f"burst {i}" for i in range(12))
    assert len(fake.bot_messages(world.channel.id)) == 12
    # 5 + 5 + 2: two full windows had to pass.
    assert elapsed >= 2 * RATE_WINDOW - 0.05
    assert fake.rate_limited_count.earned == 0
    assert fake.rate_limited_count.injected == 0
    ok = fake.requests_for("send", outcome="ok")
    assert len(ok) == 12


async def test_injected_429_on_edit_is_retried(world: World) -> None:
    fake = world.fake
    client = recorder()
    async with running_client(fake, client):
        channel = client.get_channel(world.channel.id)
        assert isinstance(channel, discord.TextChannel)
        draft = await channel.send("draft")
        fake.inject_429("edit", count=2, retry_after=0.2)
        started = time.monotonic()
        final = await draft.edit(content="final answer")
        assert time.monotonic() - started >= 0.4
        assert final.content == "final answer"
        await fake.wait_until(lambda: client.edits, what="MESSAGE_UPDATE")

    assert fake.message_history(draft.id) == ["draft", "final answer"]
    assert [r.outcome for r in fake.requests_for("edit")] == ["injected_429", "injected_429", "ok"]
    assert fake.rate_limited_count.injected == 2
    assert fake.rate_limited_count.earned == 0
    assert fake.get_message(draft.id).last_edited_at is not None


async def test_injected_errors(world: World) -> None:
    fake = world.fake
    client = make_client()
    async with running_client(fake, client):
        channel = client.get_channel(world.channel.id)
        assert isinstance(channel, discord.TextChannel)
        fake.inject_error(502, "send")  # discord.py retries 502 after 1 s
        sent = await channel.send("after a 502")
        assert fake.get_message(sent.id).content == "after a 502"
        fake.inject_error(403, "send", code=50013, message="Missing Permissions")
        with pytest.raises(discord.Forbidden) as forbidden:
            await channel.send("not allowed")
        assert forbidden.value.code == 50013
    assert [r.outcome for r in fake.requests_for("send")] == [
        "injected_error",
        "ok",
        "injected_error",
    ]


async def test_rate_limit_wire_format(fake: FakeDiscord) -> None:
    """Without discord.py's limiter in the way: the 6th create in a window gets a
    Discord-shaped 429, and edits share the bucket."""
    guild = fake.add_guild()
    channel = guild.text_channels[0]
    headers = {"Authorization": f"Bot {fake.token}"}
    url = f"{fake.api_base}/channels/{channel.id}/messages"
    async with aiohttp.ClientSession(headers=headers) as http:
        first = None
        for i in range(5):
            async with http.post(url, json={"content": f"m{i}"}) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == "application/json"
                assert resp.headers["X-RateLimit-Limit"] == "5"
                assert resp.headers["X-RateLimit-Remaining"] == str(4 - i)
                assert 0 < float(resp.headers["X-RateLimit-Reset-After"]) <= RATE_WINDOW
                assert resp.headers["X-RateLimit-Bucket"]
                first = first or await resp.json()
        assert first is not None
        async with http.patch(f"{url}/{first['id']}", json={"content": "edited"}) as resp:
            assert resp.status == 429
            body = await resp.json()
        assert body["message"] == "You are being rate limited."
        assert body["global"] is False
        assert 0 < body["retry_after"] <= RATE_WINDOW
        for name in (
            "Retry-After",
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
            "X-RateLimit-Reset-After",
            "X-RateLimit-Bucket",
            "X-RateLimit-Scope",
        ):
            assert name in resp.headers, name
        assert resp.headers["X-RateLimit-Remaining"] == "0"
        assert resp.headers["X-RateLimit-Scope"] == "user"
        assert resp.headers["Via"]  # discord.py ignores 429s without it

        await asyncio.sleep(body["retry_after"])
        async with http.patch(f"{url}/{first['id']}", json={"content": "edited"}) as resp:
            assert resp.status == 200
    assert fake.rate_limited_count.earned == 1
    assert fake.message_history(int(first["id"])) == ["m0", "edited"]


async def test_auth_and_unknown_routes_wire_format(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{fake.api_base}/users/@me", headers={"Authorization": "Bot wrong"}
        ) as resp:
            assert resp.status == 401
            assert resp.headers["Content-Type"] == "application/json"
            assert await resp.json() == {"message": "401: Unauthorized", "code": 0}
        async with http.get(
            f"{fake.api_base}/no/such/route", headers={"Authorization": f"Bot {fake.token}"}
        ) as resp:
            assert resp.status == 404
            assert await resp.json() == {"message": "404: Not Found", "code": 0}
        async with http.get(
            f"{fake.api_base}/channels/123/messages",
            headers={"Authorization": f"Bot {fake.token}"},
        ) as resp:
            assert resp.status == 404
            assert await resp.json() == {"message": "Unknown Channel", "code": 10003}
    assert [(r.method, r.path) for r in fake.unknown_routes] == [("GET", "/no/such/route")]
    fake.unknown_routes.clear()  # expected here; the fixture asserts none remain


# ------------------------------------------------------ resume / auth


@pytest.mark.parametrize("how", ["close-4000", "drop-tcp", "op7-reconnect"])
async def test_resume_replays_missed_messages(world: World, how: str) -> None:
    fake = world.fake
    client = recorder()
    async with running_client(fake, client):
        await fake.send_message(world.channel.id, world.alice.id, "before the gap")
        await fake.wait_until(lambda: client.received("before the gap"), what="first message")

        if how == "close-4000":
            assert await fake.disconnect_all(4000) == 1
        elif how == "drop-tcp":
            assert fake.drop_connections() == 1
        else:
            assert fake.send_reconnect() == 1
            await fake.wait_until(lambda: not fake.gateway_connections[0].open, what="close")
        await fake.send_message(world.channel.id, world.alice.id, "during the gap")

        await fake.wait_until(lambda: client.resumed_count == 1, what="RESUMED")
        await fake.wait_until(lambda: client.received("during the gap"), what="replayed message")
        assert fake.resume_count == 1
        assert fake.identify_count == 1
        assert [c.path for c in fake.gateway_connections] == ["/gateway", "/gateway-resume"]
        # The resumed session keeps working.
        await fake.send_message(world.channel.id, world.alice.id, "after the gap")
        await fake.wait_until(lambda: client.received("after the gap"), what="live message")
    assert [m.content for m in client.messages] == [
        "before the gap",
        "during the gap",
        "after the gap",
    ]


async def test_wrong_token_is_login_failure(world: World) -> None:
    client = make_client()
    with pytest.raises(discord.LoginFailure):
        async with running_client(world.fake, client, token="not-the-token"):
            pass
    assert world.fake.requests_for("me")[0].status == 401
    assert world.fake.identify_count == 0


async def _raw_gateway_close_code(fake: FakeDiscord, frames: list[dict], query: str) -> int | None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{fake.gateway_url}?{query}") as ws,
    ):
        hello = await ws.receive(timeout=5)
        if hello.type is aiohttp.WSMsgType.BINARY:
            hello_payload = json.loads(zlib.decompressobj().decompress(hello.data))
            assert hello_payload["op"] == 10
        elif hello.type is aiohttp.WSMsgType.TEXT:
            assert json.loads(hello.data)["op"] == 10
        for frame in frames:
            await ws.send_json(frame)
        while True:
            msg = await ws.receive(timeout=5)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return ws.close_code


@pytest.mark.parametrize(
    ("frames", "query", "code"),
    [
        ([{"op": 2, "d": {"token": "bad", "intents": 513, "properties": {}}}], "v=10", 4004),
        ([{"op": 3, "d": {"status": "online"}}], "v=10", 4003),
        ([{"op": 99, "d": None}], "v=10", 4001),
        ([], "v=9&encoding=json", 4012),
    ],
    ids=["bad-token", "not-identified", "unknown-op", "old-version"],
)
async def test_gateway_close_codes(fake: FakeDiscord, frames, query, code) -> None:
    assert await _raw_gateway_close_code(fake, frames, query) == code


async def test_disallowed_privileged_intent(fake: FakeDiscord) -> None:
    fake.config.privileged_intents = 0
    frame = {"op": 2, "d": {"token": fake.token, "intents": 1 << 15, "properties": {}}}
    assert await _raw_gateway_close_code(fake, [frame], "v=10&compress=zlib-stream") == 4014


async def test_missing_heartbeats_time_out(fake: FakeDiscord) -> None:
    fake.config.heartbeat_interval_ms = 100
    fake.config.heartbeat_timeout_factor = 1.5
    assert await _raw_gateway_close_code(fake, [], "v=10") == 4009


async def test_resume_of_unknown_session_is_invalid_session(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{fake.gateway_url}?v=10") as ws:
        assert (await ws.receive_json(timeout=5))["op"] == 10
        await ws.send_json({"op": 6, "d": {"token": fake.token, "session_id": "nope", "seq": 3}})
        assert await ws.receive_json(timeout=5) == {"op": 9, "d": False, "s": None, "t": None}
    assert fake.resume_count == 1


async def test_refused_gateway_answers_http_then_accepts_again(world: World) -> None:
    fake = world.fake
    fake.refuse_gateway()
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{fake.gateway_url}?v=10")
        assert refused.value.status == 503
        # REST is still up: the gateway alone is down.
        async with http.get(
            f"{fake.api_base}/users/@me", headers={"Authorization": f"Bot {fake.token}"}
        ) as resp:
            assert resp.status == 200
    assert fake.gateway_refused_count == 1 and fake.gateway_connections == []

    fake.refuse_gateway(False)
    client = recorder()
    async with running_client(fake, client):
        assert client.is_ready()
    assert fake.identify_count == 1


async def _identified_raw_socket(fake: FakeDiscord, http: aiohttp.ClientSession):
    ws = await http.ws_connect(f"{fake.gateway_url}?v=10")
    assert (await ws.receive_json(timeout=5))["op"] == 10
    await ws.send_json({"op": 2, "d": {"token": fake.token, "intents": 513, "properties": {}}})
    while (await ws.receive_json(timeout=5)).get("t") != "GUILD_CREATE":
        pass
    return ws


async def test_malformed_dispatches_go_out_as_given(world: World) -> None:
    fake = world.fake
    async with aiohttp.ClientSession() as http:
        ws = await _identified_raw_socket(fake, http)
        try:
            assert fake.send_malformed_message_update(world.channel.id) == 1
            assert fake.send_malformed_channel_update(world.guild.id) == 1
            update = await ws.receive_json(timeout=5)
            channel_update = await ws.receive_json(timeout=5)
        finally:
            await ws.close()
    assert update["op"] == 0 and update["t"] == "MESSAGE_UPDATE"
    assert update["d"]["reactions"] == 5 and update["d"]["author"] == "not-a-user-object"
    assert update["d"]["channel_id"] == str(world.channel.id)
    assert channel_update["t"] == "CHANNEL_UPDATE" and "id" not in channel_update["d"]
    assert channel_update["s"] == update["s"] + 1  # numbered like any dispatch: resumable


async def test_discord_py_cannot_parse_the_malformed_dispatches(world: World) -> None:
    """What Clara has to survive: the parser's error escapes Client.connect()."""
    fake = world.fake
    for send, error in (
        (lambda: fake.send_malformed_message_update(world.channel.id), TypeError),
        (lambda: fake.send_malformed_channel_update(world.guild.id), KeyError),
    ):
        client = recorder()
        task = asyncio.create_task(client.start(fake.token))
        try:
            await fake.wait_until(client.is_ready, what="READY")
            assert send() == 1
            with pytest.raises(error):
                await asyncio.wait_for(task, 5)
        finally:
            await client.close()
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await task


# ---------------------------------------------------------------- threads


async def test_thread_started_from_a_message(world: World) -> None:
    fake, general, alice, bob = world.fake, world.channel, world.alice, world.bob
    client = recorder()
    async with running_client(fake, client):
        starter = await fake.send_message(general.id, alice.id, "Let's plan the trip")
        await fake.wait_until(lambda: client.received(starter.content), what="starter")
        thread = fake.create_thread(general.id, "Trip", starter_message_id=starter.id)
        # As on Discord: the thread takes its starter message's id.
        assert thread.id == starter.id and thread.parent_id == general.id
        assert thread.owner_id == alice.id and fake.get_message(starter.id).thread_id == thread.id
        await fake.wait_until(lambda: client.threads, what="on_thread_create")

        seen = client.get_channel(thread.id)
        assert isinstance(seen, discord.Thread) and seen is client.threads[0]
        assert seen.type is discord.ChannelType.public_thread and seen.name == "Trip"
        assert seen.parent is not None and seen.parent.id == general.id
        assert seen.guild.id == world.guild.id and seen.owner_id == alice.id
        assert not seen.archived and not seen.locked and seen.auto_archive_duration == 1440
        assert seen.created_at is not None
        # The starter gets a MESSAGE_UPDATE carrying HAS_THREAD and the thread.
        await fake.wait_until(lambda: client.edits, what="starter MESSAGE_UPDATE")
        assert client.edits[0].message_id == starter.id
        assert client.edits[0].message.flags.has_thread
        assert seen.starter_message is not None  # cached from MESSAGE_CREATE
        assert seen.starter_message.content == "Let's plan the trip"

        inside = await fake.send_message(thread.id, bob.id, "Lisbon first?")
        await fake.wait_until(lambda: client.received("Lisbon first?"), what="thread message")
        got = client.received("Lisbon first?")
        assert got is not None and isinstance(got.channel, discord.Thread)
        assert got.channel.id == thread.id and got.channel.parent_id == general.id
        assert got.guild is not None and isinstance(got.author, discord.Member)
        assert inside.channel_id == thread.id and inside.guild_id == world.guild.id

        # The bot answers in the thread (a reply to the thread message).
        answer = await got.reply("Sure!")
        stored = fake.get_message(answer.id)
        assert stored.channel_id == thread.id and stored.referenced_message_id == inside.id
        assert [m.content for m in fake.messages_in(thread.id)] == ["Lisbon first?", "Sure!"]
        assert [m.content for m in fake.messages_in(general.id)] == ["Let's plan the trip"]
        assert thread.message_count == 2 and thread.member_ids == [alice.id, bob.id, fake.bot.id]

        # REST: the starter message lives in the parent channel, under the thread's id.
        assert seen.parent is not None
        fetched = await seen.parent.fetch_message(thread.id)
        assert fetched.id == starter.id and fetched.content == "Let's plan the trip"
        assert fetched.flags.has_thread
        assert fetched.thread is not None and fetched.thread.id == thread.id
        with pytest.raises(discord.NotFound):
            await seen.fetch_message(thread.id)  # not inside the thread itself
        history = [m.content async for m in seen.history(limit=10)]
        assert history == ["Sure!", "Lisbon first?"]
        fetched_thread = await client.fetch_channel(thread.id)
        assert isinstance(fetched_thread, discord.Thread)
        assert fetched_thread.parent_id == general.id and fetched_thread.message_count == 2
        assert fetched_thread.member_count == 3

        with pytest.raises(DiscordAPIError) as twice:
            fake.create_thread(general.id, "Again", starter_message_id=starter.id)
        assert twice.value.code == 160004


async def test_active_threads_reach_new_connections(world: World) -> None:
    fake, general = world.fake, world.channel
    starter = await fake.send_message(general.id, world.alice.id, "topic")
    from_message = fake.create_thread(general.id, "From a message", starter_message_id=starter.id)
    standalone = fake.create_thread(general.id, "Standalone", owner_id=world.bob.id)
    assert standalone.id != standalone.parent_id and standalone.starter_message_id is None
    client = recorder()
    async with running_client(fake, client):
        await fake.wait_until(lambda: client.ready_count == 1, what="on_ready")
        [guild] = client.guilds
        assert {t.id for t in guild.threads} == {from_message.id, standalone.id}
        assert not client.threads  # in GUILD_CREATE: no on_thread_create
        # Threads are not guild channels.
        assert {c.id for c in guild.channels} == set(world.guild.channels)
        assert {t.name for t in await guild.active_threads()} == {"From a message", "Standalone"}
        thread = client.get_channel(standalone.id)
        assert isinstance(thread, discord.Thread) and thread.owner_id == world.bob.id
        assert thread.starter_message is None
        await thread.send("hello thread")
        assert [m.content for m in fake.bot_messages(standalone.id)] == ["hello thread"]


async def test_bot_starts_a_thread_from_a_message(world: World) -> None:
    fake, general = world.fake, world.channel
    client = recorder()
    async with running_client(fake, client):
        question = await fake.send_message(general.id, world.alice.id, "long topic")
        await fake.wait_until(lambda: client.received("long topic"), what="message")
        message = client.received("long topic")
        assert message is not None
        thread = await message.create_thread(name="Long topic", auto_archive_duration=60)
        assert thread.id == question.id and thread.owner_id == fake.bot.id
        assert thread.auto_archive_duration == 60
        stored = fake.state.channels[thread.id]
        assert stored.is_thread and stored.name == "Long topic"
        assert fake.requests_for("thread")[0].status == 201
        await fake.wait_until(lambda: client.threads, what="on_thread_create")
        with pytest.raises(discord.HTTPException) as twice:
            await message.create_thread(name="Again")
        assert twice.value.code == 160004


# ------------------------------------------------------------ interactions


async def test_slash_command_round_trip(world: World) -> None:
    fake = world.fake
    client = make_client()
    tree = app_commands.CommandTree(client)

    @tree.command(name="ask", description="Ask Clara")
    async def ask(interaction: discord.Interaction, question: str) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content=f"answer to {question}")
        await interaction.followup.send("and one more thing")

    async with running_client(fake, client):
        synced = await tree.sync()
        assert [c.name for c in synced] == ["ask"]
        interaction = await fake.send_slash_command(
            world.channel.id, world.alice.id, "ask", {"question": "life"}
        )
        await fake.wait_until(lambda: interaction.followup_message_ids, what="follow-up")

    original = fake.get_message(interaction.original_message_id or 0)
    assert fake.message_history(original.id) == ["", "answer to life"]
    assert original.interaction_metadata is not None
    [followup_id] = interaction.followup_message_ids
    assert fake.get_message(followup_id).content == "and one more thing"
    assert interaction.callback is not None and int(interaction.callback.type) == 5


async def test_slow_interaction_answer_is_unknown_interaction(world: World) -> None:
    fake = world.fake
    fake.config.interaction_ack_timeout = 0.1
    client = make_client()
    tree = app_commands.CommandTree(client)
    errors: list[Exception] = []

    @tree.command(name="slow", description="Too slow")
    async def slow(interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.2)
        await interaction.response.send_message("late")

    @tree.error
    async def on_error(interaction: discord.Interaction, error: Exception) -> None:
        errors.append(error)

    async with running_client(fake, client):
        guild = discord.Object(world.guild.id)
        tree.copy_global_to(guild=guild)
        assert [c.guild_id for c in await tree.sync(guild=guild)] == [world.guild.id]
        interaction = await fake.send_slash_command(world.channel.id, world.alice.id, "slow")
        await fake.wait_until(lambda: errors, what="command error")

    original = getattr(errors[0], "original", errors[0])
    assert isinstance(original, discord.NotFound) and original.code == 10062
    assert not interaction.acknowledged
    assert fake.requests_for("interaction")[0].error_code == 10062
