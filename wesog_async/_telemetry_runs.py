"""Spans that outlive one API call: an operation from its submit to its final
status (:class:`OpObs`), and a bulk ingestion run (:class:`IngestRun`).

They use the tracer and instruments of :class:`~wesog_async._telemetry.Telemetry`
and import nothing of OpenTelemetry themselves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

from wesog_async._telemetry import Telemetry
from wesog_async._telemetry_labels import error_type, route_template

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from wesog_async._models import Operation


class OpObs:
    """One operation: its span (polls as events) and its metrics."""

    __slots__ = (
        "_done", "_pending", "_tel", "method", "polls", "records", "request_id", "route",
        "server_request_id", "span", "started_ns",
    )  # fmt: skip

    def __init__(
        self,
        tel: Telemetry,
        method: str | None,
        path: str,
        records: int,
        started_ns: int,
        request_id: str | None,
        server_request_id: str | None,
    ) -> None:
        self._tel = tel
        self.method = method or "followed"
        self.route = route_template(path)
        self.records = records
        self.started_ns = started_ns
        self.request_id = request_id
        self.server_request_id = server_request_id
        self.span: Span | None = None
        self.polls = 0
        self._pending = False
        self._done = False

    def begin(self, op_id: int | None, *, pending: bool) -> None:
        """The poller took the operation (``pending``: it will be polled)."""
        tel = self._tel
        if tel.tracing:
            attrs: dict[str, Any] = {
                "wesog.operation.method": self.method, "wesog.operation.records": self.records,
            }  # fmt: skip
            if op_id is not None:
                attrs["wesog.op_id"] = op_id
            if self.method != "followed":
                attrs["url.template"] = self.route
            if self.request_id is not None:
                attrs["wesog.request_id"] = self.request_id
            if self.server_request_id:
                attrs["wesog.server_request_id"] = self.server_request_id
            name = (
                "operation followed" if self.method == "followed"
                else f"operation {self.method} {self.route}"
            )  # fmt: skip
            self.span = tel.tracer.start_span(name, start_time=self.started_ns, attributes=attrs)
        if pending and tel.metering:
            tel.pending.add(1, {"wesog.operation.method": self.method})
            self._pending = True

    def polled(self, op: Operation) -> None:
        """A poll answered with ``op``: a span event with the progress."""
        self.polls += 1
        if self.span is not None:
            self.span.add_event(
                "poll",
                {
                    "wesog.operation.num_good": op.num_good, "wesog.operation.num_bad": op.num_bad,
                    "wesog.operation.num_total": op.num_total,
                    "wesog.operation.is_finished": op.is_finished,
                },
            )  # fmt: skip

    def done(self, fut: asyncio.Future[Operation]) -> None:
        """Done callback of the poller's future."""
        if fut.cancelled():
            self.finish(None, asyncio.CancelledError())
            return
        exc = fut.exception()
        self.finish(None if exc is not None else fut.result(), exc)

    def finish(self, op: Operation | None, exc: BaseException | None = None) -> None:
        """The final status ``op``, or the error that ended the following."""
        if self._done:
            return
        self._done = True
        tel = self._tel
        outcome = "error" if op is None else ("items_failed" if op.num_bad else "succeeded")
        if tel.metering:
            method = {"wesog.operation.method": self.method}
            if self._pending:
                tel.pending.add(-1, method)
            seconds = max(0.0, (time.time_ns() - self.started_ns) / 1e9)
            tel.op_duration.record(seconds, {**method, "wesog.operation.outcome": outcome})
            if op is not None:
                tel.op_items.add(op.num_good, {**method, "wesog.item.outcome": "good"})
                tel.op_items.add(op.num_bad, {**method, "wesog.item.outcome": "bad"})
        span = self.span
        if span is None:
            return
        span.set_attribute("wesog.operation.polls", self.polls)
        span.set_attribute("wesog.operation.outcome", outcome)
        if op is not None:
            span.set_attribute("wesog.operation.num_total", op.num_total)
            span.set_attribute("wesog.operation.num_good", op.num_good)
            span.set_attribute("wesog.operation.num_bad", op.num_bad)
            if op.num_bad:
                span.set_status(tel._status_error, f"{op.num_bad} of {op.num_total} items failed")
        elif exc is not None:
            span.set_attribute("error.type", error_type(exc))
            span.set_status(tel._status_error, f"{type(exc).__name__}: {exc}")
        span.end()


class IngestRun:
    """One bulk ingestion run: a span (current while used as a context
    manager), records counted by outcome, and the run's duration."""

    def __init__(self, tel: Telemetry, *, mode: str, strict: bool, batch_size: int) -> None:
        self._tel = tel
        self._attrs = {"wesog.ingest.mode": mode, "wesog.ingest.strict": strict}
        self.counts: dict[str, int] = {}
        self._started = time.perf_counter()
        self._ended = False
        self._tokens: list[Any] = []
        self.span: Span | None = None
        if tel.tracing:
            self.span = tel.tracer.start_span(
                f"ingest {mode}",
                attributes={**self._attrs, "wesog.ingest.batch_size": batch_size},
            )

    def record_outcome(self, bucket: str, n: int = 1) -> None:
        """Count ``n`` records that ended in ``bucket`` (a fixed name such as
        ``applied``, ``failed``, ``invalid``, ``unknown``, ``skipped``)."""
        if n <= 0:
            return
        self.counts[bucket] = self.counts.get(bucket, 0) + n
        if self._tel.metering:
            self._tel.ingest_records.add(n, {**self._attrs, "wesog.record.outcome": bucket})

    def event(self, name: str, attributes: Mapping[str, int | float | str | bool]) -> None:
        """A span event of the run (e.g. a batch submitted or a checkpoint)."""
        if self.span is not None:
            self.span.add_event(name, dict(attributes))

    @contextmanager
    def activate(self) -> Iterator[IngestRun]:
        """Make the run's span the parent of spans started inside (tasks
        created inside inherit it), without ending it."""
        if self.span is None:
            yield self
            return
        token = self._tel.attach(self.span)
        try:
            yield self
        finally:
            self._tel.detach(token)

    def __enter__(self) -> IngestRun:
        if self.span is not None:
            self._tokens.append(self._tel.attach(self.span))
        return self

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._tokens:
            self._tel.detach(self._tokens.pop())
        self.end(error=exc)

    def end(
        self,
        summary: Mapping[str, int | float | str | bool] | None = None,
        *,
        error: BaseException | None = None,
    ) -> None:
        """End the run (once): ``summary`` (e.g. the report's counts) becomes
        span attributes ``wesog.ingest.summary.<key>``; ``error`` marks it failed."""
        if self._ended:
            return
        self._ended = True
        tel = self._tel
        if tel.metering:
            outcome = {"wesog.ingest.outcome": "ok" if error is None else "error"}
            tel.ingest_duration.record(
                time.perf_counter() - self._started, {**self._attrs, **outcome}
            )
        span = self.span
        if span is None:
            return
        for bucket, n in self.counts.items():
            span.set_attribute(f"wesog.ingest.records.{bucket}", n)
        for key, value in (summary or {}).items():
            if isinstance(value, int | float | str | bool):
                span.set_attribute(f"wesog.ingest.summary.{key}", value)
        if error is not None:
            span.set_attribute("error.type", error_type(error))
            span.set_status(tel._status_error, f"{type(error).__name__}: {error}")
        span.end()


def ingest_span(target: Any, *, mode: str, strict: bool, batch_size: int) -> IngestRun:
    """The :class:`IngestRun` of one bulk ingestion through ``target`` (an open
    :class:`~wesog_async.WesogClient`, or anything with its ``submitter``):
    its span, records by outcome, duration."""
    return IngestRun(
        target.submitter.transport.telemetry, mode=mode, strict=strict, batch_size=batch_size
    )


__all__ = ["IngestRun", "OpObs", "ingest_span"]
