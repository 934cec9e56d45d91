"""The Operation model: one write request's work items and its live status (§5)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
from collections.abc import Mapping
from typing import Any, Literal

import attrs

ItemKind = Literal["add", "put", "patch", "del"]

# D16: the operation's ``method`` by item kind.
_METHOD_OF: dict[str, str] = {"add": "add", "put": "upd", "patch": "upd", "del": "del"}


def iso_utc(epoch: float | None) -> str | None:
    """D15: ``2026-01-02T03:04:05.678Z`` (UTC, milliseconds), or ``None``."""
    if epoch is None:
        return None
    return _iso_utc(epoch)


# Every poll of an operation formats the same stamps again.
@functools.lru_cache(maxsize=4096)
def _iso_utc(epoch: float) -> str:
    stamp = dt.datetime.fromtimestamp(epoch, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _ms_between(start: float | None, end: float | None) -> float:
    if start is None or end is None:
        return 0.0
    return round((end - start) * 1000.0, 3)


# The fields of a delete. An empty dict (typed read-only), not a mappingproxy:
# the GC does not track an empty dict.
NO_FIELDS: Mapping[str, Any] = {}


class Items:
    """The work of one operation: image ``ids[i]`` gets ``fields[i]``.

    Two flat lists, not an object or a tuple per item: the cyclic GC keeps
    tracking a tuple that holds a dict, and then traversed every queued
    record on each of its passes.
    """

    __slots__ = ("fields", "ids")

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.fields: list[Mapping[str, Any]] = []

    def append(self, image_id: str, fields: Mapping[str, Any]) -> None:
        self.ids.append(image_id)
        self.fields.append(fields)

    def __len__(self) -> int:
        return len(self.ids)


@attrs.define(eq=False)
class Operation:
    """A queued/running/finished write. Mutated only by its tenant's worker."""

    op_id: int
    tenant: int
    kind: ItemKind
    items: Items
    do_wait: bool
    do_urgent: bool
    do_strict: bool
    generation: int
    created_at: float = attrs.field(factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    num_good: int = 0
    num_bad: int = 0
    all_good: bool | None = None
    is_started: bool = False
    is_finished: bool = False
    errors: list[dict[str, Any]] = attrs.field(factory=list)
    num_total: int = attrs.field(init=False)
    # Fault flags: the worker leaves a never-finishing op running forever; a
    # vanished op is still processed but 404s on GET /ops/{op_id}.
    never_finish: bool = False
    vanished: bool = False
    done: asyncio.Event = attrs.field(factory=asyncio.Event)

    def __attrs_post_init__(self) -> None:
        self.num_total = len(self.items)

    @property
    def method(self) -> str:
        return _METHOD_OF[self.kind]

    def start(self) -> None:
        self.is_started = True
        self.started_at = time.time()

    def record(self, index: int, error: str | None) -> None:
        """Count item ``index`` as good (``error is None``) or bad."""
        if error is None:
            self.num_good += 1
            if self.all_good is None:
                self.all_good = True
        else:
            self.num_bad += 1
            self.all_good = False
            self.errors.append({"id": index, "msg": error})

    def record_good(self, count: int) -> None:
        """Count ``count`` more items as good (``record(i, None)`` for each)."""
        self.num_good += count
        if self.all_good is None:
            self.all_good = True

    def finish(self) -> None:
        self.is_finished = True
        self.finished_at = time.time()
        self.all_good = self.num_bad == 0
        self.items = Items()  # a finished operation only reports: free its records
        self.done.set()

    def cancel(self) -> None:
        """D13: every item fails with ``cancelled``; the op never started."""
        for index in range(self.num_total):
            self.record(index, "cancelled")
        self.finish()

    def to_json(self) -> dict[str, Any]:
        """The Operation object with ``op_id`` (D1, D2, D4)."""
        return {
            "op_id": self.op_id,
            "method": self.method,
            "resource": "image",
            "num_total": self.num_total,
            "num_good": self.num_good,
            "num_bad": self.num_bad,
            "is_started": self.is_started,
            "is_finished": self.is_finished,
            "all_good": self.all_good,
            "do_wait": self.do_wait,
            "do_urgent": self.do_urgent,
            "do_strict": self.do_strict,
            "idle_ms": _ms_between(self.created_at, self.started_at),
            "exec_ms": _ms_between(self.started_at, self.finished_at),
            "created_at": iso_utc(self.created_at),
            "started_at": iso_utc(self.started_at),
            "finished_at": iso_utc(self.finished_at),
            "errors": list(self.errors),
        }
