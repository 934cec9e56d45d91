"""Running totals of one ingestion, the source of :class:`IngestReport` and
:class:`Progress` (pure)."""

from __future__ import annotations

from wesog_async.bulk.types import IngestReport, Outcome, Progress, RecordError


class Tally:
    """Counts every record once: through :meth:`add` (an outcome of this run)
    or :meth:`resumed_record` (a result read from the journal)."""

    def __init__(self) -> None:
        self.total = self.applied = self.failed = self.invalid = 0
        self.unknown = self.not_sent = self.resumed = self.sent = self.resent = 0
        self.batches = 0
        self.op_ids: list[int] = []
        self.resent_batches: list[int] = []
        self.failed_items: list[RecordError] = []
        self.invalid_items: list[RecordError] = []
        self.unknown_items: list[RecordError] = []
        self.not_sent_items: list[RecordError] = []

    def add(self, o: Outcome) -> None:
        self.batches += 1
        if o.op_id is not None:
            self.op_ids.append(o.op_id)
        if o.resent:
            self.resent_batches.append(o.batch)
            self.resent += len(o.applied_ids) + len(o.failed) + len(o.unknown)
        self.applied += len(o.applied_ids)
        self.failed += len(o.failed)
        self.invalid += len(o.invalid)
        self.unknown += len(o.unknown)
        self.not_sent += len(o.not_sent)
        self.total += o.num_records
        self.failed_items.extend(o.failed)
        self.invalid_items.extend(o.invalid)
        self.unknown_items.extend(o.unknown)
        self.not_sent_items.extend(o.not_sent)

    def resumed_record(self, bucket: str, error: RecordError | None = None) -> None:
        """A record whose result the journal holds: ``applied``, ``failed``,
        ``invalid`` or ``unknown`` (``error`` says why, for the last three)."""
        self.total += 1
        self.resumed += 1
        if bucket == "applied":
            self.applied += 1
            return
        assert error is not None
        if bucket == "failed":
            self.failed += 1
            self.failed_items.append(error)
        elif bucket == "invalid":
            self.invalid += 1
            self.invalid_items.append(error)
        else:
            self.unknown += 1
            self.unknown_items.append(error)

    def report(self, elapsed: float, error: BaseException | None) -> IngestReport:
        return IngestReport(
            total=self.total,
            applied=self.applied,
            failed=self.failed,
            invalid=self.invalid,
            unknown=self.unknown,
            not_sent=self.not_sent,
            resumed=self.resumed,
            resent=self.resent,
            resent_batches=tuple(self.resent_batches),
            batches=self.batches,
            ops=len(self.op_ids),
            op_ids=tuple(self.op_ids),
            failed_items=tuple(self.failed_items),
            invalid_items=tuple(self.invalid_items),
            unknown_items=tuple(self.unknown_items),
            not_sent_items=tuple(self.not_sent_items),
            elapsed=elapsed,
            records_per_s=(self.total - self.resumed) / elapsed if elapsed else 0.0,
            error=error,
            aborted=error is not None,
        )

    def progress(
        self, *, read: int, ops_pending: int, in_flight: int, elapsed: float, done: bool
    ) -> Progress:
        return Progress(
            read=read,
            sent=self.sent,
            applied=self.applied,
            failed=self.failed,
            invalid=self.invalid,
            unknown=self.unknown,
            not_sent=self.not_sent,
            resumed=self.resumed,
            ops_pending=ops_pending,
            requests_in_flight=in_flight,
            elapsed=elapsed,
            records_per_s=(self.total - self.resumed) / elapsed,
            done=done,
        )


__all__ = ["Tally"]
