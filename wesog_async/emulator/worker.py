"""Per-tenant workers: take operations off the queue and apply their items."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from wesog_async.emulator.config import sample_delay_s
from wesog_async.emulator.operations import Item, Operation
from wesog_async.emulator.store import src_is_reachable

if TYPE_CHECKING:
    from wesog_async.emulator.state import EmulatorState, Tenant

# With zero delays a large batch would hold the event loop for its whole run;
# yielding every so many items keeps GET /ops and searches responsive.
_YIELD_EVERY = 256


def apply_item(state: EmulatorState, tenant: Tenant, item: Item, strict: bool) -> str | None:
    """Apply one item to the tenant's store; return its error message or ``None``.

    D17: strict create of an existing id and strict update/delete of a missing
    id fail; non-strict create upserts and non-strict update/delete of a
    missing id is skipped and counted good. D23: a bad ``src`` fails the item.
    """
    store, counters, image_id = tenant.store, state.counters, item.image_id
    exists = image_id in store
    if item.kind == "add":
        if strict and exists:
            return f"image {image_id!r} already exists"
    elif not exists:
        if strict:
            return f"image {image_id!r} not found"
        counters.items_skipped += 1
        return None
    src = item.fields.get("src")
    if item.kind != "del" and src is not None and not src_is_reachable(src):
        return "src unreachable"
    if item.kind in ("add", "put"):
        store.put(image_id, item.fields)
    elif item.kind == "patch":
        store.patch(image_id, item.fields)
    else:
        store.delete(image_id)
    counters.applied(tenant.index, image_id, item.kind, item.fields or None)
    return None


class _Clock:
    """Sleeps on a schedule, so that sleep overshoot does not add up over many items.

    After a stall longer than a whole delay it starts afresh instead of
    catching up, so that every item still takes visible time.
    """

    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._loop = asyncio.get_running_loop()
        self._due = self._loop.time()

    async def pause(self, mean_ms: float) -> None:
        config = self._state.config
        delay = sample_delay_s(mean_ms, config.delay_distribution, self._state.rng)
        now = self._loop.time()
        self._due += delay
        if self._due <= now:
            self._due = now + delay
        await asyncio.sleep(self._due - now)


async def process(state: EmulatorState, tenant: Tenant, op: Operation) -> None:
    """Run one operation to completion (or leave it hanging, for the fault)."""
    op.start()
    clock = _Clock(state)
    if state.config.op_delay_ms > 0:
        await clock.pause(state.config.op_delay_ms)
    if op.never_finish:
        return  # the injected fault: started, never finished, worker released
    item_delay = state.config.item_delay_ms
    for index, item in enumerate(op.items):
        if item_delay > 0:
            await clock.pause(item_delay)
        elif index and index % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
        if op.generation != state.generation:
            op.done.set()  # the emulator was reset under us: drop the op
            return
        error = apply_item(state, tenant, item, op.do_strict)
        if error is not None:
            state.counters.items_failed += 1
        op.record(index, error)
    op.finish()
    state.counters.ops_finished += 1


async def run_worker(state: EmulatorState, tenant: Tenant) -> None:
    """Serve ``tenant``'s queue forever, one operation at a time."""
    while True:
        while state.paused or not tenant.queue:
            tenant.wakeup.clear()
            await tenant.wakeup.wait()
        op = tenant.queue.popleft()
        await process(state, tenant, op)
