"""Helpers for running a real discord.py client against a :class:`FakeDiscord`."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

import discord
import discord.http
from discord.gateway import DiscordWebSocket

from clara_core.discord_adapter.endpoints import configure_discord_endpoints

from .server import FakeDiscord

ClientT = TypeVar("ClientT", bound=discord.Client)


@contextlib.contextmanager
def discord_py_pointed_at(fake: FakeDiscord) -> Iterator[None]:
    """Point discord.py (process-wide) at ``fake``; restore the previous endpoints after."""
    previous_base = discord.http.Route.BASE
    previous_gateway = str(DiscordWebSocket.DEFAULT_GATEWAY)
    configure_discord_endpoints(fake.api_base, fake.gateway_url)
    try:
        yield
    finally:
        configure_discord_endpoints(previous_base, previous_gateway)


@contextlib.asynccontextmanager
async def running_client(
    fake: FakeDiscord,
    client: ClientT,
    *,
    token: str | None = None,
    ready_timeout: float = 10.0,
    close_timeout: float = 10.0,
) -> AsyncIterator[ClientT]:
    """``client.start()`` in a task, wait for READY (plus GUILD_CREATEs), yield,
    then close the client and await the task so nothing leaks.

    Errors from ``start`` (e.g. ``discord.LoginFailure``) propagate.  Pass
    ``guild_ready_timeout=0.05`` (or so) to the client: discord.py otherwise waits
    2 s after the last GUILD_CREATE before ``on_ready``.
    """
    task = asyncio.create_task(client.start(token or fake.token), name="discord-client")
    try:
        deadline = time.monotonic() + ready_timeout
        while not client.is_ready():
            if task.done():
                task.result()  # raises what start() raised
                raise RuntimeError("discord client stopped before it was ready")
            if time.monotonic() > deadline:
                raise TimeoutError(f"discord client not ready after {ready_timeout}s")
            await asyncio.sleep(0.01)
        yield client
    finally:
        await client.close()
        done, _ = await asyncio.wait({task}, timeout=close_timeout)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif not task.cancelled():
            error = task.exception()  # always retrieve it
            if error is not None and sys.exc_info()[1] is None:
                raise error
