"""The bulk pipeline itself: one :class:`Pipeline` per ingestion (see
:mod:`wesog_async._bulk` for the design)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from wesog_async import _jsonlib, _sansio
from wesog_async import _wire as wire
from wesog_async._bulk_parts import Batch, Checks, Gate, Router, Tally, describe, is_fatal, loose_id
from wesog_async._bulk_types import (
    IngestMode,
    IngestReport,
    InvalidRecord,
    Outcome,
    Progress,
    RecordError,
)
from wesog_async._errors import (
    APIStatusError,
    BadRequestError,
    ClientClosedError,
    InvalidInputError,
    OperationFailedError,
    OperationNotFoundError,
    RateLimitError,
    WesogError,
)
from wesog_async._journal import ACCEPTED, DONE, SUBMITTING, UNKNOWN, UNSENT, Journal, JournalRow
from wesog_async._models import ImageInput, Operation
from wesog_async._retry import PollPolicy

if TYPE_CHECKING:
    from wesog_async._client import WesogClient
    from wesog_async._future import OperationFuture
    from wesog_async._submit import WriteMethod

logger = logging.getLogger("wesog_async")
_dumps: Final = _jsonlib.dumps

METHODS: Final[dict[str, WriteMethod]] = {
    "create": "POST",
    "replace": "PUT",
    "modify": "PATCH",
    "delete": "DELETE",
}
# After a stop (break, cancel), requests already on the wire get this long to
# answer, so that every batch the server accepted is journaled with its op id.
STOP_GRACE_S: Final = 10.0
# The producer yields to the event loop at least this often (records).
_YIELD_EVERY: Final = 256
_COMMA: Final = ord(",")
_PROGRESS_EVERY_S: Final = 0.1
DONE_MARK: Final = object()


class Pipeline:
    """The state of one ingestion, shared by its tasks (never by the iterator
    object itself, so that dropping the iterator finalizes it)."""

    def __init__(
        self,
        client: WesogClient,
        records: Iterable[Any] | AsyncIterable[Any],
        *,
        mode: IngestMode,
        batch_size: int | None,
        max_batch_bytes: int,
        max_in_flight: int,
        max_pending_ops: int,
        urgent: bool,
        strict: bool,
        lang: str | None,
        journal: str | os.PathLike[str] | Journal | None,
        retry_failed: bool,
        poll: PollPolicy | None,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        if mode not in METHODS:
            raise ValueError(f"mode must be one of {sorted(METHODS)}, got {mode!r}")
        size = client.batch_size if batch_size is None else batch_size
        if type(size) is not int or not 1 <= size <= client.max_batch_items:
            raise ValueError(f"batch_size must be an int from 1 to {client.max_batch_items}")
        if max_batch_bytes < 64:
            raise ValueError("max_batch_bytes must be at least 64")
        if max_in_flight < 1 or max_pending_ops < 1:
            raise ValueError("max_in_flight and max_pending_ops must be >= 1")
        if mode == "delete" and lang is not None:
            raise ValueError("delete does not take lang")
        if lang is not None:
            _sansio.write_params(wait=False, urgent=False, strict=False, lang=lang)  # checks it
        if isinstance(records, str | bytes | Mapping) or not isinstance(
            records, Iterable | AsyncIterable
        ):
            raise TypeError(f"records must be an iterable or async iterable, got {records!r:.60}")
        self.client = client
        self.records = records
        self.mode = mode
        self.method = METHODS[mode]
        self.require_src = mode in ("create", "replace")
        self.batch_size = size
        self.max_bytes = max_batch_bytes
        self.urgent, self.strict, self.lang, self.poll = urgent, strict, lang, poll
        self.retry_failed = retry_failed
        self.on_progress = on_progress
        self.own_journal = journal is not None and not isinstance(journal, Journal)
        self.journal: Journal | None = (
            journal if isinstance(journal, Journal) or journal is None else Journal(journal)
        )
        self.encode = self._encode_delete if mode == "delete" else self._encode_image
        self.checks = None if mode == "delete" else Checks(self.require_src)
        self.tally = Tally()
        self.in_flight = Gate(max_in_flight)
        self.pending = Gate(max_pending_ops)
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max_pending_ops)
        self.send_tasks: set[asyncio.Task[None]] = set()
        self.wait_tasks: set[asyncio.Task[None]] = set()
        self.numbers = itertools.count(1)
        self.pos = 0
        self.fresh: Batch | None = None
        self.sparse: Batch | None = None
        self.ready: list[Batch] = []
        self.dispatching: Batch | None = None
        self.router: Router | None = None
        self.fatal: BaseException | None = None
        self.stopping = False
        self.driver: asyncio.Task[None] | None = None
        self.t0 = 0.0
        self.t_end: float | None = None
        self.last_progress = 0.0

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.t0 = time.perf_counter()
        self.driver = loop.create_task(self._drive(), name="wesog_async-ingest")

    async def stop(self, completed: bool) -> None:
        """Finish after the iterator ends, breaks or is cancelled."""
        try:
            if not completed:
                await self._abandon()
        finally:
            if self.t_end is None:
                self.t_end = time.perf_counter()
            if self.journal is not None and self.journal.is_open:
                try:
                    await self.journal.flush()
                finally:
                    if self.own_journal:
                        await self.journal.close()

    async def _abandon(self) -> None:
        # Stop reading; give requests on the wire a grace period so that every
        # batch the server accepted gets its op id journaled; then stop
        # following operations (nothing is cancelled server-side).
        self.stopping = True
        self._drain_queue()
        if self.driver is not None and not self.driver.done():
            self.driver.cancel()
            await asyncio.gather(self.driver, return_exceptions=True)
        if self.send_tasks:
            await asyncio.wait(set(self.send_tasks), timeout=STOP_GRACE_S)
        tasks = [*self.send_tasks, *self.wait_tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._drain_queue()
        pending = [e.op_id for e in self.tally.unknown_items if e.op_id is not None]
        if pending:
            logger.warning(
                "ingestion stopped with %d operation(s) still pending on the server: %s; "
                "they go on, and a run with the same journal follows them",
                len(set(pending)),
                sorted(set(pending))[:20],
            )

    def _drain_queue(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    def report(self) -> IngestReport:
        t = self.tally
        end = self.t_end if self.t_end is not None else time.perf_counter()
        elapsed = max(end - self.t0, 1e-9) if self.t0 else 0.0
        fatal = self.fatal
        return IngestReport(
            total=t.total,
            applied=t.applied,
            failed=t.failed,
            invalid=t.invalid,
            unknown=t.unknown,
            not_sent=t.not_sent,
            resumed=t.resumed,
            batches=t.batches,
            ops=len(t.op_ids),
            op_ids=tuple(t.op_ids),
            failed_items=tuple(t.failed_items),
            invalid_items=tuple(t.invalid_items),
            unknown_items=tuple(t.unknown_items),
            not_sent_items=tuple(t.not_sent_items),
            elapsed=elapsed,
            records_per_s=(t.total - t.resumed) / elapsed if elapsed else 0.0,
            error=fatal,
            aborted=fatal is not None,
        )

    def progress(self, *, force: bool = False, done: bool = False) -> None:
        callback = self.on_progress
        if callback is None:
            return
        now = time.perf_counter()
        if not force and now - self.last_progress < _PROGRESS_EVERY_S:
            return
        self.last_progress = now
        t = self.tally
        elapsed = max(now - self.t0, 1e-9)
        snapshot = Progress(
            read=self.pos,
            sent=t.sent,
            applied=t.applied,
            failed=t.failed,
            invalid=t.invalid,
            unknown=t.unknown,
            not_sent=t.not_sent,
            resumed=t.resumed,
            ops_pending=self.pending.used,
            requests_in_flight=len(self.send_tasks),
            elapsed=elapsed,
            records_per_s=(t.total - t.resumed) / elapsed,
            done=done,
        )
        try:
            callback(snapshot)
        except Exception:  # a display bug must not kill an upload
            logger.exception("on_progress callback failed; progress reporting turned off")
            self.on_progress = None

    # -- the driver: read, batch, dispatch, then wait for the rest --------------------

    async def _drive(self) -> None:
        try:
            if self.journal is not None:
                await self._prepare_journal(self.journal)
            await self._read_input()
            self._close_open_batches()
            while self.ready and self.fatal is None:
                await self._dispatch(self.ready.pop(0))
        except asyncio.CancelledError:
            self._abandon_unsent(None)
            raise
        except BaseException as exc:  # input or journal failure: stop, then drain
            if self.fatal is None:
                self.fatal = exc
        if self.fatal is not None:
            await self._emit_many(self._abandon_unsent(self.fatal))
        while self.send_tasks or self.wait_tasks:
            await asyncio.wait([*self.send_tasks, *self.wait_tasks])
        self.t_end = time.perf_counter()
        self.progress(force=True, done=True)
        await self.queue.put(DONE_MARK)

    async def _prepare_journal(self, journal: Journal) -> None:
        if not journal.is_open:
            await journal.open()
            self.own_journal = True  # opened here, so closed here too
        rows = await journal.prepare(self.mode)
        if not rows:
            return
        self.router = Router(rows)
        for row in rows:
            if row.state == ACCEPTED and row.op_id is not None:
                self._follow(row)

    def _follow(self, row: JournalRow) -> None:
        """Follow an operation an earlier run left pending."""
        batch = Batch(row.start, sparse=row.positions is not None)
        batch.stop = row.stop
        batch.resumed = True
        batch.row_id = row.row_id
        batch.op_id = row.op_id
        batch.number = next(self.numbers)
        batch.ids = dict(zip(row.image_ids or (), row.valid_positions(), strict=False))
        batch.invalid = [RecordError(p, i, m, f) for p, i, f, m in row.invalid]
        batch.t0 = time.perf_counter()
        assert row.op_id is not None
        fut = self.client.ops.follow(row.op_id, image_ids=list(batch.ids), poll=self.poll)
        self.pending.force(1)
        self._spawn_wait(batch, fut)

    async def _read_input(self) -> None:
        records = self.records
        take = self._take
        countdown = _YIELD_EVERY
        if isinstance(records, AsyncIterable):
            async for rec in records:
                take(rec)
                if self.ready:
                    await self._dispatch_ready()
                    if self.fatal is not None:
                        return
                countdown -= 1
                if not countdown:
                    # An async iterable need not yield to the loop either.
                    countdown = _YIELD_EVERY
                    self.progress()
                    await asyncio.sleep(0)
            return
        for rec in records:
            take(rec)
            if self.ready:
                await self._dispatch_ready()
                if self.fatal is not None:
                    return
            countdown -= 1
            if not countdown:
                # A sync iterable never yields: give the loop a turn (polls,
                # responses, other tasks) every few hundred records.
                countdown = _YIELD_EVERY
                self.progress()
                await asyncio.sleep(0)

    async def _dispatch_ready(self) -> None:
        while self.ready and self.fatal is None:
            await self._dispatch(self.ready.pop(0))

    # -- per record -----------------------------------------------------------------

    def _take(self, rec: Any) -> None:
        pos = self.pos
        self.pos = pos + 1
        router = self.router
        if router is not None:
            row = router.lookup(pos)
            if row is not None:
                if self.fresh is not None:
                    self._close(self.fresh, pos)  # a fresh batch never spans a journal row
                self._replay(row, pos, rec)
                return
        batch = self.fresh
        if batch is None:
            batch = self.fresh = Batch(pos)
            batch.first_id = loose_id(rec)
        if type(rec) is dict and self.checks is not None:
            # The common case inlined (it runs once per record): a valid dict
            # that fits the batch. Anything else takes the general path.
            shape = tuple(rec)
            check = self.checks.by_shape.get(shape) or self.checks.compile(shape)
            if check(rec):
                ids = batch.ids
                image_id = rec[wire.BATCH_ID_KEY]
                if ids.setdefault(image_id, pos) == pos:
                    part = _dumps(rec)
                    nbytes = batch.nbytes + len(part) + 1
                    if nbytes <= self.max_bytes or len(ids) == 1:
                        encoded = batch.encoded  # Batch.append, inlined
                        encoded += part
                        encoded.append(_COMMA)
                        batch.ends.append(len(encoded))
                        batch.nbytes = nbytes
                        if len(ids) >= self.batch_size:
                            self._close(batch, pos + 1)
                        return
                    del ids[image_id]
        self._add(batch, pos, rec)

    def _add(self, batch: Batch, pos: int, rec: Any) -> None:
        try:
            image_id, part = self.encode(rec, pos)
        except InvalidInputError as exc:
            batch.invalid.append(RecordError(pos, exc.image_id, exc.reason, exc.field, record=rec))
            batch.stop = pos + 1
            return
        ids = batch.ids
        first = ids.setdefault(image_id, pos)
        if first != pos:
            batch.invalid.append(
                RecordError(
                    pos,
                    image_id,
                    f"duplicate id in one batch (first at position {first})",
                    "id",
                    record=rec,
                )
            )
            batch.stop = pos + 1
            return
        size = len(part) + 1
        if batch.nbytes + size > self.max_bytes and len(ids) > 1:
            del ids[image_id]
            self._close(batch, pos)
            batch = Batch(pos, sparse=batch.sparse)
            batch.first_id = image_id
            ids = batch.ids
            ids[image_id] = pos
            if batch.sparse:
                self.sparse = batch
            else:
                self.fresh = batch
        batch.append(part)
        batch.nbytes += size
        batch.stop = pos + 1
        if len(ids) >= self.batch_size:
            self._close(batch, pos + 1)

    def _close(self, batch: Batch, stop: int) -> None:
        if not batch.sparse:
            batch.stop = stop
            self.fresh = None
        else:
            self.sparse = None
        self.ready.append(batch)

    def _close_open_batches(self) -> None:
        if self.fresh is not None:
            self._close(self.fresh, self.pos)
        if self.sparse is not None:
            self._close(self.sparse, self.sparse.stop)

    def _encode_image(self, rec: Any, pos: int) -> tuple[str, bytes]:
        checks = self.checks
        if type(rec) is dict and checks is not None:
            shape = tuple(rec)
            check = checks.by_shape.get(shape) or checks.compile(shape)
            if check(rec):
                image_id: str = rec[wire.BATCH_ID_KEY]
                return image_id, _dumps(rec)
        if isinstance(rec, InvalidRecord):
            raise InvalidInputError(rec.message, field=rec.field, index=pos, image_id=rec.image_id)
        image_id, body = _sansio.image_body(rec, require_src=self.require_src, index=pos)
        return image_id, _jsonlib.dumps(body)

    def _encode_delete(self, rec: Any, pos: int) -> tuple[str, bytes]:
        if type(rec) is str:
            return _sansio.check_image_id(rec, index=pos), _jsonlib.dumps(rec)
        if isinstance(rec, InvalidRecord):
            raise InvalidInputError(rec.message, field=rec.field, index=pos, image_id=rec.image_id)
        if isinstance(rec, ImageInput):
            value: Any = rec.id
        elif isinstance(rec, Mapping):
            if wire.BATCH_ID_KEY not in rec:
                raise InvalidInputError("is required", field="id", index=pos)
            value = rec[wire.BATCH_ID_KEY]
        else:
            value = rec
        image_id = _sansio.check_image_id(value, index=pos)
        return image_id, _jsonlib.dumps(image_id)

    def _replay(self, row: JournalRow, pos: int, rec: Any) -> None:
        """A record the journal already knows about."""
        if pos == row.start and row.positions is None and row.first_id is not None:
            seen = loose_id(rec)
            if seen != row.first_id:
                raise ValueError(
                    f"this input does not match the journal: position {pos} holds id "
                    f"{seen!r}, the journal expected {row.first_id!r}. Resume with the same "
                    "input in the same order, or use a new journal."
                )
        if row.state != DONE:
            return  # pending: the operation is followed and accounts for it
        t = self.tally
        failed = row.failed_at(pos)
        invalid = row.invalid_at(pos) if failed is None else None
        if (failed is not None or invalid is not None) and self.retry_failed:
            batch = self.sparse
            if batch is None:
                batch = self.sparse = Batch(pos, sparse=True)
                batch.first_id = loose_id(rec)
            self._add(batch, pos, rec)
            return
        t.total += 1
        t.resumed += 1
        if failed is not None:
            t.failed += 1
            t.failed_items.append(
                RecordError(pos, failed[1], failed[2], op_id=row.op_id, record=rec)
            )
        elif invalid is not None:
            t.invalid += 1
            t.invalid_items.append(RecordError(pos, invalid[1], invalid[3], invalid[2], record=rec))
        else:
            t.applied += 1

    # -- per batch ------------------------------------------------------------------

    async def _dispatch(self, batch: Batch) -> None:
        batch.number = next(self.numbers)
        journal = self.journal
        if not batch.ids:  # only invalid records: nothing to send
            if journal is not None:
                batch.row_id = journal.next_row_id()
                journal.record_invalid_only(batch.journal_row(DONE))
            await self._emit(
                Outcome(batch.number, None, None, batch.positions(), invalid=tuple(batch.invalid))
            )
            return
        self.dispatching = batch
        await self.pending.acquire()
        try:
            await self.in_flight.acquire()
        except BaseException:
            self.pending.release()
            raise
        if journal is not None and journal.error is not None and self.fatal is None:
            self.fatal = journal.error
        if self.fatal is not None:
            self.in_flight.release()
            self.pending.release()
            return  # the driver reports it not sent
        self.dispatching = None
        if journal is not None:
            batch.row_id = journal.next_row_id()
            journal.record_submitting(batch.journal_row(SUBMITTING))
        batch.t0 = time.perf_counter()
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self.send_tasks.add(task)
        task.add_done_callback(self.send_tasks.discard)
        self.progress()

    async def _send(self, batch: Batch) -> None:
        """Phase 1: get the batch accepted (splitting it on 413)."""
        try:
            results = await self._submit_split(batch, [])
        except asyncio.CancelledError:
            # The stop grace ran out with the request on the wire.
            self.pending.release()
            self.tally.add(
                self._unknown_outcome(batch, "ingestion stopped while the request was in flight")
            )
            raise
        finally:
            self.in_flight.release()
        errors: list[tuple[Batch, BaseException]] = []
        reserved = True  # the pending-op slot the driver took for this batch
        for sub, result in results:
            if isinstance(result, BaseException):
                errors.append((sub, result))
                continue
            # Journal the op id first: this is what a resume relies on.
            sub.op_id = result.op_id
            self.tally.sent += len(sub.ids)
            if self.journal is not None and sub.row_id is not None:
                self.journal.record_accepted(sub.row_id, sub.op_id)
            if self.stopping:
                self.tally.add(self._unknown_outcome(sub, "ingestion stopped", op_id=sub.op_id))
                continue
            if not reserved:
                self.pending.force(1)  # a split batch: one more operation
            reserved = False
            self._spawn_wait(sub, result)
        try:
            for sub, error in errors:
                await self._emit(self._error_outcome(sub, error))
        finally:
            if reserved:
                self.pending.release()

    async def _submit_split(
        self, batch: Batch, out: list[tuple[Batch, OperationFuture | BaseException]]
    ) -> list[tuple[Batch, OperationFuture | BaseException]]:
        try:
            out.append((batch, await self._submit_one(batch)))
        except BadRequestError as exc:
            if exc.status == 413 and len(batch.ids) > 1:
                first, second = self._split(batch)
                await self._submit_split(first, out)
                await self._submit_split(second, out)
            else:
                out.append((batch, exc))
        except WesogError as exc:
            if is_fatal(exc, self.client.retry_policy.retry_after_cap) and self.fatal is None:
                self.fatal = exc
            out.append((batch, exc))
        except RuntimeError as exc:
            if not self.client.closed:
                raise
            error = ClientClosedError("the client was closed during the ingestion")
            error.__cause__ = exc
            if self.fatal is None:
                self.fatal = error
            out.append((batch, error))
        return out

    async def _submit_one(self, batch: Batch) -> OperationFuture:
        throttled = False

        def on_throttle() -> None:
            # This ingestion's own 429s, not the client's: another task's
            # throttles must not halve this one's in-flight limit.
            nonlocal throttled
            throttled = True

        try:
            fut = await self.client.submitter.submit(
                self.method,
                wire.PATH_IMAGES,
                None,
                list(batch.ids),
                wait=False,
                urgent=self.urgent,
                strict=self.strict,
                lang=self.lang,
                poll=self.poll,
                encoded=batch.body(),
                on_throttle=on_throttle,
            )
        except RateLimitError:
            self._check_throttle(throttled=True)
            raise
        self._check_throttle(throttled=throttled)
        return fut

    def _check_throttle(self, *, throttled: bool) -> None:
        if throttled:
            self.in_flight.throttled()
            logger.info("throttled: at most %d write requests in flight", self.in_flight.limit)
        else:
            self.in_flight.succeeded()

    def _split(self, batch: Batch) -> tuple[Batch, Batch]:
        items = list(batch.ids.items())
        mid = len(items) // 2
        cut = items[mid][1]
        halves = (Batch(batch.start, sparse=batch.sparse), Batch(cut, sparse=batch.sparse))
        halves[0].stop, halves[1].stop = cut, batch.stop
        all_parts = batch.parts
        for half, chunk, parts in (
            (halves[0], items[:mid], all_parts[:mid]),
            (halves[1], items[mid:], all_parts[mid:]),
        ):
            half.ids = dict(chunk)
            half.parts = parts
            half.nbytes = 2 + sum(len(p) + 1 for p in parts)
            half.invalid = [e for e in batch.invalid if (e.position < cut) == (half is halves[0])]
            half.t0 = batch.t0
        halves[0].number, halves[1].number = batch.number, next(self.numbers)
        halves[0].first_id, halves[1].first_id = batch.first_id, items[mid][0]
        if self.journal is not None and batch.row_id is not None:
            for half in halves:
                half.row_id = self.journal.next_row_id()
            self.journal.record_split(
                batch.row_id, [half.journal_row(SUBMITTING) for half in halves]
            )
        logger.info("batch %d too large (413): split in two", batch.number)
        return halves

    def _spawn_wait(self, batch: Batch, fut: OperationFuture) -> None:
        task = asyncio.get_running_loop().create_task(self._wait(batch, fut))
        self.wait_tasks.add(task)
        task.add_done_callback(self.wait_tasks.discard)

    async def _wait(self, batch: Batch, fut: OperationFuture) -> None:
        """Phase 2: wait for the operation and report its outcome."""
        try:
            try:
                op = await fut
            except OperationFailedError as exc:  # the client was told to raise
                op = exc.operation
            outcome = self._op_outcome(batch, op)
        except asyncio.CancelledError:
            self.pending.release()
            self.tally.add(
                self._unknown_outcome(
                    batch, "ingestion stopped before the operation finished", op_id=batch.op_id
                )
            )
            raise
        except WesogError as exc:
            outcome = self._unknown_outcome(batch, describe(exc), op_id=batch.op_id, error=exc)
        journal = self.journal
        if journal is not None and batch.row_id is not None:
            if isinstance(outcome.error, OperationNotFoundError):
                journal.record_final(batch.row_id, UNKNOWN)
            elif outcome.error is None:
                journal.record_final(
                    batch.row_id,
                    DONE,
                    failed=[(e.position, e.image_id, e.message) for e in outcome.failed],
                    n_applied=len(outcome.applied_ids),
                )
            # else: still pending server-side (client closed, polls failing):
            # the row stays accepted and the next run follows it again.
        try:
            await self._emit(outcome)
        finally:
            # Released only once the outcome is queued: a slow consumer holds
            # back new operations.
            self.pending.release()

    # -- outcomes -------------------------------------------------------------------

    def _elapsed(self, batch: Batch) -> float:
        return time.perf_counter() - batch.t0 if batch.t0 else 0.0

    def _op_outcome(self, batch: Batch, op: Operation) -> Outcome:
        ids = list(batch.ids)
        op_id = op.op_id if op.op_id is not None else batch.op_id
        n = len(ids)

        def outcome(
            applied: tuple[str, ...],
            failed: tuple[RecordError, ...] = (),
            unknown: tuple[RecordError, ...] = (),
        ) -> Outcome:
            return Outcome(
                batch.number,
                op_id,
                op,
                batch.positions(),
                applied_ids=applied,
                failed=failed,
                invalid=tuple(batch.invalid),
                unknown=unknown,
                elapsed=self._elapsed(batch),
                resumed=batch.resumed,
            )

        if not op.errors and op.num_bad == 0 and op.num_good == n:
            return outcome(tuple(ids))
        positions = list(batch.ids.values())
        bad: dict[int, str] = {}
        for err in op.errors:
            index = err.index
            if type(index) is int and 0 <= index < n:
                bad.setdefault(index, err.msg)
            elif isinstance(index, str) and index in batch.ids:
                bad.setdefault(ids.index(index), err.msg)
        failed = tuple(
            RecordError(positions[i], ids[i], msg, op_id=op_id, record=batch.record_at(i))
            for i, msg in sorted(bad.items())
        )
        if len(bad) == op.num_bad and op.num_good + op.num_bad == n:
            return outcome(tuple(ids[i] for i in range(n) if i not in bad), failed)
        # The counts and the error list disagree: do not guess which records
        # the server applied.
        reason = (
            f"outcome unknown: operation {op_id} reported {op.num_good} good and "
            f"{op.num_bad} bad of {n} records but listed {len(bad)} errors"
        )
        unknown = tuple(
            RecordError(positions[i], ids[i], reason, op_id=op_id) for i in range(n) if i not in bad
        )
        return outcome((), failed, unknown)

    def _records(self, batch: Batch, message: str, op_id: int | None) -> tuple[RecordError, ...]:
        return tuple(
            RecordError(pos, image_id, message, op_id=op_id, record=batch.record_at(i))
            for i, (image_id, pos) in enumerate(batch.ids.items())
        )

    def _unknown_outcome(
        self,
        batch: Batch,
        message: str,
        *,
        op_id: int | None = None,
        error: BaseException | None = None,
    ) -> Outcome:
        return Outcome(
            batch.number,
            op_id,
            None,
            batch.positions(),
            invalid=tuple(batch.invalid),
            unknown=self._records(batch, f"outcome unknown: {message}", op_id),
            error=error,
            elapsed=self._elapsed(batch),
            resumed=batch.resumed,
        )

    def _error_outcome(self, batch: Batch, exc: BaseException) -> Outcome:
        """A batch that never became an operation."""
        journal = self.journal
        row_id = batch.row_id if journal is not None else None
        failed: tuple[RecordError, ...] = ()
        unknown: tuple[RecordError, ...] = ()
        not_sent: tuple[RecordError, ...] = ()
        if is_fatal(exc, self.client.retry_policy.retry_after_cap):
            not_sent = self._records(batch, f"not sent: {exc}", None)
            state = UNSENT
        elif isinstance(exc, APIStatusError) and (exc.status < 500 or exc.status == 503):
            # 4xx, or 429/503 after the retries: certainly not applied.
            failed = self._records(batch, f"batch rejected: {exc}", None)
            state = DONE
        else:
            # 500/502/504 after the retries, a reset or timeout of a strict
            # write, a 2xx without an op id: the server may have applied it.
            unknown = self._records(batch, f"outcome unknown: {exc}", None)
            state = UNKNOWN
        if journal is not None and row_id is not None:
            journal.record_final(
                row_id, state, failed=[(e.position, e.image_id, e.message) for e in failed]
            )
        return Outcome(
            batch.number,
            None,
            None,
            batch.positions(),
            failed=failed,
            invalid=tuple(batch.invalid),
            unknown=unknown,
            not_sent=not_sent,
            error=exc,
            elapsed=self._elapsed(batch),
        )

    def _abandon_unsent(self, error: BaseException | None) -> list[Outcome]:
        """Records read but never sent (the batch being built, batches waiting
        for a slot), as outcomes; counted at once."""
        if self.fresh is not None:
            self.fresh.stop = self.pos  # still open: its span ends at the last record read
        batches = [b for b in (self.dispatching, *self.ready, self.fresh, self.sparse) if b]
        self.dispatching, self.fresh, self.sparse = None, None, None
        self.ready = []
        reason = "not sent: " + ("ingestion stopped" if error is None else describe(error))
        outcomes = []
        for batch in batches:
            if not batch.number:
                batch.number = next(self.numbers)
            outcome = Outcome(
                batch.number,
                None,
                None,
                batch.positions(),
                invalid=tuple(batch.invalid),
                not_sent=self._records(batch, reason, None),
                error=error,
            )
            if error is None:
                self.tally.add(outcome)  # cancelled: nobody reads the queue any more
            else:
                outcomes.append(outcome)
        return outcomes

    async def _emit(self, outcome: Outcome) -> None:
        self.tally.add(outcome)
        self.progress()
        if not self.stopping:
            await self.queue.put(outcome)

    async def _emit_many(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            await self._emit(outcome)


__all__ = ["DONE_MARK", "METHODS", "STOP_GRACE_S", "Pipeline"]
