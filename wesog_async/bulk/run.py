"""The shared state of one ingestion (:class:`Run`): totals, gates, the
outcome queue, the journal, and *settling*: every batch is counted exactly
once, in the tally, whatever ends it."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from operator import attrgetter
from typing import Any, Final, Literal

from wesog_async._transport import Transport
from wesog_async.bulk import outcomes
from wesog_async.bulk.batcher import Batch
from wesog_async.bulk.flow import Gate
from wesog_async.bulk.journal import DONE, JournalBackend, JournalRow, open_journal
from wesog_async.bulk.options import IngestOptions
from wesog_async.bulk.records import loose_id
from wesog_async.bulk.report import Tally
from wesog_async.bulk.types import IngestReport, Outcome, RecordError

logger = logging.getLogger("wesog_async")

_PROGRESS_EVERY_S: Final = 0.1


class Run:
    """What the driver and the batch tasks of one ingestion share."""

    def __init__(self, transport: Transport, options: IngestOptions) -> None:
        self.transport = transport
        self.options = options
        self.on_progress = options.on_progress
        journal = options.journal
        self.own_journal = journal is not None and not isinstance(journal, JournalBackend)
        self.journal: JournalBackend | None = (
            None if journal is None else journal if isinstance(journal, JournalBackend)
            else open_journal(journal)
        )  # fmt: skip
        self.tally = Tally()
        self.in_flight = Gate(options.max_in_flight)
        self.pending = Gate(options.max_pending_ops)
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=options.max_pending_ops)
        self.send_tasks: set[asyncio.Task[None]] = set()
        self.wait_tasks: set[asyncio.Task[None]] = set()
        self.numbers = itertools.count(1)
        self.row_ids = itertools.count(1)
        self.pos = 0
        #: Batches journaled as submitting, then never sent: written unsent at the end.
        self.unsent_rows: list[Batch] = []
        self.fatal: BaseException | None = None
        self.stopping = False
        self.t0 = 0.0
        self.t_end: float | None = None
        self.last_progress = 0.0

    def report(self) -> IngestReport:
        end = self.t_end if self.t_end is not None else time.perf_counter()
        elapsed = max(end - self.t0, 1e-9) if self.t0 else 0.0
        return self.tally.report(elapsed, self.fatal)

    def progress(self, *, force: bool = False, done: bool = False) -> None:
        callback = self.on_progress
        if callback is None:
            return
        now = time.perf_counter()
        if not force and now - self.last_progress < _PROGRESS_EVERY_S:
            return
        self.last_progress = now
        snapshot = self.tally.progress(
            read=self.pos, ops_pending=self.pending.used, in_flight=len(self.send_tasks),
            elapsed=max(now - self.t0, 1e-9), done=done,
        )  # fmt: skip
        try:
            callback(snapshot)
        except Exception:  # a display bug must not kill an upload
            logger.exception("on_progress callback failed; progress reporting turned off")
            self.on_progress = None

    def settle(self, batch: Batch, outcome: Outcome) -> None:
        """Count ``batch`` once, in the tally (the report's source)."""
        assert not batch.settled, f"batch {batch.number} settled twice"
        batch.settled = True
        self.tally.add(outcome)
        self.progress()

    def settle_unfed(
        self, unfed: list[tuple[int, Any]], reason: str, error: BaseException | None
    ) -> list[Outcome]:
        """Records read but in no batch (a bug stopped them on the way), not sent."""
        items = [RecordError(p, loose_id(rec), reason, record=rec) for p, rec in unfed]
        return self.settle_loose(items, "not_sent", error)

    def settle_loose(
        self,
        items: list[RecordError],
        bucket: Literal["not_sent", "unknown"],
        error: BaseException | None,
    ) -> list[Outcome]:
        """Records in no batch, settled in ``bucket`` (``not_sent`` or
        ``unknown``): one outcome per run of consecutive positions."""
        runs: list[list[RecordError]] = []
        for item in sorted(items, key=attrgetter("position")):
            if runs and runs[-1][-1].position + 1 == item.position:
                runs[-1].append(item)
            else:
                runs.append([item])
        settled = []
        for run in runs:
            start, stop = run[0].position, run[-1].position + 1
            token = Batch(start)  # the span they cover, settled once like a batch
            token.stop = stop
            token.number = next(self.numbers)
            outcome = Outcome(
                token.number, None, None, range(start, stop), error=error,
                unknown=tuple(run) if bucket == "unknown" else (),
                not_sent=tuple(run) if bucket == "not_sent" else (),
            )  # fmt: skip
            self.settle(token, outcome)
            settled.append(outcome)
        return settled

    def settle_unsent(self, batch: Batch, reason: str, error: BaseException | None) -> Outcome:
        if not batch.number:
            batch.number = next(self.numbers)
        if batch.image_ids:
            outcome = outcomes.from_failure(batch, "not_sent", reason, error=error)
        else:
            outcome = Outcome(
                batch.number, None, None, batch.positions(), invalid=tuple(batch.invalid)
            )
        if batch.row_id is not None:
            self.unsent_rows.append(batch)
        self.settle(batch, outcome)
        return outcome

    async def deliver(self, outcome: Outcome) -> None:
        if not self.stopping:
            await self.queue.put(outcome)

    async def journal_write(self, write: Any) -> None:
        """Await one journal write; a failure stops the run (fatal), never a task."""
        try:
            await write
        except Exception as exc:
            if self.fatal is None:
                self.fatal = exc
            logger.error("journal write failed: %s", outcomes.describe(exc))

    async def journal_finish(self, batch: Batch, state: str, outcome: Outcome | None) -> None:
        journal, row_id = self.journal, batch.row_id
        if journal is None or row_id is None or not journal.is_open:
            return
        row = JournalRow(row_id=row_id, start=batch.start, stop=batch.stop, state=state)
        if outcome is not None and state == DONE:
            row.op_id = outcome.op_id
            row.failed = [(e.position, e.image_id, e.message) for e in outcome.failed]
            row.unknown = [(e.position, e.image_id, e.message, e.op_id) for e in outcome.unknown]
            row.n_applied = len(outcome.applied_ids)
            row.resent = outcome.resent
            if batch.has_records():  # a followed batch has no records here: its fingerprint stays
                row.fingerprint = batch.fingerprint({e.position for e in outcome.failed})
        await self.journal_write(journal.finish(row))

    def drain_queue(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()


__all__ = ["Run"]
