"""One followed operation, poller side: its state (:class:`Tracked`), the
parse of its status bodies, the error of a failed poll, and the record of a
finish (the client's counters).
Split from :mod:`wesog_async._poller`, which schedules and sends the polls."""

from __future__ import annotations

import asyncio
import random

import attrs

from wesog_async._convert import pending_status, structure_operation
from wesog_async._errors import (
    NotFoundError,
    OperationError,
    OperationNotFoundError,
    ResponseValidationError,
    WesogError,
)
from wesog_async._http import Response
from wesog_async._models import Operation
from wesog_async._retry import PollPolicy, RetryPolicy
from wesog_async._schedule import Kind, Schedule
from wesog_async._stats import ClientStats
from wesog_async._telemetry_runs import OpObs


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
    #: Seconds after the submit the op was last seen unfinished (a lower bound
    #: of its duration, whatever the server's timing fields say).
    running_age: float = 0.0
    learnable: bool = True
    retry: RetryPolicy | None = None
    kind: Kind = ("", 1)
    #: Tracked before anything of its kind was learned: a poll of it due before
    #: the learned finish waits for it. (An op tracked later was aimed at what
    #: was learned then; a later, higher estimate does not push it back.)
    cold: bool = False
    #: The heap entry that counts (older entries of this op are skipped) and its time.
    seq: int = -1
    due: float = 0.0
    #: When the held poll was first due (``None``: not held): a poll is held
    #: again as the evidence grows, but never past ``hold_from + max_hold``.
    hold_from: float | None = None
    #: [telemetry] the operation's span and metrics, when observed.
    obs: OpObs | None = None


def mark_retrieved(fut: asyncio.Future[Operation]) -> None:
    # A failure nobody awaits must not log "exception was never retrieved".
    # Called where the poller sets an exception (a done callback per op cost
    # every successful op a scheduled call).
    if not fut.cancelled():
        fut.exception()


def parse_status(resp: Response, op_id: int) -> Operation:
    data = resp.json()
    op = pending_status(data) or structure_operation(data, body=resp.body)
    if op.op_id is not None and op.op_id != op_id:
        # A status about another operation proves nothing about this one:
        # treated like a malformed body (retried, then the future fails).
        raise ResponseValidationError(
            f"polled operation {op_id}, the server answered about operation {op.op_id}",
            body=resp.body,
        )
    return op


def poll_failure(
    op_id: int, image_ids: tuple[str, ...], exc: WesogError | RuntimeError
) -> WesogError:
    """The error a follower of ``op_id`` gets when its poll failed with ``exc``
    after the retry budget (the poller makes ``exc`` its cause): it names the
    operation, which the bare cause (a reset, a 5xx) does not."""
    if isinstance(exc, NotFoundError):
        held = f"; it covered {len(image_ids)} records" if image_ids else ""
        return OperationNotFoundError(
            f"operation {op_id} is unknown to the server (404){held}",
            op_id=op_id,
            image_ids=image_ids,
        )
    if isinstance(exc, ResponseValidationError):
        # F12: the body stays a validation error, now naming the operation.
        error = ResponseValidationError(
            "status body does not fit the model after the retry budget"
            if exc.errors
            else str(exc),  # already holds the body preview
            errors=exc.errors,
            body=exc.body if exc.errors else None,
            op_id=op_id,
        )
        error.body = exc.body
        return error
    return OperationError(
        f"polling operation {op_id} failed after the retry budget: {exc}", op_id=op_id
    )


def count_finished(stats: ClientStats, op: Operation) -> None:
    """Count a finished operation in the client's counters."""
    stats.finished += 1
    stats.items_good += op.num_good
    stats.items_bad += op.num_bad


def resolved(
    op: Operation,
    image_ids: tuple[str, ...],
    policy: PollPolicy,
    stats: ClientStats,
    *,
    obs: OpObs | None = None,
) -> Tracked:
    """A Tracked for an operation already finished (``wait=True`` writes): no
    poll and no task, so one is made even while the client closes."""
    fut: asyncio.Future[Operation] = asyncio.get_running_loop().create_future()
    fut.set_result(op)
    count_finished(stats, op)
    if obs is not None:  # [telemetry]
        obs.begin(op.op_id, pending=False)
        obs.finish(op)
    return Tracked(op.op_id, fut, op.num_total, policy, image_ids, latest=op)


def next_delay(
    tracked: Tracked,
    previous: Operation | None,
    op: Operation,
    now: float,
    rng: random.Random,
    schedule: Schedule | None = None,
) -> float:
    """When to poll an unfinished op again: toward the finish its progress
    predicts (rule 3), else the geometric backoff (rule 4), finer inside the
    window ``schedule`` learned for its kind; updates its counters."""
    policy = tracked.policy
    done = op.num_good + op.num_bad
    if done > tracked.progress_done and done < op.num_total:
        at = tracked.progress_at
        before = tracked.progress_done
        tracked.progress_at, tracked.progress_done = now, done
        if at is not None and previous is not None:
            tracked.polls_without_progress = 0
            return Schedule.toward_finish(policy, before, at, done, op.num_total, now)
    tracked.polls_without_progress += 1
    window = None
    if schedule is not None and tracked.learnable:
        window = schedule.window(policy, tracked.kind, tracked.num_total)
    return Schedule.backoff(
        policy, tracked.first_delay, tracked.polls_without_progress, rng,
        age=now - tracked.submitted_at, window=window,
    )  # fmt: skip


__all__ = [
    "next_delay",
    "Tracked",
    "count_finished",
    "mark_retrieved",
    "parse_status",
    "poll_failure",
    "resolved",
]
