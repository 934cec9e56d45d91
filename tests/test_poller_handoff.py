"""The poller's hand-off of due operations to its workers: straight to an
idle worker's future, else a backlog; an operation handed to a worker that is
cancelled before it runs goes on to another worker, never lost."""

from __future__ import annotations

import asyncio

from wesog_async._models import Operation
from wesog_async._poller import Poller
from wesog_async._retry import PollPolicy
from wesog_async._stats import ClientStats
from wesog_async._tracked import Tracked


def poller_polling_into(polled: list[int]) -> Poller:
    # No transport is reached: _poll is replaced by a recorder.
    poller = Poller(None, ClientStats(), PollPolicy(), max_in_flight=2)  # type: ignore[arg-type]

    async def poll(tracked: Tracked) -> None:
        assert tracked.op_id is not None
        polled.append(tracked.op_id)

    poller._poll = poll  # type: ignore[method-assign]
    return poller


def tracked(op_id: int) -> Tracked:
    future: asyncio.Future[Operation] = asyncio.get_running_loop().create_future()
    return Tracked(op_id, future, 1, PollPolicy())


async def test_due_ops_go_to_idle_workers_then_wait_in_the_backlog() -> None:
    polled: list[int] = []
    poller = poller_polling_into(polled)
    workers = [asyncio.ensure_future(poller._worker()) for _ in range(2)]
    await asyncio.sleep(0)  # both idle
    for op_id in (1, 2, 3, 4):
        poller._hand(tracked(op_id))
    for _ in range(3):
        await asyncio.sleep(0)
    assert sorted(polled) == [1, 2, 3, 4]
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)


async def test_an_op_handed_to_a_worker_cancelled_before_it_ran_goes_to_another() -> None:
    polled: list[int] = []
    poller = poller_polling_into(polled)
    first, second = (asyncio.ensure_future(poller._worker()) for _ in range(2))
    await asyncio.sleep(0)  # both idle, the first one's future ahead
    poller._hand(tracked(7))  # resolves the first worker's future...
    first.cancel()  # ...which is cancelled before it runs
    for _ in range(3):
        await asyncio.sleep(0)
    assert first.cancelled() and polled == [7]  # polled by the second
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
