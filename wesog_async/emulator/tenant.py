"""One tenant (API key) of the emulator: its store, its operations and its queue."""

from __future__ import annotations

import asyncio
from collections import deque

from wesog_async.emulator.operations import Operation
from wesog_async.emulator.store import ImageStore


class Tenant:
    """One API key's world: its images, its operations and its FIFO queue (D24)."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.store = ImageStore()
        self.ops: dict[int, Operation] = {}
        self.queue: deque[Operation] = deque()
        self.wakeup = asyncio.Event()

    def clear(self) -> None:
        self.store.clear()
        self.ops.clear()
        for op in self.queue:
            op.done.set()  # release any wait=true request on a dropped op
        self.queue.clear()
