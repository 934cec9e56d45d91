"""Response deadlines on one loop timer (``_deadline``): they expire like
``asyncio.timeout`` (the task cancelled, ``TimeoutError`` on leaving the block
unless someone else cancelled too), and attempts that end in time leave no
timer behind in the loop's heap."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from wesog_async._deadline import RESPONSE_DEADLINE, Deadline, Deadlines


async def armed_hang(clock: Deadlines, seconds: float) -> Deadline:
    """An attempt that never ends on its own, under a deadline of ``seconds``."""
    with clock.deadline(seconds) as deadline:
        deadline.arm()
        await asyncio.sleep(5)
    return deadline


async def test_an_armed_deadline_raises_timeout_error_when_it_expires() -> None:
    clock = Deadlines(asyncio.get_running_loop())
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await armed_hang(clock, 0.05)
    assert 0.04 < time.monotonic() - t0 < 1.0
    assert clock.pending() == 0
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the cancellation was absorbed


async def test_a_deadline_counts_nothing_until_armed() -> None:
    clock = Deadlines(asyncio.get_running_loop())
    with clock.deadline(0.01) as deadline:
        assert RESPONSE_DEADLINE.get() is deadline
        await asyncio.sleep(0.05)
    assert not deadline.expired
    assert RESPONSE_DEADLINE.get() is None


async def test_deadlines_that_end_in_time_leave_no_timer_in_the_loop() -> None:
    loop = asyncio.get_running_loop()
    clock = Deadlines(loop)
    before = len(loop._scheduled)  # type: ignore[attr-defined]
    for _ in range(1000):
        with clock.deadline(30.0) as deadline:
            deadline.arm()
            await asyncio.sleep(0)
    # One timer for all of them (asyncio.timeout would leave hundreds of
    # cancelled ones until the heap's clean-up).
    assert len(loop._scheduled) <= before + 1  # type: ignore[attr-defined]
    assert clock.pending() == 0 and not deadline.expired


async def test_only_the_deadlines_due_expire() -> None:
    clock = Deadlines(asyncio.get_running_loop())
    outcomes: dict[str, str] = {}

    async def attempt(name: str, seconds: float, work: float) -> None:
        try:
            with clock.deadline(seconds) as deadline:
                deadline.arm()
                await asyncio.sleep(work)
            outcomes[name] = "done"
        except TimeoutError:
            outcomes[name] = "timed out"

    await asyncio.gather(
        attempt("slow", 0.1, 5.0),
        attempt("quick", 0.1, 0.01),
        attempt("slow too", 0.1, 5.0),
        # A shorter response time armed after a longer one still comes first.
        attempt("short", 0.03, 5.0),
        attempt("long", 5.0, 0.2),
    )
    assert outcomes == {
        "slow": "timed out",
        "quick": "done",
        "slow too": "timed out",
        "short": "timed out",
        "long": "done",
    }
    assert clock.pending() == 0


async def test_the_shorter_response_time_expires_first() -> None:
    clock = Deadlines(asyncio.get_running_loop())
    ended: list[str] = []

    async def attempt(name: str, seconds: float) -> None:
        with pytest.raises(TimeoutError):
            await armed_hang(clock, seconds)
        ended.append(name)

    long = asyncio.create_task(attempt("long", 0.15))
    await asyncio.sleep(0.01)
    await asyncio.gather(long, attempt("short", 0.03))
    assert ended == ["short", "long"]


async def test_arming_again_restarts_the_countdown() -> None:
    clock = Deadlines(asyncio.get_running_loop())
    with clock.deadline(0.08) as deadline:
        deadline.arm()
        await asyncio.sleep(0.05)
        deadline.arm()
        await asyncio.sleep(0.05)  # 0.1 s after the first arm, 0.05 after the second
    assert not deadline.expired
    assert clock.pending() == 0


async def test_a_cancellation_from_outside_is_not_turned_into_timeout_error() -> None:
    clock = Deadlines(asyncio.get_running_loop())
    raised: list[type[BaseException]] = []

    async def attempt() -> None:
        try:
            with clock.deadline(0.02) as deadline:
                deadline.arm()
                try:
                    await asyncio.sleep(5)
                except asyncio.CancelledError:
                    await asyncio.sleep(0.05)  # the deadline passes meanwhile
                    raise
        except BaseException as exc:
            raised.append(type(exc))
            raise

    task = asyncio.create_task(attempt())
    await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert raised == [asyncio.CancelledError]
    assert clock.pending() == 0


async def test_a_cancellation_on_top_of_an_expiry_goes_on_as_cancelled_error() -> None:
    clock = Deadlines(asyncio.get_running_loop())

    async def attempt() -> None:
        with clock.deadline(0.02) as deadline:
            deadline.arm()
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                # Expired; now someone else cancels the task as well.
                task = asyncio.current_task()
                assert task is not None
                task.cancel()
                await asyncio.sleep(0.01)

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(attempt())


async def test_an_exception_of_the_attempt_passes_through_unchanged() -> None:
    clock = Deadlines(asyncio.get_running_loop())

    def failing() -> None:
        with clock.deadline(5.0) as deadline:
            deadline.arm()
            raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        failing()
    assert clock.pending() == 0 and RESPONSE_DEADLINE.get() is None


async def test_the_pending_timer_keeps_no_finished_attempt_alive() -> None:
    # The timer is set inside the first attempt's block; a context copied
    # there would hold that attempt's deadline, and its task, for 30 s.
    clock = Deadlines(asyncio.get_running_loop())

    async def attempt() -> None:
        with clock.deadline(30.0) as deadline:
            deadline.arm()
            await asyncio.sleep(0)

    await asyncio.create_task(attempt())
    await asyncio.sleep(0)
    gc.collect()
    assert [o for o in gc.get_objects() if type(o) is Deadline] == []
