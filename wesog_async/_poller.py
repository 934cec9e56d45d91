"""The client's single poller task.

One task per client follows every pending operation: a heap of
``(next poll time, op id)``, polling whatever is due with a bounded number of
polls in flight. Several futures on one operation share one poll stream, and a
finished operation is never polled again.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import random
from typing import TYPE_CHECKING

import attrs

from wesog_async import _sansio
from wesog_async._convert import structure_operation
from wesog_async._errors import (
    ClientClosedError,
    NotFoundError,
    OperationError,
    OperationNotFoundError,
    ResponseValidationError,
    WesogError,
)
from wesog_async._models import Operation
from wesog_async._retry import PollPolicy, RetryPolicy, call_with_retries

if TYPE_CHECKING:
    from wesog_async._client import WesogClient

logger = logging.getLogger("wesog_async")

# Weight of the newest observation in the learned completion time.
_LEARN_ALPHA = 0.3
# Aim the first poll this much after the server-reported completion time (a
# round trip on a LAN, a few jitters of the event loop).
_LEARN_MARGIN = 0.005


@attrs.define(eq=False)
class Tracked:
    """Poller-side state of one operation, shared by all its futures."""

    op_id: int | None
    future: asyncio.Future[Operation]
    num_total: int
    policy: PollPolicy
    image_ids: tuple[str, ...] = ()
    latest: Operation | None = None
    submitted_at: float = 0.0
    first_delay: float = 0.0
    polls: int = 0
    polls_without_progress: int = 0
    progress_at: float | None = None
    progress_done: int = 0
    learnable: bool = True
    retry: RetryPolicy | None = None


def _mark_retrieved(fut: asyncio.Future[Operation]) -> None:
    # A failure nobody awaits must not log "exception was never retrieved".
    if not fut.cancelled():
        fut.exception()


class Poller:
    """Follows every pending operation of one client."""

    def __init__(self, client: WesogClient, *, max_in_flight: int = 16) -> None:
        self._client = client
        self._loop = asyncio.get_running_loop()
        self._tracked: dict[int, Tracked] = {}
        self._heap: list[tuple[float, int, int]] = []
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._rng = random.Random()
        # Learned log-ratio of observed completion time over the policy's guess.
        self._log_ratio: float | None = None
        # Learned mean absolute deviation of that log-ratio (0: ops take fixed time).
        self._log_spread = 0.0
        # Before anything is learned: the greatest age at which an op was seen
        # still running with no item done (a lower bound for the others).
        self._unfinished_age = 0.0

    @property
    def pending_count(self) -> int:
        """Operations still followed."""
        return len(self._tracked)

    # -- tracking ----------------------------------------------------------------

    def resolved(self, op: Operation, image_ids: tuple[str, ...], policy: PollPolicy) -> Tracked:
        """A Tracked for an operation already finished (``wait=True`` writes)."""
        fut: asyncio.Future[Operation] = self._loop.create_future()
        fut.set_result(op)
        self._count_finished(op)
        return Tracked(op.op_id, fut, op.num_total, policy, image_ids, latest=op)

    def track(
        self,
        op_id: int,
        *,
        initial: Operation | None,
        num_total: int,
        image_ids: tuple[str, ...] = (),
        policy: PollPolicy | None = None,
        learnable: bool = True,
        retry: RetryPolicy | None = None,
    ) -> Tracked:
        """Follow ``op_id``; an op already followed shares its poll stream."""
        if self._closing:
            raise RuntimeError("the client is closing; no new operations can be followed")
        existing = self._tracked.get(op_id)
        if existing is not None:
            return existing
        if initial is not None and initial.is_finished:
            return self.resolved(
                initial.with_op_id(op_id), image_ids, policy or self._client.poll_policy
            )
        policy = policy or self._client.poll_policy
        fut: asyncio.Future[Operation] = self._loop.create_future()
        fut.add_done_callback(_mark_retrieved)
        if initial is not None:
            num_total = initial.num_total
        tracked = Tracked(
            op_id,
            fut,
            num_total,
            policy,
            image_ids,
            latest=initial,
            submitted_at=self._loop.time(),
            learnable=learnable,
            retry=retry,
        )
        tracked.first_delay = (
            self._first_delay(policy, num_total)
            if learnable
            else policy.first(num_total, None, None)
        )
        self._tracked[op_id] = tracked
        self._schedule(tracked, tracked.first_delay)
        self._ensure_running()
        return tracked

    def _first_delay(self, policy: PollPolicy, num_total: int) -> float:
        guess = policy.first(num_total, None, None)
        if policy.learn and self._log_ratio is not None:
            # Aim below the typical completion time by the observed spread:
            # fixed-time operations get one poll, variable ones an early first
            # look instead of a late one.
            return policy.clamp(guess * math.exp(self._log_ratio - self._log_spread))
        return guess

    def _learned_due(self, tracked: Tracked, due: float) -> float | None:
        """A later poll time for an op that shows no progress yet, when what this
        client learned says it will not be finished at ``due`` (else ``None``)."""
        policy = tracked.policy
        if not (tracked.learnable and policy.learn):
            return None
        latest = tracked.latest
        if latest is not None and latest.num_good + latest.num_bad:
            return None  # items done: progress-aware scheduling takes over
        if self._log_ratio is not None:
            expected = tracked.submitted_at + self._first_delay(policy, tracked.num_total)
        elif self._unfinished_age > due - tracked.submitted_at:
            # Nothing finished yet, but an older op was still running at this
            # age: a younger one will not be done sooner.
            expected = tracked.submitted_at + self._unfinished_age
        else:
            return None
        later = min(expected, due + policy.max_delay)
        return later if later > due + policy.min_delay else None

    def _learn(self, tracked: Tracked) -> None:
        if not (tracked.learnable and tracked.policy.learn):
            return
        op = tracked.latest
        if op is not None and op.idle_ms is not None and op.exec_ms is not None:
            # The server's own timing: when the op really finished. The time
            # this client saw it finished is never earlier than its first poll,
            # so learning from that only ever pushes the first poll later.
            observed = (op.idle_ms + op.exec_ms) / 1000.0 + _LEARN_MARGIN
        else:
            observed = self._loop.time() - tracked.submitted_at
        guess = tracked.policy.first(tracked.num_total, None, None)
        if observed <= 0 or guess <= 0:
            return
        # Aim at the median completion time: a geometric (log-space) average.
        sample = math.log(observed / guess)
        if self._log_ratio is None:
            self._log_ratio = sample
        else:
            deviation = abs(sample - self._log_ratio)
            self._log_ratio += _LEARN_ALPHA * (sample - self._log_ratio)
            self._log_spread += _LEARN_ALPHA * (deviation - self._log_spread)

    def _schedule(self, tracked: Tracked, delay: float) -> None:
        assert tracked.op_id is not None
        heapq.heappush(self._heap, (self._loop.time() + delay, next(self._seq), tracked.op_id))
        self._wakeup.set()

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run(), name="wesog_async-poller")

    # -- the loop ----------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            if not self._heap:
                if not self._tracked:
                    return  # restarted by the next track()
                await self._wakeup.wait()
                continue
            due, _, op_id = self._heap[0]
            delay = due - self._loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wakeup.wait()
                continue
            heapq.heappop(self._heap)
            tracked = self._tracked.get(op_id)
            if tracked is None or tracked.future.done():
                continue
            later = self._learned_due(tracked, due)
            if later is not None:
                # Scheduled before this client had learned how long operations
                # take: wait for the learned finish instead of polling for nothing.
                heapq.heappush(self._heap, (later, next(self._seq), op_id))
                continue
            await self._slots.acquire()
            task = self._loop.create_task(self._poll(tracked), name=f"wesog_async-poll-{op_id}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _poll(self, tracked: Tracked) -> None:
        client = self._client
        op_id = tracked.op_id
        assert op_id is not None
        path = _sansio.op_path(op_id)
        policy = tracked.retry or client.retry_policy

        async def attempt() -> Operation:
            client.stats_counters.polls += 1
            tracked.polls += 1
            resp = await client.request("GET", path, resend_safe=True, retry=_ONE_ATTEMPT)
            return structure_operation(resp.json(), body=resp.body)

        def on_retry(exc: BaseException, _delay: float) -> None:
            client.stats_counters.poll_retries += 1

        try:
            op = await call_with_retries(
                attempt,
                policy=policy,
                resend_safe=True,
                retry_invalid_body=True,
                sleep=client._sleep,
                name=f"poll op {op_id}",
                on_retry=on_retry,
            )
        except NotFoundError as exc:
            self._fail(
                tracked,
                OperationNotFoundError(
                    f"operation {op_id} is unknown to the server (404)"
                    + (
                        f"; it covered {len(tracked.image_ids)} records"
                        if tracked.image_ids
                        else ""
                    ),
                    op_id=op_id,
                    image_ids=tracked.image_ids,
                ),
                cause=exc,
            )
            return
        except ResponseValidationError as exc:
            # F12: the body stays a validation error, now naming the operation.
            self._fail(
                tracked,
                ResponseValidationError(
                    "status body does not fit the model after the retry budget"
                    if exc.errors
                    else str(exc),
                    errors=exc.errors,
                    body=exc.body,
                    op_id=op_id,
                ),
                cause=exc,
            )
            return
        except WesogError as exc:
            # Name the operation: the bare cause (a reset, a 5xx) does not.
            self._fail(
                tracked,
                OperationError(
                    f"polling operation {op_id} failed after the retry budget: {exc}",
                    op_id=op_id,
                ),
                cause=exc,
            )
            return
        finally:
            self._slots.release()
        self._observe(tracked, op.with_op_id(op_id))

    def _observe(self, tracked: Tracked, op: Operation) -> None:
        if tracked.future.done():
            return
        previous = tracked.latest
        tracked.latest = op
        if not op.is_finished and op.num_good + op.num_bad == 0 and tracked.learnable:
            age = self._loop.time() - tracked.submitted_at
            self._unfinished_age = max(self._unfinished_age, age)
        if op.is_finished:
            if tracked.op_id is not None:
                self._tracked.pop(tracked.op_id, None)
            self._learn(tracked)
            self._count_finished(op)
            tracked.future.set_result(op)
            return
        self._schedule(tracked, self._next_delay(tracked, previous, op))

    def _next_delay(self, tracked: Tracked, previous: Operation | None, op: Operation) -> float:
        policy = tracked.policy
        now = self._loop.time()
        done = op.num_good + op.num_bad
        if done > tracked.progress_done and done < op.num_total:
            # Two observations of progress give a rate: aim at the predicted end.
            if tracked.progress_at is not None and previous is not None:
                rate = (done - tracked.progress_done) / max(now - tracked.progress_at, 1e-6)
                remaining = (op.num_total - done) / rate
                tracked.progress_at, tracked.progress_done = now, done
                tracked.polls_without_progress = 0
                return policy.clamp(remaining * 1.05)
            tracked.progress_at, tracked.progress_done = now, done
        tracked.polls_without_progress += 1
        return policy.backoff(
            max(tracked.first_delay, policy.min_delay), tracked.polls_without_progress, self._rng
        )

    def _count_finished(self, op: Operation) -> None:
        stats = self._client.stats_counters
        stats.finished += 1
        stats.items_good += op.num_good
        stats.items_bad += op.num_bad

    def _fail(self, tracked: Tracked, exc: BaseException, *, cause: BaseException | None) -> None:
        if tracked.op_id is not None:
            self._tracked.pop(tracked.op_id, None)
        if cause is not None:
            exc.__cause__ = cause
        if not tracked.future.done():
            tracked.future.set_exception(exc)

    # -- shutdown ----------------------------------------------------------------

    async def close(self, *, drain: bool = False) -> None:
        """Stop polling. Pending futures fail with :class:`ClientClosedError`
        unless ``drain``: then they are awaited first."""
        if drain and self._tracked:
            await asyncio.gather(
                *(asyncio.shield(t.future) for t in list(self._tracked.values())),
                return_exceptions=True,
            )
        self._closing = True
        pending = [t for t in self._tracked.values() if not t.future.done()]
        if pending:
            ids = [t.op_id for t in pending]
            error = ClientClosedError(
                f"client closed with {len(ids)} operation(s) pending: {ids[:20]}"
                + (" …" if len(ids) > 20 else "")
                + "; follow them later with client.ops.follow(op_id)",
                op_ids=ids,
            )
            for tracked in pending:
                tracked.future.set_exception(error)
        self._tracked.clear()
        tasks = [t for t in (self._task, *self._in_flight) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


_ONE_ATTEMPT = RetryPolicy(attempts=1)

__all__ = ["Poller", "Tracked"]
