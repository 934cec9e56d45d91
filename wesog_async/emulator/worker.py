"""Per-tenant workers: take operations off the queue and apply their items."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
from collections.abc import Mapping
from typing import Any, Protocol

from wesog_async.emulator.config import EmulatorConfig, sample_delay_s
from wesog_async.emulator.counters import Counters
from wesog_async.emulator.operations import ItemKind, Operation
from wesog_async.emulator.store import src_is_reachable
from wesog_async.emulator.tenant import Tenant


class WorkerHost(Protocol):
    """What a worker reads of the emulator's state (``EmulatorState`` is one).

    A protocol, not an import of :mod:`~wesog_async.emulator.state`: the state
    starts the workers, so importing it back would make a cycle.
    """

    @property
    def config(self) -> EmulatorConfig: ...
    @property
    def counters(self) -> Counters: ...
    @property
    def rng(self) -> random.Random: ...
    @property
    def paused(self) -> bool: ...
    @property
    def generation(self) -> int: ...


# With zero delays a large batch would hold the event loop for its whole run;
# yielding every so many items keeps GET /ops and searches responsive.
_YIELD_EVERY = 256

# The shortest sleep between two chunks of items. A timer on the default
# event loop costs tens of microseconds and overshoots by about as much, so a
# sleep per 0.1 ms item ran at a fraction of the configured rate; items are
# applied in chunks of about this much simulated time instead, against a
# monotonic schedule, so that N items take N delays however the sleeps fall.
_QUANTUM_S = 0.001

# Guards the division in _Schedule.done_by against rounding an exact multiple
# of the delay down to the item before.
_EPSILON_S = 1e-9


def apply_item(
    state: WorkerHost,
    tenant: Tenant,
    kind: ItemKind,
    image_id: str,
    fields: Mapping[str, Any],
    strict: bool,
) -> str | None:
    """Apply one item to the tenant's store; return its error message or ``None``.

    D17: strict create of an existing id and strict update/delete of a missing
    id fail; non-strict create upserts and non-strict update/delete of a
    missing id is skipped and counted good. D23: a bad ``src`` fails the item.
    """
    store = tenant.store
    if kind == "add":
        if strict and image_id in store:
            return f"image {image_id!r} already exists"
    elif image_id not in store:
        if strict:
            return f"image {image_id!r} not found"
        state.counters.items_skipped += 1
        return None
    if kind == "del":
        store.delete(image_id)
    else:
        src = fields.get("src")
        if src is not None and not src_is_reachable(src):
            return "src unreachable"
        if kind == "patch":
            store.patch(image_id, fields)
        else:
            store.put(image_id, fields)
    state.counters.applied(tenant.index, image_id, kind, fields or None)
    return None


class _Schedule:
    """When the items of one operation are done, in seconds after the first starts."""

    def __init__(self, state: WorkerHost, count: int) -> None:
        config = state.config
        self.count = count
        self._delay = config.item_delay_ms / 1000.0
        self._ends: list[float] | None = None
        if self._delay > 0 and config.delay_distribution != "fixed":
            delays = (
                sample_delay_s(config.item_delay_ms, config.delay_distribution, state.rng)
                for _ in range(count)
            )
            self._ends = list(itertools.accumulate(delays))

    @property
    def idle(self) -> bool:
        """No item delay: every item is due at once."""
        return self._delay <= 0

    def due(self, done: int) -> float:
        """The time at which the first ``done`` items are finished."""
        if done <= 0:
            return 0.0
        return done * self._delay if self._ends is None else self._ends[done - 1]

    def done_by(self, elapsed: float) -> int:
        """How many items are finished ``elapsed`` seconds after the start."""
        if self._delay <= 0:
            return self.count
        if self._ends is None:
            return min(self.count, int(elapsed / self._delay + _EPSILON_S))
        return bisect.bisect_right(self._ends, elapsed)


def _apply_range(state: WorkerHost, tenant: Tenant, op: Operation, start: int, stop: int) -> None:
    ids, fields = op.items.ids, op.items.fields
    kind, strict, counters = op.kind, op.do_strict, state.counters
    good = 0  # good items not yet counted on the op (no await in between)
    for index in range(start, stop):
        error = apply_item(state, tenant, kind, ids[index], fields[index], strict)
        if error is None:
            good += 1
            continue
        counters.items_failed += 1
        if good:
            op.record_good(good)
            good = 0
        op.record(index, error)
    if good:
        op.record_good(good)


async def _run_items(state: WorkerHost, tenant: Tenant, op: Operation, start: float) -> bool:
    """Apply the items as their time comes (``start`` on the loop's clock);
    ``False`` if the emulator was reset under the operation."""
    loop = asyncio.get_running_loop()
    schedule = _Schedule(state, len(op.items))
    count, index, ready = schedule.count, 0, schedule.done_by(0.0)
    while True:
        if not schedule.idle:
            ready = max(ready, schedule.done_by(loop.time() - start))
        stop = min(ready, index + _YIELD_EVERY)
        _apply_range(state, tenant, op, index, stop)
        index = stop
        if index == count:
            return True
        elapsed = loop.time() - start
        if not schedule.idle:
            ready = max(ready, schedule.done_by(elapsed))
        if ready > index:
            await asyncio.sleep(0)  # more items are due: only let others run first
        else:
            wake = min(max(schedule.due(index + 1), elapsed + _QUANTUM_S), schedule.due(count))
            ready = max(index + 1, schedule.done_by(wake))
            await asyncio.sleep(wake - elapsed)
        if op.generation != state.generation:
            return False


async def process(state: WorkerHost, tenant: Tenant, op: Operation) -> None:
    """Run one operation to completion (or leave it hanging, for the fault)."""
    op.start()
    loop = asyncio.get_running_loop()
    start = loop.time()
    config = state.config
    if config.op_delay_ms > 0:
        start += sample_delay_s(config.op_delay_ms, config.delay_distribution, state.rng)
        await asyncio.sleep(start - loop.time())
        if op.generation != state.generation:
            op.done.set()  # the emulator was reset under us: drop the op
            return
    if op.never_finish:
        return  # the injected fault: started, never finished, worker released
    if not await _run_items(state, tenant, op, start):
        op.done.set()  # the emulator was reset under us: drop the op
        return
    op.finish()
    state.counters.ops_finished += 1


async def run_worker(state: WorkerHost, tenant: Tenant) -> None:
    """Serve ``tenant``'s queue forever, one operation at a time."""
    while True:
        while state.paused or not tenant.queue:
            tenant.wakeup.clear()
            await tenant.wakeup.wait()
        op = tenant.queue.popleft()
        await process(state, tenant, op)
