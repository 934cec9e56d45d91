"""Retry and polling policies: the only module that imports tenacity.

Two separate concerns, each with documented defaults:

* :class:`RetryPolicy`: how one HTTP request is retried (429, 502, 503, 504,
  connection errors, timeouts), with exponential backoff and full jitter,
  ``Retry-After`` honoured up to a cap, bounded by attempts and a time budget.
* :class:`PollPolicy`: when the poller asks ``GET /ops/{op_id}`` again.

Sleep is injectable so tests take no real time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
import tenacity
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from wesog_async import _attempts
from wesog_async._attempts import RequestKind
from wesog_async._errors import APIStatusError, ResponseValidationError

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

logger = logging.getLogger("wesog_async")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How one request is retried.

    Defaults: 6 attempts within 60 s; backoff with full jitter from 0.25 s
    doubling up to 8 s; a ``Retry-After`` hint is honoured up to 60 s, and a
    hint above the cap is not waited for at all (the error is raised with its
    ``retry_after``). ``attempts=1`` turns retries off.
    """

    attempts: int = attrs.field(default=6, validator=attrs.validators.ge(1))
    budget: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    backoff_initial: float = attrs.field(default=0.25, validator=attrs.validators.gt(0))
    backoff_max: float = attrs.field(default=8.0, validator=attrs.validators.gt(0))
    retry_after_cap: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))

    def should_retry(
        self, exc: BaseException, *, resend_safe: bool = True, kind: RequestKind | None = None
    ) -> bool:
        """Whether ``exc`` is worth another attempt for a request of ``kind``
        (the table of :mod:`wesog_async._attempts`); without ``kind``,
        ``resend_safe=False`` means a ``strict=true`` write.

        A ``Retry-After`` above :attr:`retry_after_cap` is never waited for.
        """
        if kind is None:
            kind = "write" if resend_safe else "strict_write"
        if (
            isinstance(exc, APIStatusError)
            and exc.retry_after is not None
            and exc.retry_after > self.retry_after_cap
        ):
            return False
        return _attempts.retryable(kind, exc)

    def hinted_wait(self, exc: BaseException | None) -> float | None:
        """The server's ``Retry-After`` for ``exc``, capped; ``None`` if none."""
        if isinstance(exc, APIStatusError) and exc.retry_after is not None:
            if exc.retry_after <= 0:
                return None  # zero, negative or in the past: the jittered backoff
            return min(exc.retry_after, self.retry_after_cap)
        return None


class _Wait(tenacity.wait.wait_base):
    """Full-jitter exponential backoff, replaced by ``Retry-After`` when given."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._jitter = wait_random_exponential(
            multiplier=policy.backoff_initial, max=policy.backoff_max
        )

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        hinted = self._policy.hinted_wait(exc)
        return hinted if hinted is not None else float(self._jitter(retry_state))


class _BudgetStop(tenacity.stop.stop_base):
    """Stop when the next sleep would pass the time budget.

    Counts both wall time and the sleeps tenacity computed, so an injected
    no-op sleep in tests still spends the budget.
    """

    def __init__(self, budget: float) -> None:
        self._budget = budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        spent = max(retry_state.seconds_since_start or 0.0, retry_state.idle_for)
        return spent + (retry_state.upcoming_sleep or 0.0) > self._budget


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    resend_safe: bool = True,
    kind: RequestKind | None = None,
    retry_invalid_body: bool = False,
    sleep: Sleep = asyncio.sleep,
    name: str = "request",
    on_retry: Callable[[BaseException, float], None] | None = None,
    first_failure: BaseException | None = None,
) -> T:
    """Run ``fn`` under ``policy``; the last error is raised as is.

    ``first_failure`` is the error of an attempt the caller already made
    itself (its own fast path): the retries go on from there.
    """
    if kind is None:
        kind = "write" if resend_safe else "strict_write"
    if first_failure is None:
        # Fast path: most calls succeed at once, and building tenacity's
        # machinery for each of them costs more CPU than the request itself.
        try:
            return await fn()
        except Exception as exc:
            first_failure = exc

    def retryable(exc: BaseException) -> bool:
        return policy.should_retry(exc, kind=kind) or (
            retry_invalid_body and isinstance(exc, ResponseValidationError)
        )

    if policy.attempts <= 1 or not retryable(first_failure):
        raise first_failure

    async def attempt() -> T:
        # Tenacity's first attempt replays the failure seen above: its wait,
        # stop and logging then work as if tenacity had made that call.
        nonlocal first_failure
        if first_failure is not None:
            failure, first_failure = first_failure, None
            raise failure
        return await fn()

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = state.upcoming_sleep or 0.0
        if exc is not None:
            logger.info(
                "%s: attempt %d failed (%s); retrying in %.2fs",
                name,
                state.attempt_number,
                type(exc).__name__,
                delay,
            )
            if on_retry is not None:
                on_retry(exc, delay)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | _BudgetStop(policy.budget),
        wait=_Wait(policy),
        retry=retry_if_exception(retryable),
        sleep=sleep,
        reraise=True,
        before_sleep=before_sleep,
        name=name,
    )
    async for attempt_state in retrying:
        with attempt_state:
            return await attempt()
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


@attrs.frozen(kw_only=True)
class PollPolicy:
    """When the poller asks for an operation's status again.

    Defaults: the first poll comes after ``first_delay`` (20 ms) plus
    ``per_item`` (0.1 ms) for each item in the operation, or after the completion
    time learned from this client's earlier operations of the same kind (method
    and size class) when there is one. While the server reports progress, the
    next poll is aimed at the predicted finish. Otherwise poll times grow
    geometrically (factor ``growth`` = 1.5: a poll at most 50 % of the elapsed
    time late) with ±10% jitter, each delay within ``[min_delay, max_delay]``
    (1 ms, 5 s); where the kind's ops were learned to finish, by
    ``learned_growth`` (1.4: at most 40% late). The first op of a kind nothing
    is known of is polled after ``min_delay`` (a probe), and a learned time
    later than the cold guess is used once three ops of the kind agree. Before
    anything of a kind has finished, an op polled once waits while three older
    ops of its kind are still running and older than it, by at most
    ``max_hold`` (2 s) per poll, counting only ops younger than
    ``stale_after`` (30 s). A
    ``Retry-After`` on a poll is honoured (up to the retry policy's cap). See
    :mod:`wesog_async._schedule` for the rules.
    """

    first_delay: float = attrs.field(default=0.02, validator=attrs.validators.gt(0))
    per_item: float = attrs.field(default=0.0001, validator=attrs.validators.ge(0))
    min_delay: float = attrs.field(default=0.001, validator=attrs.validators.gt(0))
    growth: float = attrs.field(default=1.5, validator=attrs.validators.gt(1))
    learned_growth: float = attrs.field(default=1.4, validator=attrs.validators.gt(1))
    max_delay: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    jitter: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))
    max_hold: float = attrs.field(default=2.0, validator=attrs.validators.ge(0))
    stale_after: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    learn: bool = True

    def backoff(self, base: float, polls_without_progress: int, rng: random.Random) -> float:
        """The delay after the ``n``-th unanswered poll of an operation first
        polled ``base`` seconds after its submit: poll times grow geometrically
        (``base``, ``base * growth``, ``base * growth**2``, ...), so a poll comes at
        most ``growth - 1`` (50 %) of the elapsed time after the finish. Jittered,
        capped.

        This is tenacity's ``wait_exponential`` (``multiplier * exp_base **
        (n - 1)``, capped), computed inline: it runs once per poll.
        """
        n = max(1, polls_without_progress)
        try:
            delay = min(self.max_delay, base * (self.growth - 1) * self.growth ** (n - 1))
        except OverflowError:
            delay = self.max_delay
        if self.jitter:
            delay *= 1.0 + rng.uniform(-self.jitter, self.jitter)
        return self.clamp(delay)

    def clamp(self, delay: float) -> float:
        """``delay`` bounded to ``[min_delay, max_delay]``."""
        return min(self.max_delay, max(self.min_delay, delay))

    def first(
        self, num_total: int, learned_per_item: float | None, learned_base: float | None
    ) -> float:
        """Delay before the first poll of an operation with ``num_total`` items."""
        if self.learn and learned_per_item is not None and learned_base is not None:
            return self.clamp(learned_base + learned_per_item * num_total)
        return self.clamp(self.first_delay + self.per_item * num_total)


def monotonic() -> float:
    """The clock the policies measure with (patched by tests via the client)."""
    return time.monotonic()
