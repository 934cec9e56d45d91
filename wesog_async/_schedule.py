"""When to poll an operation next: pure logic, the clock passed in as ``now``.

The rules, as documented in the README ("How waiting works"):

1. **First poll.** At the completion time learned from finished operations of
   the same *kind* (method and size class: 1, 2-3, 4-7, ... items), aimed below
   it by a quarter of the observed spread; with nothing learned for the kind,
   after the policy's cold-start guess (``first_delay + per_item * items``). A learned
   time later than the guess counts only once ``TRUSTED`` samples agree, so one
   slow op never delays the next first poll. (The poller also probes a cold
   kind: its first op is polled at ``min_delay``.)
2. **Learning** uses the server's own timing (``idle_ms + exec_ms``), clamped
   to what the client saw (an op cannot finish after the client saw it
   finished, nor before the client last saw it running); absurd or missing timing falls back
   to the client's observation. Samples are averaged in log space (a plain mean
   of the first ones, then a moving average weighting the newest ``ALPHA``), and
   a sample far from the estimate is clipped, so one outlier moves the estimate
   by at most a factor of two. An op is aimed at what was learned when it was
   tracked: a later estimate moves only polls scheduled before anything of the
   kind was learned.
3. **Progress.** Two observations of items done give a rate: the next poll is
   aimed at the predicted finish.
4. **No progress.** Poll times grow geometrically (``growth``: a poll at most
   50% of the elapsed time late), jittered, each delay within
   ``[min_delay, max_delay]``. Inside the kind's learned *window* (from the
   learned first poll to ``WINDOW`` spreads past the learned finish), where its
   ops do finish, they grow by ``learned_growth`` (35% late at most), and no
   poll comes before the learned first poll.
5. **Cold start hint.** While nothing of a kind has finished yet, an op that
   was already polled once waits while ``TRUSTED`` (3) older ops of its kind,
   all still followed and seen running with nothing done, are older than it,
   but by at most ``max_hold`` from when its poll was due, and an op older
   than ``stale_after`` (stuck, overdue) is no evidence at all. One or two
   stuck ops never hold anything back. When the kind's first op finishes,
   held ops are moved to the learned finish at once.
"""

from __future__ import annotations

import math
import random
from typing import Final

import attrs

from wesog_async._retry import PollPolicy

#: Weight of the newest sample in the learned completion time, once more than
#: ``1 / ALPHA`` samples were seen (a plain mean of the first ones). 0.3 made
#: the aim of neighbouring ops swing threefold on a lognormal server.
ALPHA: Final = 0.15
#: The learned first poll comes this share of the spread before the learned finish.
AIM_BELOW: Final = 0.25
#: The learned window ends this many spreads past the learned finish.
WINDOW: Final = 2.0
#: A sample further than this (in log space: a factor of 2) from the estimate is clipped.
CLIP: Final = math.log(2.0)
#: Samples of a kind before a learned first poll may come later than the cold guess.
TRUSTED: Final = 3
#: A learned finish is aimed this long (plus 1% of it) after the server's
#: duration. Small: the first poll is timed from the 202's arrival, half a
#: round trip after the server created the op, and reaches the server half a
#: round trip after it leaves; loop timers fire late, never early. (2 ms, the
#: old slack, kept a client that follows a fast server waiting on itself.)
FINISH_SLACK: Final = 0.0005

Kind = tuple[str, int]


def kind_of(method: str, num_total: int) -> Kind:
    """The learning key of an operation: its method and size class."""
    return (method, max(num_total, 1).bit_length())


@attrs.define
class Estimate:
    """What was learned about one kind: log of observed / guessed completion
    time, and the mean absolute deviation of that log-ratio."""

    log_ratio: float
    spread: float = 0.0
    samples: int = 1

    def add(self, sample: float) -> None:
        deviation = sample - self.log_ratio
        if self.samples >= 2:
            deviation = max(-CLIP, min(CLIP, deviation))
        weight = max(ALPHA, 1.0 / (self.samples + 1))
        self.log_ratio += weight * deviation
        self.spread += weight * (abs(deviation) - self.spread)
        self.samples += 1


def _aim(policy: PollPolicy, est: Estimate, guess: float) -> float:
    """The learned first poll: ``AIM_BELOW`` spreads before the learned finish."""
    return policy.clamp(guess * math.exp(est.log_ratio - AIM_BELOW * est.spread))


def server_duration(idle_ms: object, exec_ms: object, observed: float) -> float:
    """The op's duration by the server's timing, clamped to ``[0, observed]``;
    ``observed`` (the client's own measure) when the fields are missing or absurd."""
    if type(idle_ms) not in (int, float) or type(exec_ms) not in (int, float):
        return observed
    total = (float(idle_ms) + float(exec_ms)) / 1000.0  # type: ignore[arg-type]
    if not math.isfinite(total) or total < 0:
        return observed
    return min(total, observed)


class Schedule:
    """Learned state of one poller and the delays it implies."""

    def __init__(self) -> None:
        self._learned: dict[Kind, Estimate] = {}
        # Cold kinds: when the TRUSTED oldest ops seen running with nothing
        # done were submitted (still followed), the evidence of rule 5.
        self._running: dict[Kind, list[float]] = {}

    def estimate(self, kind: Kind) -> Estimate | None:
        """What was learned about ``kind``, if anything."""
        return self._learned.get(kind)

    def first_delay(self, policy: PollPolicy, kind: Kind, num_total: int) -> float:
        """Rule 1: delay of the first poll after submit."""
        guess = policy.first(num_total, None, None)
        est = self._learned.get(kind) if policy.learn else None
        if est is None:
            return guess
        learned = _aim(policy, est, guess)
        # Sooner on one sample, later only once TRUSTED agree: one slow op
        # (an outlier) never holds back the first poll of the next.
        return learned if est.samples >= TRUSTED else min(learned, guess)

    def learn(
        self,
        policy: PollPolicy,
        kind: Kind,
        num_total: int,
        *,
        submitted_at: float,
        now: float,
        idle_ms: object = None,
        exec_ms: object = None,
        running_age: float = 0.0,
    ) -> None:
        """Rule 2: an op of ``kind`` was seen finished at ``now``, and last seen
        running at ``running_age`` seconds after its submit."""
        if not policy.learn:
            return
        observed = max(now - submitted_at, 0.0)
        # The server's timing, cross-checked both ways: no later than the client
        # saw the op finished, no sooner than it last saw the op running. A claim
        # outside that window proves nothing: the middle of the window then.
        duration = server_duration(idle_ms, exec_ms, observed)
        seen_running = min(running_age, observed)
        if duration < seen_running:
            duration = math.sqrt(seen_running * observed)
        # Aim a little after the finish (see FINISH_SLACK).
        duration += FINISH_SLACK + 0.01 * duration
        guess = policy.first(num_total, None, None)
        if duration <= 0 or guess <= 0:
            return
        sample = math.log(duration / guess)
        est = self._learned.get(kind)
        if est is None:
            self._learned[kind] = Estimate(sample)
        else:
            est.add(sample)
        self._running.pop(kind, None)

    def seen_running(self, policy: PollPolicy, kind: Kind, submitted_at: float, now: float) -> None:
        """An op of ``kind`` was seen unfinished with nothing done (rule 5's evidence)."""
        if not policy.learn or kind in self._learned or now - submitted_at > policy.stale_after:
            return
        oldest = self._running.setdefault(kind, [])
        if submitted_at in oldest:
            return
        oldest.append(submitted_at)
        oldest.sort()
        del oldest[TRUSTED:]  # only the TRUSTED oldest ops are evidence

    def forget(self, kind: Kind, submitted_at: float) -> None:
        """An op of ``kind`` ended without finishing (failed, gone): no evidence."""
        oldest = self._running.get(kind)
        if oldest is not None and submitted_at in oldest:
            oldest.remove(submitted_at)

    def held_until(
        self, policy: PollPolicy, kind: Kind, submitted_at: float, due: float, now: float
    ) -> float | None:
        """Rule 5: a later poll time for a not-first poll due at ``due``, or ``None``."""
        if not policy.learn or kind in self._learned:
            return None
        oldest = self._running.get(kind)
        if not oldest:
            return None
        oldest[:] = [t for t in oldest if now - t <= policy.stale_after]  # stuck: no evidence
        older = [t for t in oldest if t < submitted_at]
        if len(older) < TRUSTED:
            return None  # one stuck op (or two) says nothing about the kind
        # Not older than the TRUSTED oldest ops of the kind, all still running.
        target = submitted_at + (now - max(older))
        later = min(target, due + policy.max_hold)
        return later if later > due + policy.min_delay else None

    def learned_delay(self, policy: PollPolicy, kind: Kind, num_total: int) -> float | None:
        """The learned first-poll delay of ``kind`` as it stands (``None`` when
        nothing is learned), however few samples: for ops already held back."""
        est = self._learned.get(kind) if policy.learn else None
        if est is None:
            return None
        return _aim(policy, est, policy.first(num_total, None, None))

    def window(self, policy: PollPolicy, kind: Kind, num_total: int) -> tuple[float, float] | None:
        """Rule 4's learned window of ``kind``, seconds after submit: from its
        learned first poll to ``WINDOW`` spreads past its learned finish
        (``None`` when nothing is learned)."""
        est = self._learned.get(kind) if policy.learn else None
        if est is None:
            return None
        guess = policy.first(num_total, None, None)
        return _aim(policy, est, guess), guess * math.exp(est.log_ratio + WINDOW * est.spread)

    @staticmethod
    def backoff(
        policy: PollPolicy,
        first_delay: float,
        polls_without_progress: int,
        rng: random.Random,
        age: float = 0.0,
        window: tuple[float, float] | None = None,
    ) -> float:
        """Rule 4: delay after the n-th poll without progress, at least ``growth
        - 1`` of the op's ``age`` (an op whose polls were held or moved keeps
        the geometric spacing of its age, not of its poll count). With the
        kind's learned ``window``: ``learned_growth - 1`` of the age inside it,
        ``growth - 1`` past it, and never before its start."""
        if window is not None:
            start, end = window
            growth = policy.learned_growth if age < end else policy.growth
            step = (growth - 1.0) * age
            if policy.jitter:
                step *= 1.0 + rng.uniform(-policy.jitter, policy.jitter)
            return policy.clamp(max(start - age, step))
        delay = policy.backoff(max(first_delay, policy.min_delay), polls_without_progress, rng)
        return max(delay, policy.clamp((policy.growth - 1.0) * age))

    @staticmethod
    def toward_finish(policy: PollPolicy, done_before: int, at_before: float, done: int,
                      total: int, now: float) -> float:  # fmt: skip
        """Rule 3: delay to the finish predicted from two progress observations."""
        rate = (done - done_before) / max(now - at_before, 1e-6)
        return policy.clamp((total - done) / rate * 1.05)


__all__ = ["Estimate", "Kind", "Schedule", "kind_of", "server_duration"]
