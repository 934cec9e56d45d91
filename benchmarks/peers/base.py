"""What every peer is asked to do (:class:`Job`) and what it reports (:class:`PeerResult`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Literal

import attrs

JobKind = Literal["bulk", "singles"]

#: Every peer gives up after this long (a bound on every loop).
RUN_DEADLINE_S = 180.0

#: ``fixed`` poll schedule of the raw peers: seconds after submit (then every 0.5 s).
FIXED_SCHEDULE = (0.02, 0.04, 0.08, 0.16, 0.32, 0.5)
#: The raw peers' schedule against the fast server with no operation delay: what
#: hand-written code tuned for a server that finishes at once does (first poll
#: 1 ms after the 202). With FIXED_SCHEDULE, P0 waited on its own 20 ms first
#: poll (41-45% busy at batch 100) and was not the limit it claims to be.
FAST_SCHEDULE = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.5)


@attrs.define
class Job:
    """One unit of work, identical for every peer of a comparison.

    ``bulk``: stream ``n_records`` records in batches of ``batch_size`` with
    ``in_flight`` write requests in flight (and at most ``max_pending_ops``
    operations submitted but not yet seen finished), each batch a
    ``POST /imgs``. ``singles``: ``n_records`` concurrent tasks, each creating
    one image (``POST /imgs/{id}``) and awaiting its operation.
    """

    kind: JobKind
    url: str
    api_key: str
    n_records: int
    batch_size: int = 1000
    in_flight: int = 16
    max_pending_ops: int = 64
    prefix: str = "img"
    #: ``singles``: seconds between the starts of consecutive tasks (0: all at once).
    stagger: float = 0.0
    #: Called (in the loop) once every record has been submitted and before any
    #: result is awaited further; the memory probe measures there.
    on_all_submitted: Callable[[], Awaitable[None]] | None = None
    #: A callable started as a task next to the peer (the W7 ticker).
    companion: Callable[[], Awaitable[Any]] | None = None
    #: The raw peers' poll schedule (seconds after submit, the last repeats):
    #: :data:`FIXED_SCHEDULE`, or :data:`FAST_SCHEDULE` against the fast server.
    poll_schedule: tuple[float, ...] = FIXED_SCHEDULE
    #: Bulk jobs: ~300-byte records instead of ``{id, src}`` (see :func:`record`).
    wide: bool = False


@attrs.define
class PeerResult:
    """What one peer run did, as the peer itself saw it."""

    records_sent: int = 0
    records_good: int = 0
    records_bad: int = 0
    records_unknown: int = 0
    ops: int = 0
    polls: int = 0
    #: Records in writes the peer sent again after a failure that may have left
    #: them applied (a connection reset after the body): the duplicates the
    #: client itself reports. wesog_async reports them as
    #: ``client.stats()["ambiguous_resends"]`` and ``OperationFuture.resent``.
    records_resent: int = 0
    #: op id -> ``time.time()`` when the peer's caller saw the operation finished.
    observed: dict[int, float] = attrs.field(factory=dict)
    error: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)

    @property
    def lost(self) -> int:
        """Records with no definite outcome (neither good, bad nor reported unknown)."""
        return self.records_sent - self.records_good - self.records_bad - self.records_unknown


def record(i: int, prefix: str, *, wide: bool = False) -> dict[str, Any]:
    """Record number ``i``: the smallest valid create body (id and src), so that
    the emulator spends as little CPU per record as it can (it tokenizes text
    fields for search, which would make it the bottleneck even sooner).
    ``wide``: ~300 bytes of JSON with six more text fields (issue #13's third
    case; the fast server only). No value contains ``"id"`` (the fast server
    counts records by that key)."""
    rec = {"id": f"{prefix}-{i:08d}", "src": f"https://img.example.com/{i % 997}/{i}.jpg"}
    if wide:
        rec |= {
            "title": f"Harbour at dusk, frame {i}",
            "caption": "Boats moored in the harbour at dusk, warm light on the water",
            "alt_text": f"Fishing boats and a lighthouse, view {i % 89} from the pier",
            "author": f"Photographer {i % 113}",
            "city": "Valparaiso",
            "country": "Chile",
        }
    return rec


def records(n: int, prefix: str, *, wide: bool = False) -> Iterator[dict[str, Any]]:
    """A generator of ``n`` records (never a list: streaming is part of the test)."""
    for i in range(n):
        yield record(i, prefix, wide=wide)


def chunks(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def staggered_start(job: Job, i: int) -> None:
    """Task ``i`` of a ``singles`` job starts ``i * job.stagger`` seconds in."""
    if job.stagger > 0:
        await asyncio.sleep(i * job.stagger)


def now() -> float:
    """Wall-clock time, comparable with the emulator's finish times."""
    return time.time()


def fixed_delay(poll_number: int, schedule: tuple[float, ...] = FIXED_SCHEDULE) -> float:
    """Delay before poll ``poll_number`` (0-based) on ``schedule``."""
    return schedule[min(poll_number, len(schedule) - 1)]


Peer = Callable[[Job], Awaitable[PeerResult]]
