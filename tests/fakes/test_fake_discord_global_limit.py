"""The fake's global limit counts like Discord's strictest reading: a sliding second."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.fakes.fake_discord import FakeDiscord


async def _burst(http: aiohttp.ClientSession, url: str, n: int) -> list[int]:
    async def one() -> int:
        async with http.get(url) as resp:
            return resp.status

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def test_global_limit_is_a_sliding_second():
    async with FakeDiscord(global_rate_limit=10) as fake:
        url = f"{fake.api_base}/users/@me"
        headers = {"Authorization": f"Bot {fake.token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            t0 = time.monotonic()
            assert await _burst(http, url, 5) == [200] * 5
            await asyncio.sleep(0.5 - (time.monotonic() - t0))
            assert await _burst(http, url, 5) == [200] * 5
            # A fixed window opened at t0 would reset here and take 10 more; in a
            # sliding second the 5 from t0+0.5 still count.
            await asyncio.sleep(1.05 - (time.monotonic() - t0))
            statuses = await _burst(http, url, 8)
            assert sorted(statuses) == [200] * 5 + [429] * 3
            async with http.get(url) as resp:
                assert resp.status == 429
                body = await resp.json()
            assert body["global"] is True
            # Retry when the oldest counted request leaves the window (~t0+1.5 s).
            assert 0.3 < body["retry_after"] <= 0.5
        assert fake.rate_limited_count.earned_global == 4
