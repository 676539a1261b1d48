"""Write pacing: per-channel spacing, a global budget held until responses arrive, priority order."""

from __future__ import annotations

import asyncio
import time

import pytest

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


async def test_global_budget_never_exceeds_the_rate_in_any_window():
    budget = GlobalBudget(rate=20, window=0.25)  # 5 per 250 ms
    stamps: list[float] = []

    async def take() -> None:
        grant = await budget.acquire()
        stamps.append(time.monotonic())
        grant.release()  # a request answered at once

    t0 = time.monotonic()
    await asyncio.gather(*(take() for _ in range(17)))
    assert sum(s - t0 < 0.05 for s in stamps) == 5  # the whole allowance at once
    for i, start in enumerate(stamps):  # no 250 ms window holds more than 5
        assert sum(start <= s < start + 0.245 for s in stamps[i:]) <= 5
    assert stamps[-1] - t0 >= 0.75 * 0.95  # 17 grants need 3 more windows


async def test_first_messages_jump_the_queue_of_edits():
    budget = GlobalBudget(rate=20, window=0.05)  # one grant per 50 ms
    (await budget.acquire()).release()  # use the allowance
    order: list[str] = []

    async def take(label: str, priority: Priority) -> None:
        (await budget.acquire(priority)).release()
        order.append(label)

    edits = [asyncio.create_task(take(f"edit{i}", Priority.EDIT)) for i in range(3)]
    await asyncio.sleep(0)
    typing = asyncio.create_task(take("typing", Priority.TYPING))
    first = asyncio.create_task(take("first", Priority.FIRST_MESSAGE))
    await asyncio.gather(*edits, typing, first)
    assert order[0] == "first" and order[-1] == "typing"
    assert order[1:4] == ["edit0", "edit1", "edit2"]


async def test_a_cancelled_waiter_does_not_consume_a_token():
    budget = GlobalBudget(rate=5, window=0.2)  # one grant per 200 ms
    (await budget.acquire()).release()
    waiter = asyncio.create_task(budget.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    t0 = time.monotonic()
    (await budget.acquire()).release()
    # one refill (~0.2 s), not two: the cancelled waiter's turn was skipped
    assert time.monotonic() - t0 < 0.3


async def test_has_room_leaves_headroom_for_waited_on_requests():
    budget = GlobalBudget(rate=20, window=0.2)  # 4 per 200 ms
    assert budget.has_room(headroom=2)
    (await budget.acquire()).release()
    (await budget.acquire()).release()
    assert not budget.has_room(headroom=2)  # two stay free for waited-on requests
    assert budget.has_room()
    (await budget.acquire()).release()
    (await budget.acquire()).release()
    assert not budget.has_room()  # the window is full: an optional request is skipped
    await asyncio.sleep(0.21)
    assert budget.has_room(headroom=3)


async def test_a_grant_is_held_while_its_request_is_in_flight():
    budget = GlobalBudget(rate=5, window=0.1)  # 1 per 100 ms
    held = await budget.acquire()
    waiter = asyncio.create_task(budget.acquire())
    await asyncio.sleep(0.35)  # 3.5 windows: a log of grant times would have let it go
    assert not waiter.done()
    released_at = time.monotonic()
    held.release()
    (await waiter).release()
    assert time.monotonic() - released_at >= 0.095  # a full window after the response


async def test_a_waiter_cancelled_as_it_is_granted_gives_the_place_back():
    budget = GlobalBudget(rate=1, window=0.0)  # a place is free again once answered
    held = await budget.acquire()
    waiter = asyncio.create_task(budget.acquire())
    await asyncio.sleep(0)  # waiting
    held.release()  # the waiter is granted at once...
    waiter.cancel()  # ...and cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert budget.in_use == 0  # not leaked: the next request gets through
    (await asyncio.wait_for(budget.acquire(), 0.5)).release()
