"""The results of a bulk ingestion: per-record errors, per-batch outcomes, the
final report and progress snapshots (pure data)."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from wesog_async._models import Operation

IngestMode = Literal["create", "replace", "modify", "delete"]


@attrs.frozen(slots=True)
class RecordError:
    """One record that did not end applied.

    ``position`` is its 0-based index in the input, ``image_id`` its id when
    known, ``message`` the reason, ``field`` the offending field of an invalid
    record, ``op_id`` the operation it went to (if any). ``conflict_with`` is
    set on an input conflict: the position of the earlier record of the same
    batch with the same id (this one is never sent, nor resent by
    ``retry_failed``). ``record`` is what was (or would have been) sent, for
    writing failed records out; it is left out of ``repr`` and equality.
    """

    position: int
    image_id: str | None
    message: str
    field: str | None = None
    op_id: int | None = None
    record: Any = attrs.field(default=None, repr=False, eq=False)
    conflict_with: int | None = None


@attrs.frozen(slots=True)
class Outcome:
    """The result of one batch, yielded when its operation finishes.

    ``positions`` is the span of input positions the batch covers (its
    invalid records included; a retry batch spans its first to last record).
    ``operation`` is the final :class:`Operation` (``None`` when the batch
    never became one). ``error`` is the batch-level exception, if any.
    ``resumed`` marks an operation submitted by an earlier run and followed
    again from the journal. ``resent`` marks a batch sent a second time after
    a send whose outcome was unknown (a retry after a reset, timeout or 5xx,
    or a journal resume resending unknown records): the server may have
    applied its records twice (harmless for ``strict=False`` upserts).
    """

    batch: int
    op_id: int | None
    operation: Operation | None
    positions: range
    applied_ids: tuple[str, ...] = ()
    failed: tuple[RecordError, ...] = ()
    invalid: tuple[RecordError, ...] = ()
    unknown: tuple[RecordError, ...] = ()
    not_sent: tuple[RecordError, ...] = ()
    error: BaseException | None = None
    elapsed: float = 0.0
    resumed: bool = False
    resent: bool = False

    @property
    def failed_ids(self) -> tuple[str | None, ...]:
        """Image ids of the failed records."""
        return tuple(e.image_id for e in self.failed)

    @property
    def unknown_ids(self) -> tuple[str | None, ...]:
        """Image ids of the records whose outcome is unknown."""
        return tuple(e.image_id for e in self.unknown)

    @property
    def num_records(self) -> int:
        """Records this outcome accounts for."""
        return (
            len(self.applied_ids)
            + len(self.failed)
            + len(self.invalid)
            + len(self.unknown)
            + len(self.not_sent)
        )


@attrs.frozen
class IngestReport:
    """Totals of an ingestion (:func:`ingest_all`, or ``stream.report``).

    ``applied + failed + invalid + unknown + not_sent == total``. ``resumed``
    counts records whose result was already in the journal (they are included
    in ``applied``/``failed``/``invalid``/``unknown``). ``resent`` counts the
    records of the batches listed in ``resent_batches``: sent a second time
    after a send whose outcome was unknown (see :attr:`Outcome.resent`).
    ``error`` is the fatal error that stopped the run (``aborted`` is then
    true).

    "Applied" means the server's finished status proved it (see
    :func:`wesog_async.prove`). For ``strict=False`` replace, modify and
    delete, the server skips an id it does not hold and counts it good: use
    ``strict=True`` when applied must mean the image existed.
    """

    total: int = 0
    applied: int = 0
    failed: int = 0
    invalid: int = 0
    unknown: int = 0
    not_sent: int = 0
    resumed: int = 0
    resent: int = 0
    resent_batches: tuple[int, ...] = ()
    batches: int = 0
    ops: int = 0
    op_ids: tuple[int, ...] = ()
    failed_items: tuple[RecordError, ...] = ()
    invalid_items: tuple[RecordError, ...] = ()
    unknown_items: tuple[RecordError, ...] = ()
    not_sent_items: tuple[RecordError, ...] = ()
    elapsed: float = 0.0
    records_per_s: float = 0.0
    error: BaseException | None = None
    aborted: bool = False

    @property
    def ok(self) -> bool:
        """Every record applied and the run went to the end."""
        return not self.aborted and self.applied == self.total

    def summary(self) -> dict[str, Any]:
        """The counters as a JSON-ready dict (no items)."""
        return {
            "total": self.total,
            "applied": self.applied,
            "failed": self.failed,
            "invalid": self.invalid,
            "unknown": self.unknown,
            "not_sent": self.not_sent,
            "resumed": self.resumed,
            "resent": self.resent,
            "batches": self.batches,
            "ops": self.ops,
            "elapsed_s": round(self.elapsed, 3),
            "records_per_s": round(self.records_per_s, 1),
            "aborted": self.aborted,
            "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}",
        }


@attrs.frozen(slots=True)
class Progress:
    """A snapshot for progress displays (``on_progress``), at most every 100 ms.

    ``read`` records taken from the input, ``sent`` records in requests the
    server accepted, ``ops_pending`` operations accepted and not finished,
    ``requests_in_flight`` write requests on the wire. ``done`` is true for the
    last snapshot.
    """

    read: int
    sent: int
    applied: int
    failed: int
    invalid: int
    unknown: int
    not_sent: int
    resumed: int
    ops_pending: int
    requests_in_flight: int
    elapsed: float
    records_per_s: float
    done: bool = False


class InvalidRecord:
    """A placeholder an input reader yields for data it could not parse.

    The pipeline reports it invalid at its position, with ``message``.
    """

    __slots__ = ("field", "image_id", "message")

    def __init__(self, message: str, *, field: str | None = None, image_id: str | None = None):
        self.message = message
        self.field = field
        self.image_id = image_id

    def __repr__(self) -> str:
        return f"InvalidRecord({self.message!r})"


__all__ = ["IngestMode", "IngestReport", "InvalidRecord", "Outcome", "Progress", "RecordError"]
