"""The transport's connection slots (``_Slots``): a free slot is taken at
once, waiters are served in order, and a cancelled waiter neither loses a slot
nor swallows its cancellation."""

from __future__ import annotations

import asyncio

import pytest

from wesog_async._transport import _Slots


async def test_waiters_are_served_in_order_and_no_more_than_the_slots_run() -> None:
    slots, order, running, peak = _Slots(2), [], 0, 0

    async def job(i: int) -> None:
        nonlocal running, peak
        if not slots.try_take():
            await slots.take()
        try:
            running += 1
            peak = max(peak, running)
            order.append(i)
            await asyncio.sleep(0)
            running -= 1
        finally:
            slots.give()

    await asyncio.gather(*(job(i) for i in range(20)))
    assert order == list(range(20)) and peak == 2 and slots.free == 2


async def test_a_newcomer_does_not_jump_the_queue() -> None:
    slots = _Slots(1)
    assert slots.try_take()
    waiter = asyncio.ensure_future(slots.take())
    await asyncio.sleep(0)
    slots.give()  # handed to the waiter, not freed
    assert not slots.try_take() and slots.free == 0
    await waiter
    slots.give()
    assert slots.free == 1


@pytest.mark.parametrize("handed", [False, True])
async def test_a_cancelled_waiter_keeps_its_cancellation_and_loses_no_slot(handed: bool) -> None:
    slots = _Slots(1)
    assert slots.try_take()
    first = asyncio.ensure_future(slots.take())
    second = asyncio.ensure_future(slots.take())
    await asyncio.sleep(0)
    if handed:
        slots.give()  # the first waiter is handed the slot, then cancelled
    first.cancel()
    if not handed:
        slots.give()  # the cancelled one is skipped: the second gets the slot
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)
    slots.give()
    assert slots.free == 1 and slots.try_take()
