"""Streaming bulk ingestion: :func:`ingest` and :func:`ingest_all`.

Records flow one way::

    input ─► validate + encode ─► batches (count, bytes) ─► submit (≤ max_in_flight)
          ─► operations pending (≤ max_pending_ops) ─► outcomes (completion order)

* Input is consumed lazily; nothing is kept per record once its batch's outcome
  is out, except counters and the records that did not end applied.
* Each record is validated once (the checks of ``client.images.create_many``)
  and encoded once; a batch body is the join of its encoded records. Invalid
  records are never sent and do not stop the run. Duplicate ids are detected
  inside one batch only (detecting them across batches would need memory that
  grows with the input).
* Two bounds: HTTP write requests in flight, and operations accepted but not
  finished. A slow consumer holds outcomes in a bounded queue, which holds the
  operations, which holds the input: backpressure all the way.
* 413 splits a batch in halves (down to single records). Throttling (429)
  halves the in-flight limit, which then grows back by one every
  few successful submits (AIMD); the client's own retries and session-wide
  cool-down still apply.
* Fatal errors (bad API key, a ``Retry-After`` over the cap, server
  unreachable): input reading stops, pending operations finish, the rejected
  batch is reported ``not_sent``, and the error is raised by the iterator.

Every record ends with exactly one result: applied, failed, invalid, unknown
(the server may or may not have applied it), or not_sent.

Modules: :mod:`._bulk_types` (results), :mod:`._bulk_parts` (validation,
batches, limits, totals), :mod:`._bulk_pipeline` (the tasks),
:mod:`._journal` (resume), and this one (the public entry points).
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from wesog_async._bulk_pipeline import DONE_MARK, Pipeline
from wesog_async._bulk_types import (
    IngestMode,
    IngestReport,
    InvalidRecord,
    Outcome,
    Progress,
    RecordError,
)
from wesog_async._errors import WesogError
from wesog_async._journal import Journal
from wesog_async._retry import PollPolicy

if TYPE_CHECKING:
    from wesog_async._client import WesogClient


class IngestStream:
    """The async iterator :func:`ingest` returns: one :class:`Outcome` per batch.

    ``report`` is the running :class:`IngestReport` (complete once iteration
    ends, and also after a break or a cancellation: records left unfinished
    then show as unknown, with their op ids). Use ``async with`` (or
    :meth:`aclose`) when you may stop early, so that the pipeline stops at once
    rather than when the iterator is garbage-collected.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self._gen = _run(pipeline)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Outcome:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop: no more input is read, accepted batches stay journaled."""
        await self._gen.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def report(self) -> IngestReport:
        """Totals so far (final once the iteration is over)."""
        return self._pipeline.report()


async def _run(pipeline: Pipeline) -> AsyncGenerator[Outcome, None]:
    pipeline.start()
    completed = False
    try:
        while True:
            item = await pipeline.queue.get()
            if item is DONE_MARK:
                break
            yield item
        completed = True
    finally:
        await pipeline.stop(completed)
    if pipeline.fatal is not None:
        raise pipeline.fatal


def ingest(
    client: WesogClient,
    records: Iterable[Any] | AsyncIterable[Any],
    *,
    mode: IngestMode = "create",
    batch_size: int | None = None,
    max_batch_bytes: int = 4_000_000,
    max_in_flight: int = 4,
    max_pending_ops: int = 16,
    urgent: bool = False,
    strict: bool = False,
    lang: str | None = None,
    journal: str | os.PathLike[str] | Journal | None = None,
    retry_failed: bool = False,
    poll: PollPolicy | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> IngestStream:
    """Stream ``records`` to the API in batches; yield one :class:`Outcome` per
    batch as its operation finishes.

    ``records`` is a sync or async iterable of :class:`ImageInput` or dicts
    (image ids, or either of those, for ``mode="delete"``); it is read lazily.
    ``mode`` picks the write: create (POST), replace (PUT), modify (PATCH) or
    delete (DELETE). Batches hold at most ``batch_size`` records (default: the
    client's) and ``max_batch_bytes`` of body. At most ``max_in_flight`` write
    requests are on the wire and ``max_pending_ops`` operations unfinished.
    ``urgent``, ``strict`` and ``lang`` are the write options; ``poll`` the
    polling policy. ``journal`` (a path or a :class:`Journal`) makes the run
    resumable: run again with the same input and journal to skip what is done
    (``retry_failed=True`` also resends failed and invalid records).
    ``on_progress`` receives a :class:`Progress` at most every 100 ms.

    Raises the fatal error (authentication, a ``Retry-After`` over the cap,
    server unreachable) after the operations already accepted have finished.
    """
    pipeline = Pipeline(
        client,
        records,
        mode=mode,
        batch_size=batch_size,
        max_batch_bytes=max_batch_bytes,
        max_in_flight=max_in_flight,
        max_pending_ops=max_pending_ops,
        urgent=urgent,
        strict=strict,
        lang=lang,
        journal=journal,
        retry_failed=retry_failed,
        poll=poll,
        on_progress=on_progress,
    )
    return IngestStream(pipeline)


async def ingest_all(
    client: WesogClient,
    records: Iterable[Any] | AsyncIterable[Any],
    *,
    mode: IngestMode = "create",
    batch_size: int | None = None,
    max_batch_bytes: int = 4_000_000,
    max_in_flight: int = 4,
    max_pending_ops: int = 16,
    urgent: bool = False,
    strict: bool = False,
    lang: str | None = None,
    journal: str | os.PathLike[str] | Journal | None = None,
    retry_failed: bool = False,
    poll: PollPolicy | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> IngestReport:
    """:func:`ingest` run to the end, collected into an :class:`IngestReport`.

    A fatal API error does not raise: it is stored as ``report.error`` with
    ``report.aborted = True``. Usage errors (``ValueError``, ``TypeError``)
    and exceptions raised by the input still raise.
    """
    stream = ingest(
        client,
        records,
        mode=mode,
        batch_size=batch_size,
        max_batch_bytes=max_batch_bytes,
        max_in_flight=max_in_flight,
        max_pending_ops=max_pending_ops,
        urgent=urgent,
        strict=strict,
        lang=lang,
        journal=journal,
        retry_failed=retry_failed,
        poll=poll,
        on_progress=on_progress,
    )
    async with stream:
        try:
            async for _ in stream:
                pass
        except WesogError:
            pass  # kept on the report as error / aborted
    return stream.report


__all__ = [
    "IngestMode",
    "IngestReport",
    "IngestStream",
    "InvalidRecord",
    "Outcome",
    "Progress",
    "RecordError",
    "ingest",
    "ingest_all",
]
