"""The public entry points of bulk ingestion: :func:`ingest`, :func:`ingest_all`
and :class:`IngestStream`."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Mapping
from types import TracebackType
from typing import Any, Protocol, Self, Unpack

from wesog_async._errors import WesogError
from wesog_async._submit import Submitter
from wesog_async._telemetry_runs import ingest_span
from wesog_async.bulk.journal import JournalMismatchError
from wesog_async.bulk.options import IngestKeywords, IngestOptions, build_options
from wesog_async.bulk.pipeline import DONE_MARK, Pipeline
from wesog_async.bulk.types import IngestReport, Outcome


class IngestTarget(Protocol):
    """What :func:`ingest` sends through: a :class:`~wesog_async.WesogClient`,
    or anything with its submitter and batch sizes."""

    @property
    def submitter(self) -> Submitter: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def max_batch_items(self) -> int: ...


class IngestStream:
    """The async iterator :func:`ingest` returns: one :class:`Outcome` per batch.

    ``report`` is the running :class:`IngestReport` (complete once iteration
    ends, and also after a break, a cancellation or a close of the client:
    records left unfinished then show as unknown, with their op ids). Use
    ``async with`` (or :meth:`aclose`) when you may stop early, so that the
    pipeline stops at once rather than when the iterator is garbage-collected.
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


_BUCKETS = ("applied", "failed", "invalid", "unknown", "not_sent")


async def _run(pipeline: Pipeline) -> AsyncGenerator[Outcome, None]:
    opts = pipeline.run.options
    traced = ingest_span(
        pipeline, mode=opts.mode, strict=opts.strict, batch_size=pipeline.fresh.batch_size
    )
    # The run's span is current only while its tasks are created: they carry
    # it (call and operation spans nest under it), the caller's context does not.
    with traced.activate():
        pipeline.start()
    completed = False
    error: BaseException | None = None
    try:
        while True:
            item = await pipeline.queue.get()
            if item is DONE_MARK:
                break
            yield item
        completed = True
    except BaseException as exc:
        error = exc
        raise
    finally:
        try:
            await pipeline.stop(completed)
        finally:
            report = pipeline.report()
            for bucket in _BUCKETS:
                traced.record_outcome(bucket, getattr(report, bucket))
            summary = {k: v for k, v in report.summary().items() if v is not None}
            traced.end(summary, error=pipeline.fatal or error)
    if pipeline.fatal is not None:
        raise pipeline.fatal


def ingest(
    client: IngestTarget,
    records: Iterable[Any] | AsyncIterable[Any],
    options: IngestOptions | None = None,
    **keywords: Unpack[IngestKeywords],
) -> IngestStream:
    """Stream ``records`` to the API in batches; yield one :class:`Outcome` per
    batch as its operation finishes.

    ``records`` is a sync or async iterable of :class:`ImageInput` or dicts
    (image ids, or either of those, for ``mode="delete"``); it is read lazily.
    The keywords are the fields of :class:`IngestOptions` (on top of
    ``options``, if given). Every record ends in exactly one bucket of the
    report: applied (proven by the server's status), failed, invalid, unknown
    or not_sent.

    Raises the fatal error (authentication, a ``Retry-After`` over the cap,
    server unreachable, client closed) after the operations already accepted
    have finished.
    """
    opts = build_options(options, keywords)
    if isinstance(records, str | bytes | Mapping) or not isinstance(
        records, Iterable | AsyncIterable
    ):
        raise TypeError(f"records must be an iterable or async iterable, got {records!r:.60}")
    size = opts.batch_size_for(client.batch_size, client.max_batch_items)
    return IngestStream(Pipeline(client.submitter, records, opts, batch_size=size))


async def ingest_all(
    client: IngestTarget,
    records: Iterable[Any] | AsyncIterable[Any],
    options: IngestOptions | None = None,
    **keywords: Unpack[IngestKeywords],
) -> IngestReport:
    """:func:`ingest` run to the end, collected into an :class:`IngestReport`.

    A fatal API error does not raise: it is stored as ``report.error`` with
    ``report.aborted = True``. Usage errors (``ValueError``, ``TypeError``,
    :class:`~wesog_async.JournalMismatchError`, although it is also a
    :class:`~wesog_async.WesogError`) and exceptions raised by the input
    still raise.
    """
    stream = ingest(client, records, options, **keywords)
    async with stream:
        try:
            async for _ in stream:
                pass
        except JournalMismatchError:
            raise  # a usage error, though a WesogError: never swallowed
        except WesogError:
            pass  # kept on the report as error / aborted
    return stream.report


__all__ = ["IngestStream", "IngestTarget", "ingest", "ingest_all"]
