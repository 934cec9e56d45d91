"""The per-attempt DEBUG log line and optional OpenTelemetry spans and
metrics: the only module that imports ``opentelemetry``.

OpenTelemetry is optional (``pip install wesog-async[otel]``, the API only; the
application configures the SDK). Providers are looked up once, when a client
opens: the ones passed to :class:`~wesog_async.WesogClient` or else the global
ones. When the package is missing or no provider is configured, a request
costs one attribute check and one ``logger.isEnabledFor`` here, plus the
request id every request carries.

Request ids (made and read in :mod:`wesog_async._telemetry_labels`, with the
route templates and error types): one ``X-Request-ID`` per API call, sent
unchanged on each of its retried attempts (the attempt number tells them apart
in logs and spans); the server's id is read from the headers of
:data:`~wesog_async._wire.SERVER_REQUEST_ID_HEADERS`.

Metric attributes are bounded on purpose: route templates, methods, status
classes, reasons; never an op id, an image id or a request id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit

from wesog_async import _wire as wire
from wesog_async._attempts import maybe_applied
from wesog_async._errors import APIStatusError, ClientClosedError, WesogError
from wesog_async._telemetry_labels import error_type, op_id_of, route_template, status_class

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider


logger = logging.getLogger("wesog_async")
R = TypeVar("R")

#: The instrumentation scope of every span and instrument.
SCOPE: Final = "wesog_async"

_WRITES: Final = frozenset({"write", "strict_write"})


async def observed(sending: Awaitable[R], rid: str, obs: CallObs | None) -> R:
    """Await one attempt: its errors get the request id ``rid``; when ``obs``,
    the DEBUG line, metrics and span see the attempt."""
    started = obs.begin() if obs is not None else 0.0
    try:
        resp = await sending
    except BaseException as exc:
        if isinstance(exc, WesogError):
            exc.request_id = rid
        if obs is not None:
            obs.attempt_done(started, None, exc)
        raise
    if obs is not None:
        obs.attempt_done(started, resp, None)
    return resp


_OTEL: list[Any] = []


def _otel() -> tuple[Any, Any] | None:
    """``(opentelemetry.trace, opentelemetry.metrics)``, or ``None`` when the
    API is not installed (looked up once per process)."""
    if not _OTEL:
        try:
            from opentelemetry import metrics, trace  # noqa: PLC0415 - optional extra
        except ImportError:
            _OTEL.append(None)
        else:
            _OTEL.append((trace, metrics))
    found: tuple[Any, Any] | None = _OTEL[0]
    return found


class Telemetry:
    """The tracer and instruments of one client, or nothing (see :meth:`bind`)."""

    def __init__(
        self,
        base_url: str,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        version: str = "",
    ) -> None:
        url = urlsplit(base_url)
        self.server: dict[str, Any] = {"server.address": url.hostname or ""}
        if url.port is not None:
            self.server["server.port"] = url.port
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._version = version
        self._bound = False
        #: Whether spans are recorded / metrics reported (set by :meth:`bind`).
        self.tracing = False
        self.metering = False
        self.active = False
        self.tracer: Any = None
        self._kind_client: Any = None
        self._status_error: Any = None
        self._set_in_context: Any = None

    def bind(self) -> None:
        """Look the providers up (once, when the client opens); a global one
        still unset (the API's proxy or no-op) means off."""
        if self._bound:
            return
        self._bound = True
        api = _otel()
        if api is None:
            return
        trace, metrics = api
        tp = self._tracer_provider or trace.get_tracer_provider()
        if not isinstance(tp, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            self.tracer = tp.get_tracer(SCOPE, self._version)
            self._kind_client = trace.SpanKind.CLIENT
            self._status_error = trace.StatusCode.ERROR
            self._set_in_context = trace.set_span_in_context
            self.tracing = True
        mp = self._meter_provider or metrics.get_meter_provider()
        if not isinstance(mp, metrics.NoOpMeterProvider) and (
            type(mp).__name__ != "_ProxyMeterProvider"
        ):
            self._instruments(mp.get_meter(SCOPE, self._version))
            self.metering = True
        self.active = self.tracing or self.metering

    def _instruments(self, meter: Any) -> None:
        self.request_duration = meter.create_histogram(
            "http.client.request.duration", unit="s", description="Duration of HTTP attempts."
        )
        self.requests = meter.create_counter(
            "wesog.client.requests", unit="{request}", description="HTTP attempts sent."
        )
        self.retries = meter.create_counter(
            "wesog.client.retries", unit="{retry}", description="Attempts retried, by reason."
        )
        self.throttles = meter.create_counter(
            "wesog.client.throttles", unit="{response}", description="429 responses."
        )
        self.pending = meter.create_up_down_counter(
            "wesog.client.operations.pending", unit="{operation}",
            description="Operations still followed.",
        )  # fmt: skip
        self.op_duration = meter.create_histogram(
            "wesog.client.operation.duration", unit="s",
            description="Time from submit to the final status of an operation.",
        )  # fmt: skip
        self.op_items = meter.create_counter(
            "wesog.client.operation.items", unit="{item}",
            description="Items of finished operations, good or bad.",
        )  # fmt: skip
        self.ingest_records = meter.create_counter(
            "wesog.ingest.records", unit="{record}",
            description="Records of bulk ingestion runs, by outcome.",
        )  # fmt: skip
        self.ingest_duration = meter.create_histogram(
            "wesog.ingest.duration", unit="s", description="Duration of bulk ingestion runs."
        )

    def call(
        self, method: str, path: str, kind: str, request_id: str, *, events_on: Any = None
    ) -> CallObs:
        """Observe one API call (its own CLIENT span unless ``events_on`` is the
        operation span its retries are recorded on)."""
        return CallObs(self, method, path, kind, request_id, events_on)

    def attach(self, span: Span) -> object:
        """Make ``span`` current in this context; a token for :meth:`detach`."""
        from opentelemetry import context  # noqa: PLC0415 - optional extra

        return context.attach(self._set_in_context(span))

    def detach(self, token: object) -> None:
        """Undo :meth:`attach`."""
        from opentelemetry import context  # noqa: PLC0415 - optional extra

        context.detach(token)  # type: ignore[arg-type]


class CallObs:
    """One API call: its span, and per attempt the DEBUG line and metrics."""

    __slots__ = (
        "_events", "_log", "_span", "_tel", "attempt", "kind", "last_status", "method",
        "op_id", "request_id", "route", "server_request_id",
    )  # fmt: skip

    def __init__(
        self, tel: Telemetry, method: str, path: str, kind: str, request_id: str, events_on: Any
    ) -> None:
        self._tel = tel
        self.method = method
        self.route = route_template(path)
        self.op_id = op_id_of(path) if self.route == wire.PATH_OP else None
        self.kind = kind
        self.request_id = request_id
        self.attempt = 0
        self.last_status: int | None = None
        self.server_request_id: str | None = None
        self._log = logger.isEnabledFor(logging.DEBUG)
        self._events = events_on
        self._span: Span | None = None
        if tel.tracing and events_on is None:
            attrs = {
                "http.request.method": method, "url.template": self.route,
                "wesog.request_id": request_id, **tel.server,
            }  # fmt: skip
            self._span = tel.tracer.start_span(
                f"{method} {self.route}", kind=tel._kind_client, attributes=attrs
            )

    def begin(self) -> float:
        """An attempt starts: its number and start time."""
        self.attempt += 1
        return time.perf_counter()

    def attempt_done(self, started: float, resp: Any, exc: BaseException | None) -> None:
        """One attempt ended with ``resp`` (a 2xx :class:`Response`) or ``exc``."""
        duration = time.perf_counter() - started
        status: int | None
        if exc is None:
            status, server_rid, etype = resp.status, resp.server_request_id, None
        else:
            status = exc.status if isinstance(exc, APIStatusError) else None
            server_rid = exc.server_request_id if isinstance(exc, WesogError) else None
            etype = error_type(exc)
        self.last_status, self.server_request_id = status, server_rid
        if self._log:
            outcome = status if status is not None else etype
            logger.debug(
                "%s %s -> %s in %.1f ms (attempt %d, request id %s%s%s)",
                self.method, self.route, outcome, duration * 1000, self.attempt, self.request_id,
                f", server request id {server_rid}" if server_rid else "",
                f", op {self.op_id}" if self.op_id is not None else "",
                extra={
                    "wesog_method": self.method, "wesog_route": self.route,
                    "wesog_status": status, "wesog_error": etype, "wesog_attempt": self.attempt,
                    "wesog_duration_ms": round(duration * 1000, 3), "wesog_op_id": self.op_id,
                    "wesog_request_id": self.request_id,
                    "wesog_server_request_id": server_rid, "wesog_kind": self.kind,
                },
            )  # fmt: skip
        tel = self._tel
        if not tel.metering or (isinstance(exc, ClientClosedError) and not exc.maybe_applied):
            return  # a request that never left is not counted (as in stats())
        common = {"http.request.method": self.method, "url.template": self.route}
        tel.requests.add(
            1,
            {
                **common,
                "wesog.request.kind": self.kind,
                "wesog.status_class": status_class(status),
            },
        )
        semconv = {**common, **tel.server}
        if status is not None:
            semconv["http.response.status_code"] = status
        if etype is not None:
            semconv["error.type"] = etype
        tel.request_duration.record(duration, semconv)
        if status == 429:
            tel.throttles.add(1, common)

    def retried(self, exc: BaseException, delay: float) -> None:
        """The failed attempt is sent again after ``delay`` seconds."""
        tel = self._tel
        reason = error_type(exc)
        if tel.metering:
            tel.retries.add(
                1,
                {
                    "http.request.method": self.method, "url.template": self.route,
                    "wesog.request.kind": self.kind, "wesog.retry.reason": reason,
                    "wesog.retry.maybe_applied": self.kind in _WRITES and maybe_applied(exc),
                },
            )  # fmt: skip
        target = self._span if self._span is not None else self._events
        if target is not None:
            attrs: dict[str, Any] = {
                "wesog.attempt": self.attempt, "error.type": reason,
                "wesog.retry.delay_s": round(delay, 6), "wesog.request_id": self.request_id,
            }  # fmt: skip
            if self.last_status is not None:
                attrs["http.response.status_code"] = self.last_status
            target.add_event("retry" if self._span is not None else "poll retry", attrs)

    def end(self, exc: BaseException | None) -> None:
        """The call is over (its last attempt answered 2xx unless ``exc``)."""
        span = self._span
        if span is None:
            return
        if self.last_status is not None:
            span.set_attribute("http.response.status_code", self.last_status)
        if self.attempt > 1:
            span.set_attribute("http.request.resend_count", self.attempt - 1)
        if self.server_request_id:
            span.set_attribute("wesog.server_request_id", self.server_request_id)
        if exc is not None:
            etype = error_type(exc)
            span.set_attribute("error.type", etype)
            span.set_status(self._tel._status_error, f"{type(exc).__name__}: {etype}")
        span.end()


def log_submitted(method: str, path: str, op_id: int, resp: Any) -> None:
    """The DEBUG line naming the operation a write started."""
    route = route_template(path)
    logger.debug(
        "%s %s started operation %s (request id %s)",
        method, route, op_id, resp.request_id,
        extra={
            "wesog_method": method, "wesog_route": route, "wesog_status": resp.status,
            "wesog_op_id": op_id, "wesog_request_id": resp.request_id,
            "wesog_server_request_id": resp.server_request_id,
        },
    )  # fmt: skip


__all__ = [
    "SCOPE",
    "CallObs",
    "Telemetry",
    "log_submitted",
]
