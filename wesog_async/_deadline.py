"""Response deadlines: every attempt of a transport bounded by one loop timer.

``asyncio.timeout`` arms a timer per attempt. A 30 s deadline cancelled after a
few milliseconds stays in the loop's timer heap until the heap is cleaned, so
each attempt paid a heap push, a cancel and its share of the clean-up, and
every other timer of the loop a deeper heap: about 5% of the client's CPU in a
bulk upload to a fast server (W1). Here the attempts that share a response
time wait in one FIFO, where their deadlines are in the order they were
armed, and a single timer is set for the earliest deadline of all; an attempt
that ends leaves its FIFO in O(1) and touches no timer. The timer fires about
once per response time while requests flow, and finds nothing due when none
hung.

An expiry does what ``asyncio.timeout``'s does: it cancels the attempt's task,
and leaving the block turns that cancellation into :class:`TimeoutError`,
unless the task was also cancelled by someone else (then the
``CancelledError`` goes on).
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from types import TracebackType
from typing import Final

__all__ = ["RESPONSE_DEADLINE", "Deadline", "Deadlines"]


class Deadline:
    """The response deadline of one attempt, a ``with`` block in the attempt's
    task: it counts nothing until :meth:`arm` (the connector, once the request
    has its connection), and while the block runs it is
    :data:`RESPONSE_DEADLINE` of the task."""

    __slots__ = ("_cancelling", "_clock", "_queue", "_task", "_token", "expired", "seconds", "when")

    def __init__(self, clock: Deadlines, seconds: float) -> None:
        self._clock = clock
        #: The response time: the deadline is this long after :meth:`arm`.
        self.seconds = seconds
        #: The loop time it expires at, once armed.
        self.when = math.inf
        #: Whether it expired (the task was cancelled for it).
        self.expired = False
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._queue: dict[Deadline, None] | None = None
        self._token: contextvars.Token[Deadline | None] | None = None

    def __enter__(self) -> Deadline:
        self._token = RESPONSE_DEADLINE.set(self)
        return self

    def arm(self) -> None:
        """Start the countdown now (again, if it had started)."""
        if self.expired:
            return  # the task is already being cancelled for it
        if self._task is None:
            task = asyncio.current_task()
            if task is None:
                raise RuntimeError("a response deadline must be armed inside a task")
            self._task = task
            # Cancellations asked for before: not ours to absorb on expiry.
            self._cancelling = task.cancelling()
        queue = self._queue
        if queue is not None:
            del queue[self]
        self._queue = self._clock._add(self)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            RESPONSE_DEADLINE.reset(self._token)
            self._token = None
        # Handles scheduled inside the block keep a copy of its context, and
        # with it this object: it lets go of the task.
        task, self._task = self._task, None
        queue = self._queue
        if queue is not None:
            self._queue = None
            del queue[self]
        elif self.expired:
            assert task is not None
            # asyncio.timeout's rule: the cancellation is ours only when no
            # other was requested since the deadline was armed.
            if task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc

    def _expire(self) -> None:
        self._queue = None
        self.expired = True
        assert self._task is not None
        self._task.cancel()


#: The deadline of the attempt under way in this task (``None``: none), armed
#: by :class:`~wesog_async._http.DeadlineConnector` once connected.
RESPONSE_DEADLINE: Final[contextvars.ContextVar[Deadline | None]] = contextvars.ContextVar(
    "wesog_async_response_deadline", default=None
)


class Deadlines:
    """The deadlines of one transport's attempts, on one timer of ``loop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        #: Armed deadlines by response time, each FIFO in expiry order.
        self._queues: dict[float, dict[Deadline, None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        # The timer runs in a context of its own: one copied where it is set
        # (inside an attempt) would keep that attempt alive until it fires.
        self._context = contextvars.Context()

    def deadline(self, seconds: float) -> Deadline:
        """A deadline ``seconds`` after it is armed (a ``with`` block)."""
        return Deadline(self, seconds)

    def pending(self) -> int:
        """How many deadlines are armed and not yet over."""
        return sum(map(len, self._queues.values()))

    def _add(self, deadline: Deadline) -> dict[Deadline, None]:
        seconds = deadline.seconds
        when = deadline.when = self._loop.time() + seconds
        queue = self._queues.get(seconds)
        if queue is None:
            queue = self._queues[seconds] = {}
        queue[deadline] = None
        if when < self._timer_at:
            self._set_timer(when)
        return queue

    def _set_timer(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._fire, context=self._context)
        self._timer_at = when

    def _fire(self) -> None:
        # The loop runs a timer up to its clock resolution early: what the
        # timer was set for is due as well.
        now = max(self._loop.time(), self._timer_at)
        self._timer, self._timer_at = None, math.inf
        due: list[Deadline] = []
        earliest = math.inf
        for queue in self._queues.values():
            for deadline in queue:  # in expiry order: up to the first not due
                if deadline.when > now:
                    earliest = min(earliest, deadline.when)
                    break
                due.append(deadline)
        for deadline in due:
            armed = deadline._queue
            assert armed is not None
            del armed[deadline]
            deadline._expire()
        for seconds in [s for s, queue in self._queues.items() if not queue]:
            del self._queues[seconds]
        if earliest < math.inf:
            self._set_timer(earliest)
