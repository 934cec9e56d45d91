"""The emulator's mutable state: tenants, their stores, queues and operations.

:mod:`~wesog_async.emulator.worker` sees this state only through its
``WorkerHost`` protocol, so the two modules do not import each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Mapping
from typing import Any

from wesog_async.emulator.config import EmulatorConfig
from wesog_async.emulator.counters import Counters
from wesog_async.emulator.faults import FaultInjector
from wesog_async.emulator.operations import ItemKind, Items, Operation
from wesog_async.emulator.tenant import Tenant
from wesog_async.emulator.worker import run_worker


class EmulatorState:
    """Everything one emulator instance holds; reachable as ``app[STATE_KEY]``."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.counters = Counters()
        self.faults = FaultInjector(seed=config.seed)
        if config.faults:
            self.faults.load_spec(config.faults)
        self.rng = random.Random(config.seed)
        self.paused = False
        # Bumped by reset(): a worker drops an operation from an older generation.
        self.generation = 0
        # Set when the app shuts down, so that wait=true requests stop waiting.
        self.closing = asyncio.Event()
        self._tenants = {key: Tenant(i) for i, key in enumerate(config.api_keys)}
        self._op_ids = itertools.count(1)
        self._workers: list[asyncio.Task[None]] = []

    # -- tenants -----------------------------------------------------------
    def tenant(self, api_key: str | None) -> Tenant | None:
        """The tenant of ``api_key``, or ``None`` for a missing/unknown key."""
        return None if api_key is None else self._tenants.get(api_key)

    def tenant_index(self, api_key: str) -> int:
        """The index used in ``counters.applies_by_image`` keys for ``api_key``."""
        return self._tenants[api_key].index

    @property
    def tenants(self) -> tuple[Tenant, ...]:
        return tuple(self._tenants.values())

    def images(self, api_key: str) -> Mapping[str, dict[str, Any]]:
        """A read-only live view of the tenant's images (do not mutate the dicts)."""
        return self._tenants[api_key].store.view()

    # -- operations ----------------------------------------------------------
    def submit(
        self,
        tenant: Tenant,
        kind: ItemKind,
        items: Items,
        *,
        wait: bool,
        urgent: bool,
        strict: bool,
    ) -> Operation:
        """Create an operation and queue it (``urgent`` at the head)."""
        op = Operation(
            op_id=next(self._op_ids),
            tenant=tenant.index,
            kind=kind,
            items=items,
            do_wait=wait,
            do_urgent=urgent,
            do_strict=strict,
            generation=self.generation,
        )
        tenant.ops[op.op_id] = op
        if urgent:
            tenant.queue.appendleft(op)
        else:
            tenant.queue.append(op)
        self.counters.ops_created += 1
        tenant.wakeup.set()
        return op

    def cancel(self, tenant: Tenant, op: Operation) -> bool:
        """D13: cancel a queued operation; ``False`` once it has started."""
        if op.is_started or op.is_finished:
            return False
        with contextlib.suppress(ValueError):
            tenant.queue.remove(op)
        op.cancel()
        self.counters.ops_cancelled += 1
        return True

    # -- control -------------------------------------------------------------
    def pause_processing(self) -> None:
        """Hold every queue: queued operations stay queued (running ones go on)."""
        self.paused = True

    def resume_processing(self) -> None:
        self.paused = False
        for tenant in self._tenants.values():
            tenant.wakeup.set()

    def reset(self) -> None:
        """Forget all images, operations, counters and faults; resume processing."""
        self.generation += 1
        for tenant in self._tenants.values():
            tenant.clear()
        self.counters.reset()
        self.faults.clear()
        self.resume_processing()

    def stats(self) -> dict[str, Any]:
        """The counters snapshot plus a few gauges (served at /_emulator/stats)."""
        snap = self.counters.snapshot()
        snap["images_stored"] = sum(len(t.store) for t in self._tenants.values())
        snap["ops_queued"] = sum(len(t.queue) for t in self._tenants.values())
        snap["paused"] = self.paused
        return snap

    # -- lifecycle (called by the app) ----------------------------------------
    def start_workers(self) -> None:
        self.closing.clear()
        for tenant in self._tenants.values():
            for _ in range(self.config.workers_per_tenant):
                self._workers.append(asyncio.create_task(run_worker(self, tenant)))

    async def stop_workers(self) -> None:
        self.closing.set()
        workers, self._workers = self._workers, []
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
