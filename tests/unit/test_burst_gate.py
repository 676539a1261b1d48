"""Request starts are spread over event-loop iterations, never delayed otherwise."""

from __future__ import annotations

import asyncio

from clara_core.llm.providers.burst import BurstGate


async def _iterations_until_admitted(gate: BurstGate, n: int) -> list[int]:
    tick = 0
    admitted: list[int] = []

    async def ticker() -> None:
        nonlocal tick
        while True:
            await asyncio.sleep(0)
            tick += 1

    async def start() -> None:
        await gate.wait()
        admitted.append(tick)

    counter = asyncio.create_task(ticker())
    await asyncio.gather(*(start() for _ in range(n)))
    counter.cancel()
    return admitted


async def test_a_burst_is_admitted_a_few_per_iteration():
    admitted = await _iterations_until_admitted(BurstGate(per_tick=4), 20)
    per_iteration = {t: admitted.count(t) for t in set(admitted)}
    assert len(admitted) == 20
    assert max(per_iteration.values()) <= 4
    assert len(per_iteration) >= 5  # spread over at least five iterations


async def test_a_lone_request_never_waits():
    gate = BurstGate(per_tick=4)
    for _ in range(10):  # sequential turns: each passes at once
        waiter = asyncio.ensure_future(gate.wait())
        await asyncio.sleep(0)
        assert waiter.done()
        await asyncio.sleep(0)  # the next iteration resets the count


async def test_cancelled_waiters_do_not_use_a_slot():
    gate = BurstGate(per_tick=1)
    await gate.wait()
    cancelled = asyncio.ensure_future(gate.wait())
    kept = asyncio.ensure_future(gate.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.wait_for(kept, 1)
    assert kept.done() and not kept.cancelled()
