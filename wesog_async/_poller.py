"""The client's single poller.

One scheduler task per client follows every pending operation: a heap of
``(next poll time, op id)``; what is due goes to a fixed set of poll workers
(``max_in_flight``). Several futures on one operation share one poll stream,
and a finished operation is never polled again. When to poll is decided by
:mod:`wesog_async._schedule`; how a poll is sent and retried by the transport.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import logging
import random
from functools import partial

from wesog_async import _sansio
from wesog_async._errors import (
    ClientClosedError,
    NotFoundError,
    OperationError,
    ResponseValidationError,
    WesogError,
    carry_request_ids,
)
from wesog_async._models import Operation
from wesog_async._retry import PollPolicy, RetryPolicy
from wesog_async._schedule import Kind, Schedule, kind_of
from wesog_async._stats import ClientStats
from wesog_async._telemetry_runs import OpObs
from wesog_async._tracked import (
    Tracked,
    count_finished,
    mark_retrieved,
    next_delay,
    parse_status,
    poll_failure,
    resolved,
)
from wesog_async._transport import Transport

logger = logging.getLogger("wesog_async")


class Poller:
    """Follows every pending operation of one client."""

    def __init__(
        self,
        transport: Transport,
        stats: ClientStats,
        policy: PollPolicy,
        *,
        max_in_flight: int = 16,
    ) -> None:
        self._transport = transport
        self._stats = stats
        self._policy = policy
        self._loop = asyncio.get_running_loop()
        self._tracked: dict[int, Tracked] = {}
        self._heap: list[tuple[float, int, int]] = []
        self._seq = itertools.count()
        self._wake: asyncio.Future[None] | None = None
        # Due ops go straight to an idle worker's future, else wait in the
        # backlog (an asyncio.Queue costs twice the bytecodes per hand-off).
        self._idle: collections.deque[asyncio.Future[Tracked]] = collections.deque()
        self._backlog: collections.deque[Tracked] = collections.deque()
        self._max_in_flight = max_in_flight
        self._workers: list[asyncio.Task[None]] = []
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._rng = random.Random()
        self.schedule = Schedule()
        # Per kind not learned yet, the one op probing it (first poll at once).
        self._probing: dict[Kind, int] = {}

    @property
    def pending_count(self) -> int:
        """Operations still followed."""
        return len(self._tracked)

    @property
    def closing(self) -> bool:
        """Whether :meth:`close` was called: no new operation can be tracked."""
        return self._closing

    # -- tracking ----------------------------------------------------------------

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
        method: str = "",
        obs: OpObs | None = None,
    ) -> Tracked:
        """Follow ``op_id``; an op already followed shares its poll stream."""
        if self._closing:
            raise RuntimeError("the client is closing; no new operations can be followed")
        existing = self._tracked.get(op_id)
        if existing is not None:
            return existing
        policy = policy or self._policy
        if initial is not None and initial.is_finished:
            return resolved(initial.with_op_id(op_id), image_ids, policy, self._stats, obs=obs)
        fut: asyncio.Future[Operation] = self._loop.create_future()
        if obs is not None:  # [telemetry] every way an op ends ends its span
            obs.begin(op_id, pending=True)
            fut.add_done_callback(obs.done)
        if initial is not None:
            num_total = initial.num_total
        kind = kind_of(method, num_total)
        tracked = Tracked(
            op_id, fut, num_total, policy, image_ids,
            latest=initial, submitted_at=self._loop.time(), learnable=learnable,
            retry=retry, kind=kind, obs=obs,
        )  # fmt: skip
        if not learnable:
            tracked.first_delay = policy.first(num_total, None, None)
        elif policy.learn and kind not in self._probing and self.schedule.estimate(kind) is None:
            # Nothing known of this kind: one op finds out at once, so a fast
            # server is learned in a round trip rather than after the guess.
            self._probing[kind] = op_id
            tracked.first_delay = policy.min_delay
        else:
            tracked.first_delay = self.schedule.first_delay(policy, kind, num_total)
        tracked.cold = learnable and self.schedule.estimate(kind) is None
        self._tracked[op_id] = tracked
        self._schedule(tracked, tracked.first_delay)
        self._ensure_running()
        return tracked

    def _schedule(self, tracked: Tracked, delay: float) -> None:
        self._schedule_at(tracked, self._loop.time() + delay)

    def _schedule_at(self, tracked: Tracked, due: float, *, hold_from: float | None = None) -> None:
        assert tracked.op_id is not None
        heap = self._heap
        if not heap or due < heap[0][0]:
            self._wakeup()
        tracked.seq, tracked.due, tracked.hold_from = next(self._seq), due, hold_from
        heapq.heappush(heap, (due, tracked.seq, tracked.op_id))

    def _wakeup(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run(), name="wesog_async-poller")
        while len(self._workers) < self._max_in_flight:
            n = len(self._workers)
            self._workers.append(
                self._loop.create_task(self._worker(), name=f"wesog_async-poll-worker-{n}")
            )

    # -- the loop ----------------------------------------------------------------

    async def _sleep_until(self, when: float | None) -> None:
        # A future resolved by a timer or by _wakeup: waking up raises nothing.
        wake = self._wake = self._loop.create_future()
        handle = self._loop.call_at(when, _resolve, wake) if when is not None else None
        try:
            await wake
        finally:
            self._wake = None
            if handle is not None:
                handle.cancel()

    async def _run(self) -> None:
        heap = self._heap
        loop = self._loop
        while True:
            if not heap:
                if not self._tracked:
                    return  # restarted by the next track()
                await self._sleep_until(None)
                continue
            due, seq, op_id = heap[0]
            now = loop.time()
            if due > now:
                await self._sleep_until(due)
                continue
            heapq.heappop(heap)
            tracked = self._tracked.get(op_id)
            if tracked is None or tracked.future.done() or seq != tracked.seq:
                continue  # gone, or rescheduled (an earlier first poll, see _learned)
            base = due if tracked.hold_from is None else tracked.hold_from
            later = self._held_until(tracked, base, now)
            if later is not None and later > due + tracked.policy.min_delay:
                self._schedule_at(tracked, later, hold_from=base)
                continue
            self._hand(tracked)

    def _hand(self, tracked: Tracked) -> None:
        idle = self._idle
        while idle:
            waiter = idle.popleft()
            if not waiter.done():  # (a worker cancelled while idle left it done)
                waiter.set_result(tracked)
                return
        self._backlog.append(tracked)

    def _held_until(self, tracked: Tracked, due: float, now: float) -> float | None:
        if not tracked.learnable:
            return None
        policy = tracked.policy
        latest = tracked.latest
        if tracked.polls and latest is not None and latest.num_good + latest.num_bad:
            return None  # items done: progress-aware scheduling takes over
        if self.schedule.estimate(tracked.kind) is None or not policy.learn:
            if not tracked.polls:
                return None  # a cold first poll is never held back by other ops
            return self.schedule.held_until(policy, tracked.kind, tracked.submitted_at, due, now)
        if not tracked.cold:
            # Aimed at what was learned when it was tracked: a later, higher
            # estimate does not push its polls back (that would aim every op
            # at the highest estimate seen while it waits).
            return None
        # Scheduled before this kind was learned: go for the learned finish
        # (later than the cold guess only once TRUSTED ops agreed on it).
        learned = tracked.submitted_at + self.schedule.first_delay(
            policy, tracked.kind, tracked.num_total
        )
        later = min(learned, due + policy.max_delay)
        return later if later > due + policy.min_delay else None

    async def _worker(self) -> None:
        backlog, idle, loop = self._backlog, self._idle, self._loop
        while True:
            if backlog:
                tracked = backlog.popleft()
            else:
                waiter: asyncio.Future[Tracked] = loop.create_future()
                idle.append(waiter)
                try:
                    tracked = await waiter
                except asyncio.CancelledError:
                    if waiter.done() and not waiter.cancelled():
                        self._hand(waiter.result())  # handed, then cancelled: not lost
                    raise
            if tracked.future.done():
                continue
            try:
                await self._poll(tracked)
            except Exception as exc:
                # A bug of ours in following one operation: that follower fails
                # naming it (the op stays followable by id); the worker goes on.
                logger.exception("following operation %s failed", tracked.op_id)
                self._fail(
                    tracked,
                    OperationError(
                        f"following operation {tracked.op_id} failed: {type(exc).__name__}",
                        op_id=tracked.op_id,
                    ),
                    cause=exc,
                )

    async def _poll(self, tracked: Tracked) -> None:
        op_id = tracked.op_id
        assert op_id is not None
        stats = self._stats

        def attempted() -> None:
            stats.polls += 1
            tracked.polls += 1

        def retried(_exc: BaseException) -> None:
            stats.poll_retries += 1

        obs = tracked.obs
        try:
            op = await self._transport.call(
                "GET", _sansio.op_path(op_id), partial(parse_status, op_id=op_id), kind="poll",
                retry=tracked.retry, on_attempt=attempted, on_retry=retried,
                span=obs.span if obs is not None else None,
            )  # fmt: skip
        except (WesogError, RuntimeError) as exc:
            # A 404 or an unparseable status fails the follower even while
            # closing; any other failure then leaves it to close().
            named = isinstance(exc, NotFoundError | ResponseValidationError)
            if not named and (self._closing or not self._transport.is_open):
                # close() fails the future with ClientClosedError. (Not while
                # a drain waits: the future must end, or the drain never does.)
                return
            self._fail(tracked, poll_failure(op_id, tracked.image_ids, exc), cause=exc)
            return
        if obs is not None:
            obs.polled(op)  # [telemetry] a poll event on the op's span
        self._observe(tracked, op.with_op_id(op_id))

    def _observe(self, tracked: Tracked, op: Operation) -> None:
        if tracked.future.done():
            return
        previous = tracked.latest
        tracked.latest = op
        now = self._loop.time()
        if op.is_finished:
            if tracked.op_id is not None:
                self._tracked.pop(tracked.op_id, None)
            self._end_probe(tracked)
            # The proven outcome first: learning from it comes after.
            count_finished(self._stats, op)
            tracked.future.set_result(op)
            if tracked.learnable:
                cold = self.schedule.estimate(tracked.kind) is None
                self.schedule.learn(
                    tracked.policy, tracked.kind, tracked.num_total,
                    submitted_at=tracked.submitted_at, now=now,
                    idle_ms=op.idle_ms, exec_ms=op.exec_ms, running_age=tracked.running_age,
                )  # fmt: skip
                if cold:
                    self._learned(tracked.kind, now)
            return
        tracked.running_age = now - tracked.submitted_at
        if op.num_good + op.num_bad == 0 and tracked.learnable:
            self.schedule.seen_running(tracked.policy, tracked.kind, tracked.submitted_at, now)
        self._schedule(tracked, next_delay(tracked, previous, op, now, self._rng, self.schedule))

    def _end_probe(self, tracked: Tracked) -> None:
        if self._probing.get(tracked.kind) == tracked.op_id:
            del self._probing[tracked.kind]

    def _learned(self, kind: Kind, now: float) -> None:
        """A kind was learned: first polls scheduled on the cold guess that the
        learned time says are due sooner come sooner (later ones are held
        when they come due, see ``_held_until``)."""
        for tracked in self._tracked.values():
            if tracked.kind != kind or not tracked.learnable:
                continue
            if tracked.polls == 0:
                delay = self.schedule.first_delay(tracked.policy, kind, tracked.num_total)
            elif tracked.hold_from is not None:  # held on rule 5's evidence until now
                delay = self.schedule.learned_delay(tracked.policy, kind, tracked.num_total) or 0.0
            else:
                continue
            due = max(now, tracked.submitted_at + delay)
            if due < tracked.due - tracked.policy.min_delay:
                self._schedule_at(tracked, due)

    def _fail(self, tracked: Tracked, exc: BaseException, *, cause: BaseException | None) -> None:
        self._end_probe(tracked)
        self.schedule.forget(tracked.kind, tracked.submitted_at)
        if tracked.op_id is not None:
            self._tracked.pop(tracked.op_id, None)
        if cause is not None:
            exc.__cause__ = cause
            carry_request_ids(exc, cause)  # [telemetry]
        if not tracked.future.done():
            tracked.future.set_exception(exc)
            mark_retrieved(tracked.future)

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
                mark_retrieved(tracked.future)
        self._tracked.clear()
        self._probing.clear()
        tasks = [t for t in (self._task, *self._workers) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        # A cancelled task keeps its CancelledError, whose traceback holds the
        # worker's last op: let a closed client that is still referenced not
        # hold it too.
        self._task, self._workers = None, []
        self._idle.clear()
        self._backlog.clear()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


__all__ = ["Poller", "Tracked", "resolved"]
