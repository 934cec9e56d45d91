"""Counters that tests and benchmarks read to prove what the emulator did."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any


class Counters:
    """Requests, applies and faults since creation or the last :meth:`reset`.

    ``applies_by_image`` is keyed by ``(tenant index, image id)``, the tenant
    index being the position of its key in ``EmulatorConfig.api_keys``. An apply
    is a write that changed the store; a non-strict write of a missing id is a
    skip, not an apply. A *duplicate apply* is an apply identical (method and
    content) to the last one applied to the same image id: the signature of a
    request applied twice; ``duplicated`` holds the keys it happened to.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Zero every counter and restart the CPU clock."""
        self.requests: Counter[str] = Counter()
        self.responses: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()
        self.applies_by_image: Counter[tuple[int, str]] = Counter()
        self.items_applied = 0
        self.items_skipped = 0
        self.items_failed = 0
        self.duplicate_applies = 0
        self.duplicated: set[tuple[int, str]] = set()
        self.ops_created = 0
        self.ops_finished = 0
        self.ops_cancelled = 0
        self._last_apply: dict[tuple[int, str], tuple[str, int]] = {}
        self._cpu_start = time.process_time()

    def applied(self, tenant: int, image_id: str, method: str, content: Any) -> None:
        """Record one apply; ``content`` is JSON-able (``None`` for a delete)."""
        key = (tenant, image_id)
        signature = (method, _content_hash(content))
        last = self._last_apply
        if last.get(key) == signature:
            self.duplicate_applies += 1
            self.duplicated.add(key)
        last[key] = signature
        counts = self.applies_by_image
        counts[key] = counts.get(key, 0) + 1  # not += 1: Counter.__missing__ is slow
        self.items_applied += 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy of every counter (``cpu_s`` is CPU since reset)."""
        return {
            "requests": dict(self.requests),
            "responses": {str(status): n for status, n in sorted(self.responses.items())},
            "items_applied": self.items_applied,
            "items_skipped": self.items_skipped,
            "items_failed": self.items_failed,
            "duplicate_applies": self.duplicate_applies,
            "max_applies_per_image": max(self.applies_by_image.values(), default=0),
            "duplicate_image_ids": sorted({image_id for _, image_id in self.duplicated}),
            "ops_created": self.ops_created,
            "ops_finished": self.ops_finished,
            "ops_cancelled": self.ops_cancelled,
            "faults": dict(self.faults),
            "faults_injected": sum(self.faults.values()),
            "cpu_s": round(time.process_time() - self._cpu_start, 6),
        }


def _content_hash(content: Any) -> int:
    """The hash of :func:`_freeze` of ``content``, computed without the recursion
    when the content is a flat object of scalars (the common write)."""
    if type(content) is dict:
        try:
            return hash(frozenset(content.items()))
        except TypeError:  # a list value: freeze it
            pass
    return hash(_freeze(content))


def _freeze(value: Any) -> Any:
    """A hashable, order-independent form of JSON content (cheaper than a sorted
    ``json.dumps``, which used to be a quarter of the emulator's CPU)."""
    if isinstance(value, dict):
        return frozenset((k, _freeze(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value
