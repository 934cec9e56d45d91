"""When to poll an operation next: pure logic, the clock passed in as ``now``.

The rules, as documented in the README ("How waiting works"):

1. **First poll.** At the completion time learned from finished operations of
   the same *kind* (method and size class: 1, 2-3, 4-7, ... items), aimed below
   it by the observed spread; with nothing learned for the kind, after the
   policy's cold-start guess (``first_delay + per_item * items``). A learned
   time later than the guess counts only once ``TRUSTED`` samples agree, so one
   slow op never delays the next first poll. (The poller also probes a cold
   kind: its first op is polled at ``min_delay``.)
2. **Learning** uses the server's own timing (``idle_ms + exec_ms``), clamped
   to what the client saw (an op cannot finish after the client saw it
   finished, nor before it was submitted); absurd or missing timing falls back
   to the client's observation. Samples are averaged in log space, and a
   sample far from the estimate is clipped, so one outlier moves the estimate
   by at most a factor of two.
3. **Progress.** Two observations of items done give a rate: the next poll is
   aimed at the predicted finish.
4. **No progress.** Poll times grow geometrically (``growth``: a poll at most
   50% of the elapsed time late), jittered, each delay within
   ``[min_delay, max_delay]``.
5. **Cold start hint.** While nothing of a kind has finished yet, an op that
   was already polled once may wait for the age at which an *older* op of the
   same kind was still seen running with nothing done, but by at most one
   step of its own schedule (``growth - 1`` of its age) and ``max_hold``, and
   an older op past ``stale_after`` seconds (stuck, overdue) is no evidence at
   all. (The poller holds a poll once, never again and again.)
"""

from __future__ import annotations

import math
import random
from typing import Final

import attrs

from wesog_async._retry import PollPolicy

#: Weight of the newest sample in the learned completion time.
ALPHA: Final = 0.3
#: A sample further than this (in log space: a factor of 2) from the estimate is clipped.
CLIP: Final = math.log(2.0)
#: Samples of a kind before a learned first poll may come later than the cold guess.
TRUSTED: Final = 3

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
        self.log_ratio += ALPHA * deviation
        self.spread += ALPHA * (abs(deviation) - self.spread)
        self.samples += 1


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
        # Cold kinds: (submitted_at, age) of the oldest op seen running with
        # nothing done, the evidence of rule 5.
        self._running: dict[Kind, tuple[float, float]] = {}

    def estimate(self, kind: Kind) -> Estimate | None:
        """What was learned about ``kind``, if anything."""
        return self._learned.get(kind)

    def first_delay(self, policy: PollPolicy, kind: Kind, num_total: int) -> float:
        """Rule 1: delay of the first poll after submit."""
        guess = policy.first(num_total, None, None)
        est = self._learned.get(kind) if policy.learn else None
        if est is None:
            return guess
        learned = policy.clamp(guess * math.exp(est.log_ratio - est.spread))
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
    ) -> None:
        """Rule 2: an op of ``kind`` was seen finished at ``now``."""
        if not policy.learn:
            return
        observed = max(now - submitted_at, 0.0)
        duration = server_duration(idle_ms, exec_ms, observed)
        # Aim a little after the finish: a round trip and loop jitter.
        duration += 0.001 + 0.05 * duration
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
        if not policy.learn or kind in self._learned:
            return
        age = now - submitted_at
        if age > policy.stale_after:
            return
        known = self._running.get(kind)
        if known is None or submitted_at < known[0] or age > known[1]:
            if known is not None and submitted_at > known[0]:
                return  # only the oldest op's evidence is kept
            self._running[kind] = (submitted_at, age)

    def held_until(
        self, policy: PollPolicy, kind: Kind, submitted_at: float, due: float, now: float
    ) -> float | None:
        """Rule 5: a later poll time for a not-first poll due at ``due``, or ``None``."""
        if not policy.learn or kind in self._learned:
            return None
        evidence = self._running.get(kind)
        if evidence is None:
            return None
        older_submitted, older_age = evidence
        if older_submitted >= submitted_at:
            return None
        if now - older_submitted > policy.stale_after:
            del self._running[kind]
            return None
        target = submitted_at + older_age
        # At most one step of the op's own schedule (growth - 1 of its age),
        # so a slow or stuck older op cannot hold a younger one's result back
        # by more than its own backoff would.
        step = (policy.growth - 1.0) * max(due - submitted_at, 0.0)
        later = min(target, due + min(policy.max_hold, step))
        return later if later > due + policy.min_delay else None

    @staticmethod
    def backoff(
        policy: PollPolicy, first_delay: float, polls_without_progress: int, rng: random.Random
    ) -> float:
        """Rule 4: delay after the n-th poll without progress."""
        return policy.backoff(max(first_delay, policy.min_delay), polls_without_progress, rng)

    @staticmethod
    def toward_finish(policy: PollPolicy, done_before: int, at_before: float, done: int,
                      total: int, now: float) -> float:  # fmt: skip
        """Rule 3: delay to the finish predicted from two progress observations."""
        rate = (done - done_before) / max(now - at_before, 1e-6)
        return policy.clamp((total - done) / rate * 1.05)


__all__ = ["Estimate", "Kind", "Schedule", "kind_of", "server_duration"]
