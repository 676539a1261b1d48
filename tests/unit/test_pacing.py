"""Write pacing: per-channel spacing, a global token bucket, priority order."""

from __future__ import annotations

import asyncio
import time

from clara_core.discord_adapter.pacing import ChannelPacer, GlobalBudget, Priority


async def test_channel_slots_are_spaced_and_channels_independent():
    pacer = ChannelPacer(0.2)
    stamps: dict[int, list[float]] = {1: [], 2: []}

    async def write(channel: int) -> None:
        async with pacer.slot(channel):
            stamps[channel].append(time.monotonic())

    await asyncio.gather(*(write(c) for c in (1, 1, 1, 2, 2)))
    gaps = [b - a for a, b in zip(stamps[1], stamps[1][1:], strict=False)]
    assert all(g >= 0.19 for g in gaps)
    assert abs(stamps[2][0] - stamps[1][0]) < 0.1  # another channel didn't wait


async def test_global_budget_bounds_the_rate():
    budget = GlobalBudget(rate=100, burst=5)
    t0 = time.monotonic()
    await asyncio.gather(*(budget.acquire() for _ in range(25)))
    elapsed = time.monotonic() - t0
    assert elapsed >= (25 - 5) / 100 * 0.95  # burst of 5, then 100/s


async def test_first_messages_jump_the_queue_of_edits():
    budget = GlobalBudget(rate=50, burst=1)
    await budget.acquire()  # drain the bucket
    order: list[str] = []

    async def take(label: str, priority: Priority) -> None:
        await budget.acquire(priority)
        order.append(label)

    edits = [asyncio.create_task(take(f"edit{i}", Priority.EDIT)) for i in range(3)]
    await asyncio.sleep(0)
    typing = asyncio.create_task(take("typing", Priority.TYPING))
    first = asyncio.create_task(take("first", Priority.FIRST_MESSAGE))
    await asyncio.gather(*edits, typing, first)
    assert order[0] == "first" and order[-1] == "typing"
    assert order[1:4] == ["edit0", "edit1", "edit2"]


async def test_a_cancelled_waiter_does_not_consume_a_token():
    budget = GlobalBudget(rate=5, burst=1)  # one token per 200 ms
    await budget.acquire()
    waiter = asyncio.create_task(budget.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    t0 = time.monotonic()
    await budget.acquire()
    # one refill (~0.2 s), not two: the cancelled waiter's turn was skipped
    assert time.monotonic() - t0 < 0.3
