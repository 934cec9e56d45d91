"""The task of one batch: it gets the batch accepted (split in halves on
413), then follows its operation and settles it (the first half of a split
goes to a wait task of its own). Every exception in submitting, following or
classifying becomes the batch's outcome; slots are released in ``finally``."""

from __future__ import annotations

import asyncio
import logging
import time

from wesog_async import _wire as wire
from wesog_async._errors import (
    BadRequestError,
    ClientClosedError,
    OperationFailedError,
    OperationNotFoundError,
    RateLimitError,
)
from wesog_async._future import OperationFuture
from wesog_async._submit import Submitter
from wesog_async.bulk import outcomes
from wesog_async.bulk.batcher import Batch
from wesog_async.bulk.flow import Throttles
from wesog_async.bulk.journal import DONE, SUBMITTING, UNSENT
from wesog_async.bulk.run import Run
from wesog_async.bulk.types import Outcome

logger = logging.getLogger("wesog_async")


class BatchTasks:
    """Sends batches and follows their operations for one :class:`Run`."""

    def __init__(self, run: Run, submitter: Submitter) -> None:
        self.run = run
        self.submitter = submitter

    async def _send(self, batch: Batch) -> None:
        """Get the batch accepted (split in halves on 413), then follow its
        operation in this task (a split's first half in a wait task of its
        own). Holds one in-flight slot until the last request is accepted, and
        the pending slot the dispatcher took (overdrawn for a split's second
        half) until the outcome is queued."""
        todo, reserved, holding = [batch], True, True
        current: Batch | None = None
        on_wire = False
        try:
            while todo:
                current = todo.pop(0)
                if self.run.stopping:
                    self.run.settle_unsent(current, "not sent: ingestion stopped", None)
                    continue
                on_wire = True
                try:
                    fut = await self._submit_one(current)
                except Exception as exc:
                    on_wire = False
                    if (
                        isinstance(exc, BadRequestError)
                        and exc.status == 413
                        and len(current.image_ids) > 1
                    ):
                        todo[:0] = await self._split(current)
                        current = None  # replaced by its halves
                        continue
                    await self._submit_failed(current, exc)
                    continue
                on_wire = False
                current.op_id = fut.op_id
                current.resent = current.resent or fut.resent
                self.run.tally.sent += len(current.image_ids)
                if self.run.journal is not None and current.row_id is not None:
                    await self.run.journal_write(
                        self.run.journal.accept(current.row_id, current.op_id)
                    )
                if self.run.stopping:
                    self.run.settle(current, outcomes.from_failure(
                        current, "unknown", "ingestion stopped", op_id=current.op_id
                    ))  # fmt: skip
                    continue
                if not reserved:
                    self.run.pending.force(1)  # a split batch: one more operation
                reserved = False
                if todo:  # the other half still to send: wait for this one apart
                    self.spawn_wait(current, fut)
                    current = None
                    continue
                # The last operation of this send: this task waits for it (one
                # task per batch), its in-flight slot freed first.
                waiting, current = current, None
                holding = False
                self.run.in_flight.release()
                self._become_wait_task()
                try:
                    await self._wait(waiting, fut)
                except Exception:  # journal or queue: _outcome_of made the outcome, settled first
                    logger.exception("following batch %d failed", waiting.number)
                return
        except BaseException as exc:
            # Cancelled (the stop grace ran out) or a bug of ours: a batch whose
            # request had left may have been applied; the halves not sent were not.
            if current is not None and not current.settled:
                if on_wire or current.op_id is not None:
                    why = "ingestion stopped while the request was in flight"
                    if not isinstance(exc, asyncio.CancelledError):
                        logger.exception("bulk send failed")
                        why = outcomes.describe(exc)
                    self.run.settle(current, outcomes.from_failure(
                        current, "unknown", why, op_id=current.op_id, error=exc
                    ))  # fmt: skip
                else:
                    self.run.settle_unsent(current, "not sent: ingestion stopped", None)
            for sub in todo:
                self.run.settle_unsent(sub, "not sent: ingestion stopped", None)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            if holding:
                self.run.in_flight.release()
            if reserved:
                self.run.pending.release()

    def _become_wait_task(self) -> None:
        """Move the running send task to the wait tasks: a stop's grace period
        is for requests on the wire, not for operations being followed."""
        task = asyncio.current_task()
        if task is not None and task in self.run.send_tasks:
            self.run.send_tasks.discard(task)
            self.run.wait_tasks.add(task)
            task.add_done_callback(self.run.wait_tasks.discard)

    async def _submit_one(self, batch: Batch) -> OperationFuture:
        if self.run.transport.closed:  # checked here: a close after this raises mid-request
            raise ClientClosedError(
                f"the client was closed during the ingestion; {len(batch.image_ids)} record(s) "
                "were not sent",
                image_ids=batch.image_ids,
            )
        throttles = Throttles()
        opts = self.run.options
        try:
            fut = await self.submitter.submit(
                opts.method, wire.PATH_IMAGES, None, batch.image_ids,
                wait=False, urgent=opts.urgent, strict=opts.strict, lang=opts.lang,
                poll=opts.poll, encoded=batch.body(), on_throttle=throttles.hit,
            )  # fmt: skip
        except RateLimitError:
            throttles.hit()
            self._throttle(throttles)
            raise
        self._throttle(throttles)
        return fut

    def _throttle(self, throttles: Throttles) -> None:
        if throttles.apply(self.run.in_flight):
            logger.info("throttled: at most %d write requests in flight", self.run.in_flight.limit)

    async def _split(self, batch: Batch) -> tuple[Batch, Batch]:
        halves = batch.split()
        halves[1].number = next(self.run.numbers)
        if self.run.journal is not None and batch.row_id is not None:
            for half in halves:
                half.row_id = next(self.run.row_ids)
            await self.run.journal_write(
                self.run.journal.split(batch.row_id, [h.journal_row(SUBMITTING) for h in halves])
            )
        logger.info("batch %d too large (413): split in two", batch.number)
        return halves

    async def _submit_failed(self, batch: Batch, exc: BaseException) -> None:
        cap = self.run.transport.retry_policy.retry_after_cap
        bucket = outcomes.submit_bucket(exc, cap)
        if outcomes.is_fatal(exc, cap) and self.run.fatal is None:
            self.run.fatal = exc
        message = {"failed": "batch rejected: ", "not_sent": "not sent: "}.get(bucket, "")
        # A write the server accepted as the client closed: its op id is kept.
        op_ids = exc.op_ids if isinstance(exc, ClientClosedError) else ()
        outcome = outcomes.from_failure(
            batch, bucket, message + outcomes.describe(exc), error=exc,
            op_id=op_ids[0] if len(op_ids) == 1 else None,
            elapsed=time.perf_counter() - batch.t0,
        )  # fmt: skip
        self.run.settle(batch, outcome)
        await self.run.journal_finish(batch, UNSENT if bucket == "not_sent" else DONE, outcome)
        await self.run.deliver(outcome)

    def spawn_wait(self, batch: Batch, fut: OperationFuture) -> None:
        task = asyncio.get_running_loop().create_task(self._wait(batch, fut))
        self.run.wait_tasks.add(task)
        task.add_done_callback(self.run.wait_tasks.discard)

    async def _wait(self, batch: Batch, fut: OperationFuture) -> None:
        """Wait for the operation, settle the batch, journal and hand out its outcome."""
        try:
            try:
                outcome, final = await self._outcome_of(batch, fut)
            except asyncio.CancelledError:
                self.run.settle(batch, outcomes.from_failure(
                    batch, "unknown", "ingestion stopped before the operation finished",
                    op_id=batch.op_id,
                ))  # fmt: skip
                raise
            self.run.settle(batch, outcome)
            if final:  # else the row stays accepted: the next run follows the op again
                await self.run.journal_finish(batch, DONE, outcome)
            await self.run.deliver(outcome)
        finally:
            # Released once the outcome is queued: a slow consumer holds back
            # new operations.
            self.run.pending.release()

    async def _outcome_of(self, batch: Batch, fut: OperationFuture) -> tuple[Outcome, bool]:
        """The batch's outcome and whether it is final for the journal."""
        op_id = batch.op_id
        try:
            try:
                op = await fut
            except OperationFailedError as exc:  # the client was told to raise
                op = exc.operation
        except OperationNotFoundError as exc:  # the operation vanished: nothing to follow
            return outcomes.from_failure(
                batch, "unknown", outcomes.describe(exc), op_id=op_id, error=exc
            ), True  # fmt: skip
        except Exception as exc:  # closed, polls failing: still pending server-side
            return outcomes.from_failure(
                batch, "unknown", outcomes.describe(exc), op_id=op_id, error=exc
            ), False  # fmt: skip
        elapsed = time.perf_counter() - batch.t0 if batch.t0 else 0.0
        try:
            return outcomes.from_operation(batch, op, elapsed=elapsed), True
        except Exception as exc:
            logger.exception("classifying operation %s failed", op_id)
            message = f"the status could not be classified ({outcomes.describe(exc)})"
            return outcomes.from_failure(batch, "unknown", message, op_id=op_id, error=exc), True


__all__ = ["BatchTasks"]
