"""The poll schedule's documented rules, with the clock passed in (no loop)."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wesog_async import PollPolicy
from wesog_async._schedule import ALPHA, FINISH_SLACK, Schedule, kind_of, server_duration

POLICY = PollPolicy(jitter=0)
ONE = kind_of("POST", 1)
BATCH = kind_of("POST", 1000)


def learned(samples: list[float], kind: tuple[str, int] = ONE, n: int = 1) -> Schedule:
    schedule = Schedule()
    for seconds in samples:
        schedule.learn(POLICY, kind, n, submitted_at=0.0, now=seconds)
    return schedule


# -- rule 1: the first poll ------------------------------------------------------


def test_cold_start_uses_the_policy_guess() -> None:
    schedule = Schedule()
    assert schedule.first_delay(POLICY, ONE, 1) == pytest.approx(0.02 + 0.0001)
    assert schedule.first_delay(POLICY, BATCH, 1000) == pytest.approx(0.02 + 0.1)


def test_learning_can_aim_below_ten_milliseconds() -> None:
    schedule = learned([0.001] * 5)
    assert schedule.first_delay(POLICY, ONE, 1) < 0.01


def test_one_slow_sample_never_delays_the_next_first_poll() -> None:
    # An op that took 3 s must not make the next op of its kind wait 3 s for a
    # first look: until TRUSTED samples agree, a learned first poll comes
    # sooner than the cold guess, never later.
    guess = POLICY.first(1, None, None)
    schedule = learned([3.0])
    assert schedule.first_delay(POLICY, ONE, 1) == pytest.approx(guess)
    schedule = learned([3.0, 3.0])
    assert schedule.first_delay(POLICY, ONE, 1) == pytest.approx(guess)
    schedule = learned([3.0, 3.0, 3.0])  # now it is the kind's time, not an outlier
    assert schedule.first_delay(POLICY, ONE, 1) > 2.0
    schedule = learned([0.001])  # sooner on one sample
    assert schedule.first_delay(POLICY, ONE, 1) < 0.01


def test_learning_is_per_kind_and_size() -> None:
    schedule = learned([2.0] * 5, kind=BATCH, n=1000)
    assert schedule.first_delay(POLICY, BATCH, 1000) > 1.5
    # A one-item create learned nothing from the big batches.
    assert schedule.first_delay(POLICY, ONE, 1) == pytest.approx(0.0201)
    assert schedule.first_delay(POLICY, kind_of("DELETE", 1000), 1000) == pytest.approx(0.12)


def test_a_fixed_completion_time_is_aimed_at_just_after_it() -> None:
    schedule = learned([0.3] * 8)
    assert 0.3 < schedule.first_delay(POLICY, ONE, 1) < 0.33


def test_one_outlier_moves_the_estimate_by_at_most_two_fold() -> None:
    steady = learned([0.1] * 6)
    before = steady.first_delay(POLICY, ONE, 1)
    steady.learn(POLICY, ONE, 1, submitted_at=0.0, now=100.0)
    after = steady.first_delay(POLICY, ONE, 1)
    assert after < before * 2


def test_the_first_samples_are_averaged_then_the_newest_weigh_alpha() -> None:
    # A plain mean while there are few samples (the first finishers of a burst
    # are its fastest; no one of them dominates), then a moving average.
    guess = POLICY.first(1, None, None)
    durations = [0.2, 0.3, 0.25, 0.35]
    schedule = learned(durations)
    est = schedule.estimate(ONE)
    assert est is not None
    logs = [math.log((d + FINISH_SLACK + 0.01 * d) / guess) for d in durations]
    assert est.log_ratio == pytest.approx(sum(logs) / len(logs))
    for _ in range(40):  # steady 0.3 s: the estimate converges, the spread shrinks
        schedule.learn(POLICY, ONE, 1, submitted_at=0.0, now=0.3)
    before = est.log_ratio
    schedule.learn(POLICY, ONE, 1, submitted_at=0.0, now=0.5)
    sample = math.log((0.5 + FINISH_SLACK + 0.005) / guess)
    assert est.log_ratio - before == pytest.approx(ALPHA * (sample - before))


def test_learn_false_never_learns() -> None:
    policy = PollPolicy(jitter=0, learn=False)
    schedule = Schedule()
    schedule.learn(policy, ONE, 1, submitted_at=0.0, now=3.0)
    assert schedule.estimate(ONE) is None


# -- rule 2: the server's timing, clamped ----------------------------------------


@pytest.mark.parametrize(
    ("idle", "exec_", "observed", "expected"),
    [
        (10, 90, 1.0, 0.1),
        (0, 0, 1.0, 0.0),
        (None, 90, 1.0, 1.0),
        ("10", 90, 1.0, 1.0),
        (True, 90, 1.0, 1.0),
        (math.nan, 1, 1.0, 1.0),
        (math.inf, 1, 1.0, 1.0),
        (-5000, 1, 1.0, 1.0),
        (10**9, 0, 1.0, 1.0),
    ],
)
def test_server_timing_is_clamped_to_what_the_client_saw(
    idle: object, exec_: object, observed: float, expected: float
) -> None:
    assert server_duration(idle, exec_, observed) == pytest.approx(expected)


@given(
    st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-(10**12), 10**12)),
    st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-(10**12), 10**12)),
    st.floats(0.0, 1e6),
)
def test_absurd_timing_never_makes_a_delay_nan_or_out_of_bounds(
    idle: object, exec_: object, now: float
) -> None:
    schedule = Schedule()
    schedule.learn(POLICY, ONE, 1, submitted_at=0.0, now=now, idle_ms=idle, exec_ms=exec_)
    delay = schedule.first_delay(POLICY, ONE, 1)
    assert POLICY.min_delay <= delay <= POLICY.max_delay


# -- rules 3 and 4: progress and backoff -----------------------------------------


def test_progress_aims_at_the_predicted_finish() -> None:
    # 100 of 1000 items done in 1 s: 900 more take 9 s, capped at max_delay.
    assert Schedule.toward_finish(POLICY, 0, 0.0, 100, 1000, 1.0) == POLICY.max_delay
    assert Schedule.toward_finish(POLICY, 0, 0.0, 500, 1000, 1.0) == pytest.approx(1.05)


def test_no_progress_grows_geometrically_and_is_capped() -> None:
    rng = random.Random(0)
    delays = [Schedule.backoff(POLICY, 0.02, n, rng) for n in range(1, 30)]
    assert delays[0] == pytest.approx(0.01)
    assert delays[1] == pytest.approx(0.015)
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert max(delays) == POLICY.max_delay


# -- rule 5: the cold start hint, bounded ----------------------------------------


def running(*submitted: float, now: float) -> Schedule:
    schedule = Schedule()
    for t in submitted:
        schedule.seen_running(POLICY, ONE, submitted_at=t, now=now)
    return schedule


def test_inside_the_learned_window_polls_come_finer_and_not_before_its_start() -> None:
    schedule = learned([0.2, 0.45, 0.3, 0.25, 0.4, 0.3])
    window = schedule.window(POLICY, ONE, 1)
    assert window is not None
    start, end = window
    assert start == pytest.approx(schedule.first_delay(POLICY, ONE, 1))
    assert start < 0.3 < end
    rng = random.Random(0)

    def delay(age: float) -> float:
        return Schedule.backoff(POLICY, start, 1, rng, age=age, window=window)

    assert delay(0.02) == pytest.approx(start - 0.02)  # an early (cold) poll: on to the aim
    inside = (start + end) / 2
    assert delay(inside) == pytest.approx((POLICY.learned_growth - 1) * inside)
    assert delay(end * 1.5) == pytest.approx((POLICY.growth - 1) * end * 1.5)
    assert delay(1e6) == POLICY.max_delay
    assert Schedule().window(POLICY, ONE, 1) is None  # nothing learned: rule 4 as is


def test_three_older_running_ops_hold_a_younger_ones_later_polls() -> None:
    # Three older ops of the kind, still followed: wait until this op is as old
    # as the youngest of them is now (0.8 s), from a poll due at 0.2.
    schedule = running(0.0, 0.05, 0.1, now=0.9)
    held = schedule.held_until(POLICY, ONE, submitted_at=0.3, due=0.4, now=0.9)
    assert held == pytest.approx(0.3 + (0.9 - 0.1))


def test_one_or_two_stuck_ops_hold_nothing_back() -> None:
    # F33: a stuck op (or two) says nothing about the kind.
    schedule = running(0.0, 0.05, now=20.0)
    assert schedule.held_until(POLICY, ONE, submitted_at=19.0, due=19.1, now=19.1) is None


def test_the_hold_is_bounded_by_max_hold() -> None:
    schedule = running(0.0, 0.1, 0.2, now=20.0)
    held = schedule.held_until(POLICY, ONE, submitted_at=19.0, due=19.1, now=19.1)
    assert held == pytest.approx(19.1 + POLICY.max_hold)


def test_an_op_that_ended_unfinished_is_no_evidence() -> None:
    schedule = running(0.0, 0.1, 0.2, now=1.0)
    schedule.forget(ONE, 0.1)
    assert schedule.held_until(POLICY, ONE, submitted_at=0.5, due=0.6, now=1.0) is None


def test_a_stuck_op_past_stale_after_is_no_evidence() -> None:
    schedule = running(0.0, 1.0, 2.0, now=29.0)
    assert schedule.held_until(POLICY, ONE, submitted_at=31.0, due=31.1, now=31.1) is None
    assert schedule.held_until(POLICY, ONE, submitted_at=3.0, due=3.1, now=31.1) is None


def test_learned_delay_ignores_the_trust_rule() -> None:
    schedule = learned([3.0])
    assert schedule.learned_delay(POLICY, ONE, 1) == pytest.approx(
        3.0 * 1.01 + FINISH_SLACK, rel=0.01
    )
    assert Schedule().learned_delay(POLICY, ONE, 1) is None


def test_no_hold_for_older_ops_other_kinds_or_once_learned() -> None:
    schedule = Schedule()
    schedule.seen_running(POLICY, ONE, submitted_at=1.0, now=1.5)
    assert schedule.held_until(POLICY, ONE, submitted_at=0.5, due=0.6, now=1.5) is None
    assert schedule.held_until(POLICY, BATCH, submitted_at=1.2, due=1.3, now=1.5) is None
    schedule.learn(POLICY, ONE, 1, submitted_at=1.0, now=2.0)
    assert schedule.held_until(POLICY, ONE, submitted_at=1.2, due=1.3, now=2.0) is None
