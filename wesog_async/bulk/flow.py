"""Flow control of one ingestion: counting gates for write requests in flight
and operations pending, the first one sized by AIMD on this ingestion's own
throttles (a 429 answered to one of its writes, reported by the submitter's
``on_throttle``), never on another task's."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Final

# AIMD: the in-flight limit grows back by one after this many good submits.
RECOVER_AFTER: Final = 8


class Gate:
    """A counting limit whose size can change (AIMD) and that can be overdrawn
    (a split batch becomes several operations under one reservation)."""

    def __init__(self, limit: int) -> None:
        self.max = limit
        self.limit = limit
        self.used = 0
        self._ok = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.used < self.limit and not self._waiters:
            self.used += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted, but the waiter is gone: hand it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise

    def release(self, n: int = 1) -> None:
        self.used -= n
        self._wake()

    def force(self, n: int) -> None:
        self.used += n

    def _wake(self) -> None:
        while self._waiters and self.used < self.limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self.used += 1
                fut.set_result(None)

    def throttled(self) -> None:
        """Multiplicative decrease: one of our writes was answered 429."""
        self.limit = max(1, self.limit // 2)
        self._ok = 0

    def succeeded(self) -> None:
        """Additive increase: one of our writes went through unthrottled."""
        if self.limit < self.max:
            self._ok += 1
            if self._ok >= RECOVER_AFTER:
                self._ok = 0
                self.limit += 1
                self._wake()


class Throttles:
    """The throttle signal of one submit: pass :meth:`hit` as ``on_throttle``,
    then :meth:`apply` it to the gate once the submit ended."""

    __slots__ = ("throttled",)

    def __init__(self) -> None:
        self.throttled = False

    def hit(self) -> None:
        self.throttled = True

    def apply(self, gate: Gate) -> bool:
        """Adjust ``gate``; true when it was throttled."""
        if self.throttled:
            gate.throttled()
        else:
            gate.succeeded()
        return self.throttled


__all__ = ["RECOVER_AFTER", "Gate", "Throttles"]
