"""Retry and polling policies, with an injected sleep: no real time passes."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wesog_async import PollPolicy, RetryPolicy, _attempts
from wesog_async._attempts import RequestKind
from wesog_async._errors import (
    APIStatusError,
    ConnectError,
    InvalidInputError,
    OperationTimeoutError,
    OutcomeUnknownError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    TransportError,
)
from wesog_async._retry import call_with_retries
from wesog_async._sansio import error_for_status


def status_error(status: int, retry_after: float | None = None) -> APIStatusError:
    return error_for_status(status, b"", method="POST", path="/imgs", retry_after=retry_after)


class Sleeps:
    """An injected sleep that records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Script:
    """A callable that raises the given errors in turn, then returns ``result``."""

    def __init__(self, outcomes: Sequence[BaseException], result: Any = "ok") -> None:
        self.outcomes = list(outcomes)
        self.result = result
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        if self.outcomes:
            raise self.outcomes.pop(0)
        return self.result


class Always:
    """A callable that raises a fresh error from ``make`` on every call."""

    def __init__(self, make: Callable[[], BaseException]) -> None:
        self.make = make
        self.calls = 0
        self.raised: list[BaseException] = []

    async def __call__(self) -> Any:
        self.calls += 1
        self.raised.append(self.make())
        raise self.raised[-1]


# -- should_retry --------------------------------------------------------------

POLICY = RetryPolicy()
ALL_STATUSES = [
    300,
    302,
    400,
    401,
    403,
    404,
    408,
    409,
    413,
    418,
    422,
    429,
    500,
    501,
    502,
    503,
    504,
    599,
]
NOT_APPLIED = {408, 429, 503}
SERVER_ERRORS = {500, 501, 502, 503, 504, 599}


@pytest.mark.parametrize("status", ALL_STATUSES)
@pytest.mark.parametrize("resend_safe", [True, False])
def test_should_retry_status_table(status: int, resend_safe: bool) -> None:
    # strict writes (not resend-safe): only statuses after which nothing was applied
    expected = status in (NOT_APPLIED | SERVER_ERRORS if resend_safe else NOT_APPLIED)
    assert POLICY.should_retry(status_error(status), resend_safe=resend_safe) is expected


@pytest.mark.parametrize("status", ALL_STATUSES)
@pytest.mark.parametrize("kind", ["read", "poll", "write", "strict_write"])
def test_retry_table_by_request_kind(status: int, kind: RequestKind) -> None:
    retried = NOT_APPLIED if kind == "strict_write" else NOT_APPLIED | SERVER_ERRORS
    assert POLICY.should_retry(status_error(status), kind=kind) is (status in retried)


@pytest.mark.parametrize(
    ("status", "maybe"),
    [(200, True), (202, True), (400, False), (404, False), (408, False), (422, False),
     (429, False), (500, True), (502, True), (503, False), (504, True), (599, True)],
)  # fmt: skip
def test_was_a_write_possibly_applied(status: int, maybe: bool) -> None:
    assert _attempts.status_maybe_applied(status) is maybe
    if status >= 400:
        assert _attempts.maybe_applied(status_error(status)) is maybe


@pytest.mark.parametrize(
    ("exc", "maybe"),
    [
        (ConnectError("refused", method="POST", path="/imgs"), False),
        (TransportError("reset", method="POST", path="/imgs"), True),
        (ValueError("not ours"), False),
    ],
)
def test_transport_failures_possibly_applied(exc: BaseException, maybe: bool) -> None:
    assert _attempts.maybe_applied(exc) is maybe


def test_kind_of() -> None:
    assert _attempts.kind_of("GET", resend_safe=False) == "read"
    assert _attempts.kind_of("POST", resend_safe=True) == "write"
    assert _attempts.kind_of("DELETE", resend_safe=False) == "strict_write"


@pytest.mark.parametrize(
    ("exc", "safe", "strict"),
    [
        (ConnectError("refused", method="POST", path="/imgs"), True, True),
        (TransportError("reset", method="POST", path="/imgs"), True, False),
        (OutcomeUnknownError("reset after send", method="POST", path="/imgs"), True, False),
        (ResponseValidationError("garbage"), False, False),
        (InvalidInputError("bad", field="id", index=0), False, False),
        (OperationTimeoutError("late", op_id=1, last_status=None), False, False),
        (ValueError("x"), False, False),
        (TimeoutError(), False, False),
        (ConnectionResetError(), False, False),
        (asyncio.CancelledError(), False, False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_should_retry_error_kinds(exc: BaseException, safe: bool, strict: bool) -> None:
    assert POLICY.should_retry(exc, resend_safe=True) is safe
    assert POLICY.should_retry(exc, resend_safe=False) is strict


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("resend_safe", [True, False])
def test_retry_after_up_to_the_cap_is_retried_above_it_is_not(
    status: int, resend_safe: bool
) -> None:
    policy = RetryPolicy(retry_after_cap=30.0)
    assert policy.should_retry(status_error(status, 0.0), resend_safe=resend_safe)
    assert policy.should_retry(status_error(status, 30.0), resend_safe=resend_safe)
    assert not policy.should_retry(status_error(status, 30.001), resend_safe=resend_safe)
    assert not policy.should_retry(status_error(status, 3600.0), resend_safe=resend_safe)


def test_retry_after_on_a_non_retryable_status_does_not_make_it_retryable() -> None:
    assert not POLICY.should_retry(status_error(400, 1.0), resend_safe=True)
    assert not POLICY.should_retry(status_error(500, 1.0), resend_safe=False)


@pytest.mark.parametrize("hint", [0.0, -1.0, -3600.0])
def test_a_zero_negative_or_past_retry_after_falls_back_to_backoff(hint: float) -> None:
    assert RetryPolicy().hinted_wait(status_error(429, hint)) is None


def test_hinted_wait() -> None:
    policy = RetryPolicy(retry_after_cap=10.0)
    assert policy.hinted_wait(status_error(429, 2.5)) == 2.5
    assert policy.hinted_wait(status_error(429, 99.0)) == 10.0
    assert policy.hinted_wait(status_error(429)) is None
    assert policy.hinted_wait(ConnectError("x")) is None
    assert policy.hinted_wait(None) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"budget": 0},
        {"backoff_initial": 0},
        {"backoff_max": -1},
        {"retry_after_cap": -1},
    ],
)
def test_retry_policy_validates(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RetryPolicy(**kwargs)


# -- call_with_retries ---------------------------------------------------------


async def test_success_first_time_does_not_sleep() -> None:
    sleeps, fn = Sleeps(), Script([])
    result = await call_with_retries(fn, policy=POLICY, resend_safe=True, sleep=sleeps)
    assert result == "ok"
    assert fn.calls == 1
    assert sleeps.delays == []


async def test_retry_after_is_honoured() -> None:
    sleeps = Sleeps()
    fn = Script([status_error(429, 2.5), status_error(503, 0.75)])
    result = await call_with_retries(fn, policy=POLICY, resend_safe=False, sleep=sleeps)
    assert result == "ok"
    assert fn.calls == 3
    assert sleeps.delays == [2.5, 0.75]


async def test_retry_after_at_the_cap_is_waited_in_full() -> None:
    sleeps = Sleeps()
    fn = Script([status_error(429, 5.0)])
    policy = RetryPolicy(retry_after_cap=5.0, budget=100.0)
    assert await call_with_retries(fn, policy=policy, resend_safe=True, sleep=sleeps) == "ok"
    assert sleeps.delays == [5.0]


async def test_retry_after_above_the_cap_raises_at_once() -> None:
    sleeps = Sleeps()
    err = status_error(429, 3600.0)
    fn = Script([err])
    with pytest.raises(RateLimitError) as exc:
        await call_with_retries(fn, policy=POLICY, resend_safe=True, sleep=sleeps)
    assert exc.value is err
    assert exc.value.retry_after == 3600.0
    assert fn.calls == 1
    assert sleeps.delays == []


async def test_full_jitter_delays_are_within_the_exponential_bound() -> None:
    policy = RetryPolicy(attempts=7, budget=1000.0, backoff_initial=0.5, backoff_max=3.0)
    bounds = [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    per_position: list[list[float]] = [[] for _ in bounds]
    state = random.getstate()
    random.seed(20260102)  # tenacity draws from the global RNG: keep this test deterministic
    try:
        for _ in range(150):
            await _one_jittered_run(policy, bounds, per_position)
    finally:
        random.setstate(state)
    for bound, seen in zip(bounds, per_position, strict=True):
        # Full jitter: spread over [0, bound], not clustered near the bound.
        assert min(seen) < 0.1 * bound
        assert max(seen) > 0.9 * bound


async def _one_jittered_run(
    policy: RetryPolicy, bounds: list[float], per_position: list[list[float]]
) -> None:
    sleeps = Sleeps()
    fn = Always(lambda: status_error(502))
    with pytest.raises(ServerError):
        await call_with_retries(fn, policy=policy, resend_safe=True, sleep=sleeps)
    assert fn.calls == 7
    assert len(sleeps.delays) == 6
    for n, delay in enumerate(sleeps.delays):
        assert 0.0 <= delay <= bounds[n]
        per_position[n].append(delay)


async def test_stops_after_attempts_and_reraises_the_last_error_unchanged() -> None:
    sleeps = Sleeps()
    fn = Always(lambda: status_error(503))
    policy = RetryPolicy(attempts=3, budget=1000.0)
    with pytest.raises(ServerError) as exc:
        await call_with_retries(fn, policy=policy, resend_safe=True, sleep=sleeps)
    assert fn.calls == 3
    assert len(sleeps.delays) == 2
    assert exc.value is fn.raised[-1]
    assert exc.value is not fn.raised[0]
    assert type(exc.value) is ServerError


async def test_attempts_one_turns_retries_off() -> None:
    sleeps = Sleeps()
    fn = Script([ConnectError("refused")])
    with pytest.raises(ConnectError):
        await call_with_retries(fn, policy=RetryPolicy(attempts=1), resend_safe=True, sleep=sleeps)
    assert fn.calls == 1
    assert sleeps.delays == []


async def test_budget_is_spent_by_computed_sleeps_even_with_a_no_op_sleep() -> None:
    sleeps = Sleeps()
    fn = Always(lambda: status_error(429, 25.0))
    policy = RetryPolicy(attempts=100, budget=60.0)
    with pytest.raises(RateLimitError):
        await call_with_retries(fn, policy=policy, resend_safe=True, sleep=sleeps)
    # 25 + 25 fit in 60 s; a third wait would reach 75 s.
    assert sleeps.delays == [25.0, 25.0]
    assert fn.calls == 3


async def test_budget_smaller_than_the_first_wait_means_no_retry() -> None:
    sleeps = Sleeps()
    fn = Script([status_error(503, 5.0)])
    with pytest.raises(ServerError):
        await call_with_retries(fn, policy=RetryPolicy(budget=4.0), resend_safe=True, sleep=sleeps)
    assert fn.calls == 1
    assert sleeps.delays == []


async def test_jitter_waits_count_against_the_budget() -> None:
    policy = RetryPolicy(attempts=1000, budget=10.0, backoff_initial=1.0, backoff_max=4.0)
    sleeps = Sleeps()
    fn = Always(lambda: ConnectError("refused"))
    with pytest.raises(ConnectError):
        await call_with_retries(fn, policy=policy, resend_safe=False, sleep=sleeps)
    assert sum(sleeps.delays) <= 10.0
    assert fn.calls < 1000


@pytest.mark.parametrize(
    "err",
    [
        status_error(400),
        status_error(401),
        status_error(404),
        status_error(409),
        status_error(422),
        status_error(418),
        ResponseValidationError("bad body"),
        InvalidInputError("bad", field="src", index=0),
        RuntimeError("bug"),
    ],
    ids=lambda e: f"{type(e).__name__}-{getattr(e, 'status', '')}",
)
async def test_non_retryable_errors_raise_at_once(err: BaseException) -> None:
    sleeps = Sleeps()
    fn = Script([err])
    with pytest.raises(type(err)) as exc:
        await call_with_retries(fn, policy=POLICY, resend_safe=True, sleep=sleeps)
    assert exc.value is err
    assert fn.calls == 1
    assert sleeps.delays == []


@pytest.mark.parametrize(
    ("err", "retried"),
    [
        (ConnectError("refused"), True),
        (status_error(429), True),
        (status_error(503), True),
        (status_error(502), False),
        (status_error(504), False),
        (TransportError("reset"), False),
        (OutcomeUnknownError("read timeout"), False),
    ],
    ids=lambda v: (
        f"{type(v).__name__}-{getattr(v, 'status', '')}" if isinstance(v, BaseException) else str(v)
    ),
)
async def test_strict_writes_are_retried_only_when_nothing_was_applied(
    err: BaseException, retried: bool
) -> None:
    sleeps = Sleeps()
    fn = Script([err])
    if retried:
        assert await call_with_retries(fn, policy=POLICY, resend_safe=False, sleep=sleeps) == "ok"
        assert fn.calls == 2
    else:
        with pytest.raises(type(err)):
            await call_with_retries(fn, policy=POLICY, resend_safe=False, sleep=sleeps)
        assert fn.calls == 1


@pytest.mark.parametrize("retry_invalid_body", [True, False])
async def test_invalid_body_is_retried_only_when_asked(retry_invalid_body: bool) -> None:
    sleeps = Sleeps()
    err = ResponseValidationError("truncated")
    fn = Script([err])
    if retry_invalid_body:
        result = await call_with_retries(
            fn, policy=POLICY, resend_safe=True, retry_invalid_body=True, sleep=sleeps
        )
        assert result == "ok"
        assert fn.calls == 2
        assert len(sleeps.delays) == 1
    else:
        with pytest.raises(ResponseValidationError) as exc:
            await call_with_retries(fn, policy=POLICY, resend_safe=True, sleep=sleeps)
        assert exc.value is err
        assert fn.calls == 1


async def test_on_retry_sees_each_error_and_its_delay(caplog: pytest.LogCaptureFixture) -> None:
    sleeps = Sleeps()
    errors = [status_error(429, 1.0), ConnectError("refused")]
    fn = Script(list(errors))
    seen: list[tuple[BaseException, float]] = []
    with caplog.at_level(logging.INFO, logger="wesog_async"):
        result = await call_with_retries(
            fn,
            policy=POLICY,
            resend_safe=True,
            sleep=sleeps,
            name="GET /ops/9",
            on_retry=lambda exc, delay: seen.append((exc, delay)),
        )
    assert result == "ok"
    assert [e for e, _ in seen] == errors
    assert [d for _, d in seen] == sleeps.delays
    assert seen[0][1] == 1.0
    assert sum("GET /ops/9" in r.getMessage() for r in caplog.records) == 2


# -- PollPolicy ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "num_total", "learned", "expected"),
    [
        (PollPolicy(first_delay=0.05, min_delay=0.01, per_item=0.002), 0, (None, None), 0.05),
        (PollPolicy(first_delay=0.05, min_delay=0.01, per_item=0.002), 1, (None, None), 0.052),
        (PollPolicy(first_delay=0.05, min_delay=0.01, per_item=0.002), 100, (None, None), 0.25),
        (PollPolicy(first_delay=0.05, min_delay=0.01, per_item=0.002), 10**6, (None, None), 5.0),
        (PollPolicy(first_delay=0.001, min_delay=0.01, per_item=0), 5, (None, None), 0.01),
        (PollPolicy(first_delay=0.05, min_delay=0.01, per_item=0.002), 10, (0.01, 0.2), 0.3),
        (PollPolicy(first_delay=0.05, min_delay=0.01, per_item=0.002), 10, (0.01, None), 0.07),
        (PollPolicy(first_delay=0.05, min_delay=0.01, per_item=0.002), 10, (None, 0.2), 0.07),
        (PollPolicy(first_delay=0.05, per_item=0.002, learn=False), 10, (0.01, 0.2), 0.07),
        (PollPolicy(first_delay=0.05, min_delay=0.01, per_item=0.002), 10**6, (0.01, 0.2), 5.0),
        (PollPolicy(first_delay=0.05, min_delay=0.01, per_item=0.002), 0, (0.0, 0.0), 0.01),
        (PollPolicy(per_item=0.002, max_delay=1.0), 10**6, (None, None), 1.0),
    ],
)
def test_poll_first(
    policy: PollPolicy,
    num_total: int,
    learned: tuple[float | None, float | None],
    expected: float,
) -> None:
    assert policy.first(num_total, *learned) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("delay", "expected"),
    [(-1.0, 0.01), (0.0, 0.01), (0.01, 0.01), (1.0, 1.0), (5.0, 5.0), (9e9, 5.0)],
)
def test_poll_clamp(delay: float, expected: float) -> None:
    assert PollPolicy(min_delay=0.01).clamp(delay) == expected


def test_poll_backoff_grows_by_growth_then_caps() -> None:
    # Poll times 0.1, 0.2, 0.4, 0.8, 1.6, ... after the submit: each delay is the
    # elapsed time times (growth - 1), capped.
    policy = PollPolicy(jitter=0, growth=2.0, max_delay=1.0)
    rng = random.Random(0)
    delays = [policy.backoff(0.1, n, rng) for n in range(7)]
    assert delays == pytest.approx([0.1, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_poll_backoff_default_growth_is_one_and_a_half() -> None:
    policy = PollPolicy(jitter=0)
    rng = random.Random(0)
    # First poll at 0.2 s, then at 0.3, 0.45, 0.675: at most 50 % of the elapsed time late.
    assert [policy.backoff(0.2, n, rng) for n in range(1, 4)] == pytest.approx([0.1, 0.15, 0.225])


def test_poll_backoff_does_not_overflow_after_many_polls() -> None:
    policy = PollPolicy()
    assert policy.backoff(0.1, 100_000, random.Random(0)) <= policy.max_delay


def test_poll_backoff_is_reproducible_with_a_seeded_rng() -> None:
    policy = PollPolicy()
    a = [policy.backoff(0.1, n, random.Random(7)) for n in range(5)]
    b = [policy.backoff(0.1, n, random.Random(7)) for n in range(5)]
    assert a == b


@settings(max_examples=150, deadline=None)
@given(
    base=st.floats(min_value=1e-4, max_value=20.0),
    polls=st.integers(min_value=0, max_value=200),
    seed=st.integers(min_value=0, max_value=2**32),
    jitter=st.sampled_from([0.0, 0.1, 0.5]),
)
def test_poll_backoff_stays_within_bounds_and_jitter(
    base: float, polls: int, seed: int, jitter: float
) -> None:
    policy = PollPolicy(jitter=jitter)
    delay = policy.backoff(base, polls, random.Random(seed))
    assert policy.min_delay <= delay <= policy.max_delay
    try:
        growth = policy.growth
        nominal = min(base * (growth - 1) * growth ** (max(1, polls) - 1), policy.max_delay)
    except OverflowError:
        nominal = policy.max_delay
    low = policy.clamp(nominal * (1 - jitter))
    high = policy.clamp(nominal * (1 + jitter))
    assert low - 1e-9 <= delay <= high + 1e-9


@pytest.mark.parametrize(
    "kwargs",
    [
        {"growth": 1.0},
        {"learned_growth": 1.0},
        {"first_delay": 0},
        {"min_delay": 0},
        {"max_delay": 0},
        {"jitter": -0.1},
    ],
)
def test_poll_policy_validates(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        PollPolicy(**kwargs)


def test_policies_are_frozen() -> None:
    with pytest.raises(AttributeError):
        RetryPolicy().attempts = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        PollPolicy().growth = 2.0  # type: ignore[misc]
