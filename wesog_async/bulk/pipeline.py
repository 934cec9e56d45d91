"""The driver of one ingestion: it reads the input, batches it, replays what
the journal holds and dispatches batches to their tasks (:mod:`.tasks`); see
:mod:`wesog_async.bulk` for the design.

Every batch is *settled* exactly once (counted in the tally), whatever ends
it: an outcome, an exception in submitting, following or classifying, a
cancellation, or the client closing. Slots are released in ``finally``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterable, Iterable, Iterator
from typing import Any, Final

from wesog_async._submit import Submitter
from wesog_async.bulk import outcomes
from wesog_async.bulk.batcher import Batch, Batcher
from wesog_async.bulk.journal import (
    ACCEPTED,
    DONE,
    SUBMITTING,
    UNSENT,
    Binding,
    JournalBackend,
    JournalRow,
)
from wesog_async.bulk.options import IngestOptions
from wesog_async.bulk.records import Encoder, loose_id
from wesog_async.bulk.resume import Held, Resume
from wesog_async.bulk.run import Run
from wesog_async.bulk.tasks import BatchTasks
from wesog_async.bulk.types import IngestReport, Outcome, RecordError

logger = logging.getLogger("wesog_async")

# After a stop (break, cancel), requests already on the wire get this long to
# answer, so that every batch the server accepted is journaled with its op id.
STOP_GRACE_S: Final = 10.0
# The per-record paths (an async input, a resume) yield to the event loop at
# least this often (records); the piece path reads pieces of at most this many.
_YIELD_EVERY: Final = 256
# Checked and encoded a piece at a time, a sync input is read for up to this
# many records, or this long, between loop turns (W7 holds the loop's lag). A
# turn per piece cost W1 at batch 100 about 14% of the client's CPU: each
# batch's request left in a loop turn of its own, where a burst shares one.
# Longer slices trade the loop's lag for throughput: with _turn(), W1
# b1000/k16 P1/P0 (CPU) 1.24x at 2 ms, 1.20x at 2.5 ms, and a 1 ms ticker's
# lag p99 2.7 and 3.7 ms (the target is 5).
_TURN_EVERY: Final = 4096
_TURN_AFTER_S: Final = 0.0025
DONE_MARK: Final = object()


async def _turn() -> None:
    """Give the loop a turn: what the loop's poll made ready runs before the
    reader goes on, tasks woken by it included. One ``sleep(0)`` queues the
    reader at once, so it runs first in the next iteration, ahead of the
    timer and I/O callbacks of that iteration's poll. Those callbacks only
    resolve futures, and the tasks waiting on them run one iteration later
    still. So it takes three ``sleep(0)``: the first lets the poll's
    callbacks run, the second lets the tasks they woke run, and the third
    queues the reader behind them. Measured in W1 b1000/k16: with one
    ``sleep(0)`` and 1 ms slices, a 1 ms ticker lagged 3.4 ms (p50) and P1's
    CPU ratio to P0 was 1.27x. With three and 1.75 ms slices it was 1.5 ms and
    1.21x: P1's own requests and responses no longer wait on the reader
    either."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    await asyncio.sleep(0)


class Pipeline:
    """One ingestion: the driver task reads, batches and dispatches; the batch
    tasks (:mod:`.tasks`) send and follow. Shared state lives in :class:`Run`
    (never in the iterator object, so that dropping the iterator finalizes it)."""

    def __init__(
        self,
        submitter: Submitter,
        records: Iterable[Any] | AsyncIterable[Any],
        options: IngestOptions,
        *,
        batch_size: int,
    ) -> None:
        self.run = run = Run(submitter.transport, options)
        self.tasks = BatchTasks(run, submitter)
        self.submitter = submitter
        self.records = records
        self.encoder = Encoder(options.mode)
        self.fresh = Batcher(self.encoder, batch_size=batch_size, max_bytes=options.max_batch_bytes)
        self.resends = Batcher(
            self.encoder, batch_size=batch_size, max_bytes=options.max_batch_bytes, sparse=True
        )
        self.ready: list[Batch] = []
        #: Records read that a bug left in no batch on the resume path
        #: (position, record): settled not sent, like the batcher's own.
        self.unfed: list[tuple[int, Any]] = []
        #: Verified records whose journal result a bug kept from replaying.
        self.unknown: list[RecordError] = []
        self.dispatching: Batch | None = None
        self.resume: Resume | None = None
        self.driver: asyncio.Task[None] | None = None

    @property
    def queue(self) -> asyncio.Queue[Any]:
        """Outcomes for the iterator, then :data:`DONE_MARK`."""
        return self.run.queue

    @property
    def fatal(self) -> BaseException | None:
        """The error that stopped the run, if any."""
        return self.run.fatal

    def report(self) -> IngestReport:
        return self.run.report()

    def start(self) -> None:
        self.run.t0 = time.perf_counter()
        self.driver = asyncio.get_running_loop().create_task(
            self._drive(), name="wesog_async-ingest"
        )

    async def stop(self, completed: bool) -> None:
        """Finish after the iterator ends, breaks or is cancelled."""
        try:
            if not completed:
                await self._abandon()
        finally:
            if self.run.t_end is None:
                self.run.t_end = time.perf_counter()
            journal = self.run.journal
            if journal is not None and journal.is_open:
                try:
                    for batch in self.run.unsent_rows:  # journaled, then never sent
                        await self.run.journal_finish(batch, UNSENT, None)
                finally:
                    if self.run.own_journal:
                        await journal.close()

    async def _abandon(self) -> None:
        # Stop reading; give requests on the wire a grace period so that every
        # batch the server accepted gets its op id journaled; then stop
        # following operations (nothing is cancelled server-side).
        self.run.stopping = True
        self.run.drain_queue()
        if self.driver is not None and not self.driver.done():
            self.driver.cancel()
            await asyncio.gather(self.driver, return_exceptions=True)
        if self.run.send_tasks:
            await asyncio.wait(set(self.run.send_tasks), timeout=STOP_GRACE_S)
        tasks = [*self.run.send_tasks, *self.run.wait_tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.run.drain_queue()
        pending = sorted({e.op_id for e in self.run.tally.unknown_items if e.op_id is not None})
        if pending:
            logger.warning(
                "ingestion stopped with %d operation(s) still pending on the server: %s; "
                "they go on, and a run with the same journal follows them",
                len(pending),
                pending[:20],
            )

    async def _drive(self) -> None:
        try:
            try:
                if self.run.journal is not None:
                    await self._open_journal(self.run.journal)
                await self._read_input()
                if self.resume is not None and self.run.fatal is None:
                    self.resume.check_end(self.run.pos)
                self._close_open_batches()
                await self._dispatch_ready()
            except asyncio.CancelledError:
                self._abandon_unsent(None)
                raise
            except BaseException as exc:  # input, journal or usage failure: stop, then drain
                if self.run.fatal is None:
                    self.run.fatal = exc
            if self.run.fatal is not None:
                for outcome in self._abandon_unsent(self.run.fatal):
                    await self.run.deliver(outcome)
            while self.run.send_tasks or self.run.wait_tasks:
                await asyncio.wait([*self.run.send_tasks, *self.run.wait_tasks])
            self.run.t_end = time.perf_counter()
            self.run.progress(force=True, done=True)
        finally:
            if not self.run.stopping:
                await self.run.queue.put(DONE_MARK)

    async def _open_journal(self, journal: JournalBackend) -> None:
        if not journal.is_open:
            await journal.open()
            self.run.own_journal = True  # opened here, so closed here too
        tenant = self.run.transport.tenant_fingerprint()
        binding = Binding(
            self.run.transport.base_url, tenant, self.run.options.mode, self.run.options.strict
        )
        rows = await journal.bind(binding)
        resume = Resume(
            journal.path, rows, self.encoder,
            strict=self.run.options.strict, retry_failed=self.run.options.retry_failed,
        )  # fmt: skip
        self.run.row_ids = itertools.count(resume.next_row_id)
        if resume.discarded:
            await journal.discard(resume.discarded)
        if rows:
            self.resume = resume
        for row in resume.to_follow:
            self._follow(row)

    def _follow(self, row: JournalRow) -> None:
        """Follow an operation an earlier run left pending."""
        assert row.op_id is not None
        batch = Batch(row.start, sparse=row.positions is not None)
        batch.stop, batch.resumed, batch.resent = row.stop, True, row.resent
        batch.row_id, batch.op_id, batch.number = row.row_id, row.op_id, next(self.run.numbers)
        pairs = list(zip(row.image_ids or (), row.valid_positions(), strict=False))
        batch.set_ids([i for i, _ in pairs], [p for _, p in pairs])
        batch.invalid = [RecordError(p, i, m, f, conflict_with=c) for p, i, f, m, c in row.invalid]
        batch.t0 = time.perf_counter()
        fut = self.submitter.follow(
            row.op_id, image_ids=batch.image_ids, poll=self.run.options.poll
        )
        self.run.pending.force(1)
        self.tasks.spawn_wait(batch, fut)

    async def _read_input(self) -> None:
        records, take = self.records, self._take
        countdown = _YIELD_EVERY
        if isinstance(records, AsyncIterable):
            async for rec in records:
                take(rec)
                if self.ready:
                    await self._dispatch_ready()
                    if self.run.fatal is not None:
                        return
                countdown -= 1
                if not countdown:  # an async iterable need not yield to the loop either
                    countdown = _YIELD_EVERY
                    self.run.progress()
                    await asyncio.sleep(0)  # 256-record slices: a timer waits two at most (_turn)
            return
        if self.resume is None:
            await self._read_pieces(iter(records))
            return
        for rec in records:
            take(rec)
            if self.ready:
                await self._dispatch_ready()
                if self.run.fatal is not None:
                    return
            countdown -= 1
            if not countdown:
                # A sync iterable never yields: give the loop a turn (polls,
                # responses, other tasks) every few hundred records.
                countdown = _YIELD_EVERY
                self.run.progress()
                await asyncio.sleep(0)

    async def _read_pieces(self, records: Iterator[Any]) -> None:
        """A sync input without a journal to replay: read pieces of at most
        :data:`_YIELD_EVERY` records that fit the open batch, each checked and
        encoded at once (:meth:`Batcher.feed_piece`), with a loop turn every
        :data:`_TURN_EVERY` records or :data:`_TURN_AFTER_S` (a sync iterable
        never yields on its own)."""
        run, ready, fresh = self.run, self.ready, self.fresh
        clock = time.perf_counter
        unyielded, turned = 0, clock()
        while True:
            piece: list[Any] = []
            try:
                piece.extend(itertools.islice(records, min(_YIELD_EVERY, fresh.room())))
            finally:
                # An input that raises keeps the records it gave before (extend
                # appends one by one): they are batched, and reported, first.
                if piece:
                    pos = run.pos
                    run.pos = pos + len(piece)
                    ready.extend(fresh.feed_piece(pos, piece))
            if not piece:
                return
            if ready:
                await self._dispatch_ready()
                if run.fatal is not None:
                    return
            run.progress()
            unyielded += len(piece)
            if unyielded >= _TURN_EVERY or clock() - turned >= _TURN_AFTER_S:
                await _turn()
                unyielded, turned = 0, clock()

    def _take(self, rec: Any) -> None:
        pos = self.run.pos
        self.run.pos = pos + 1
        resume = self.resume
        if resume is not None:
            try:
                verified = resume.take(pos, rec)
            except BaseException:
                # A mismatch or a bug: a record the span check holds is settled
                # with the held ones; one it does not is settled here.
                if not resume.holds(pos):
                    self.unfed.append((pos, rec))
                raise
            if verified is not None:
                closed = self.fresh.flush()  # a fresh batch never spans a journaled one
                if closed is not None:
                    self.ready.append(closed)
                self._replay_all(resume, verified)
                return
        try:
            closed = self.fresh.feed(pos, rec)
        except BaseException:
            self.fresh.strand(pos, [rec], [])  # a bug: the record is settled not sent
            raise
        if closed is not None:
            self.ready.append(closed)

    def _replay_all(self, resume: Resume, verified: Held) -> None:
        tally = self.run.tally
        for i, (pos, rec, rows) in enumerate(verified):
            counted = tally.total
            try:
                self._replay(resume, pos, rec, rows)
            except BaseException as exc:
                # A bug: the verified records not yet replayed are settled
                # below, the one it stopped on too unless counted or batched.
                held: set[int] = set()
                for batch in (self.resends.open, *self.ready):
                    if batch is not None:
                        held |= batch.held()
                if tally.total != counted:
                    held.add(pos)
                self._unreplayed([v for v in verified[i:] if v[0] not in held], exc)
                raise

    def _unreplayed(self, left: Held, exc: BaseException) -> None:
        """Verified records a bug stopped before their journal result was
        replayed: an op being followed settles its own; one an earlier run may
        have sent is unknown (nothing proves it applied); the rest not sent."""
        why = f"outcome unknown: replaying the journal failed ({outcomes.describe(exc)})"
        for pos, rec, rows in left:
            row = rows[-1]
            if row.state == ACCEPTED:
                continue  # followed (see _follow): its batch settles it
            if row.state == UNSENT:
                self.unfed.append((pos, rec))
            else:
                self.unknown.append(
                    RecordError(pos, loose_id(rec), why, op_id=row.op_id, record=rec)
                )

    def _replay(self, resume: Resume, pos: int, rec: Any, rows: list[JournalRow]) -> None:
        action, prior = resume.replay(rows, pos, rec, self.run.tally)
        if action in {"retry", "resend"}:
            closed, batch = self.resends.add(pos, rec)
            if prior is not None:
                batch.prior[pos] = prior
            batch.resent = batch.resent or action == "resend"
            if closed is not None:
                self.ready.append(closed)

    def _close_open_batches(self) -> None:
        for batcher in (self.fresh, self.resends):
            batch = batcher.flush()
            if batch is not None:
                self.ready.append(batch)

    async def _dispatch_ready(self) -> None:
        while self.ready and self.run.fatal is None:
            await self._dispatch(self.ready.pop(0))

    async def _dispatch(self, batch: Batch) -> None:
        batch.number = next(self.run.numbers)
        journal = self.run.journal
        if not batch.image_ids:  # only invalid records: nothing to send
            if journal is not None:
                batch.row_id = next(self.run.row_ids)
                await self.run.journal_write(journal.insert([batch.journal_row(DONE)]))
            outcome = Outcome(
                batch.number, None, None, batch.positions(), invalid=tuple(batch.invalid)
            )
            self.run.settle(batch, outcome)
            await self.run.deliver(outcome)
            return
        self.dispatching = batch
        await self.run.pending.acquire()
        try:
            await self.run.in_flight.acquire()
        except BaseException:
            self.run.pending.release()
            raise
        try:
            if journal is not None and self.run.fatal is None:
                # Durable before the request leaves: a crash after sending
                # leaves a row that says the batch may be on the server.
                batch.row_id = next(self.run.row_ids)
                await self.run.journal_write(journal.insert([batch.journal_row(SUBMITTING)]))
                if self.run.fatal is not None:
                    self.run.unsent_rows.append(batch)
                    batch.row_id = None
        except BaseException:
            if batch.row_id is not None:
                self.run.unsent_rows.append(batch)
                batch.row_id = None
            self.run.in_flight.release()
            self.run.pending.release()
            raise
        if self.run.fatal is not None:
            self.run.in_flight.release()
            self.run.pending.release()
            return  # left in `dispatching`: the driver reports it not sent
        self.dispatching = None
        batch.t0 = time.perf_counter()
        task = asyncio.get_running_loop().create_task(self.tasks._send(batch))
        self.run.send_tasks.add(task)
        task.add_done_callback(self.run.send_tasks.discard)
        self.run.progress()

    def _abandon_unsent(self, error: BaseException | None) -> list[Outcome]:
        """Records read but never sent (the batches being built or waiting for
        a slot), settled at once."""
        if self.resume is not None:
            # Read, but held back for a span check that never passed.
            fresh = self.fresh.flush()
            if fresh is not None:
                self.ready.append(fresh)
            for pos, rec in self.resume.held():
                self.fresh.add(pos, rec)
        stranded, self.fresh.stranded = self.fresh.stranded, []
        batches = [
            self.dispatching, *self.ready, *stranded, self.fresh.flush(), self.resends.flush()
        ]  # fmt: skip
        self.dispatching, self.ready = None, []
        reason = "not sent: " + ("ingestion stopped" if error is None else outcomes.describe(error))
        settled = [self.run.settle_unsent(b, reason, error) for b in batches if b is not None]
        unfed = [*self.fresh.unfed, *self.unfed]  # settle_unfed orders them
        self.fresh.unfed, self.unfed = [], []
        if unfed:
            settled.extend(self.run.settle_unfed(unfed, reason, error))
        unknown, self.unknown = self.unknown, []
        if unknown:
            settled.extend(self.run.settle_loose(unknown, "unknown", error))
        return settled


__all__ = ["DONE_MARK", "STOP_GRACE_S", "Pipeline"]
