"""OpenTelemetry spans and metrics, and request ids, against the emulator and
scripted loopback servers, read back with the SDK's in-memory exporters."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import API_KEY, make_client
from tests.test_client_http import ServerFactory
from tests.test_request_path import op_body, start
from wesog_async import (
    ClientClosedError,
    NotFoundError,
    OperationNotFoundError,
    ServerError,
    WesogClient,
)
from wesog_async._telemetry import SCOPE
from wesog_async._telemetry_labels import error_type, route_template
from wesog_async._telemetry_runs import ingest_span
from wesog_async.emulator import EmulatorServer

SRC = "https://cdn.example.com/a.jpg"

# Every attribute key a metric may carry: bounded values only, never an id.
METRIC_KEYS = {
    "http.request.method", "url.template", "server.address", "server.port",
    "http.response.status_code", "error.type", "wesog.request.kind", "wesog.status_class",
    "wesog.retry.reason", "wesog.retry.maybe_applied", "wesog.operation.method",
    "wesog.operation.outcome", "wesog.item.outcome", "wesog.ingest.mode",
    "wesog.ingest.strict", "wesog.ingest.outcome", "wesog.record.outcome",
}  # fmt: skip


class Otel:
    """An SDK tracer provider and meter provider with in-memory exporters."""

    def __init__(self) -> None:
        self.spans_exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans_exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def client(self, url: str, key: str = API_KEY, **kwargs: Any) -> WesogClient:
        return make_client(
            url, key, tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider, **kwargs,
        )  # fmt: skip

    def spans(self) -> list[ReadableSpan]:
        return list(self.spans_exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, [s.name for s in self.spans()]
        return found[0]

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """``(attributes, value)`` of every data point of metric ``name``
        (value: the sum, or the count of a histogram)."""
        data = self.reader.get_metrics_data()
        out = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                assert sm.scope.name == SCOPE
                for metric in sm.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)
                        out.append((dict(point.attributes), getattr(point, "count", value)))
        return out

    def total(self, name: str, **match: Any) -> Any:
        return sum(
            v for attrs, v in self.points(name) if all(attrs.get(k) == m for k, m in match.items())
        )

    def all_metric_attributes(self) -> list[dict[str, Any]]:
        data = self.reader.get_metrics_data()
        return [
            dict(point.attributes)
            for rm in (data.resource_metrics if data else ())
            for sm in rm.scope_metrics
            for metric in sm.metrics
            for point in metric.data.data_points
        ]

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def otel() -> Iterator[Otel]:
    providers = Otel()
    yield providers
    providers.shutdown()


def dumped(spans: list[ReadableSpan]) -> str:
    return "\n".join(s.to_json() for s in spans)


# -- one upload traced end to end ---------------------------------------------


async def test_an_upload_is_traced_end_to_end(otel: Otel, wesog_emulator: EmulatorServer) -> None:
    records = [{"id": f"img-{i}", "src": SRC} for i in range(3)]
    tracer = otel.tracer_provider.get_tracer("app")
    async with otel.client(wesog_emulator.url, key=wesog_emulator.api_key) as client:
        with tracer.start_as_current_span("app upload") as parent:
            fut = await client.images.create_many(records)
            op = await fut
    assert op.num_good == 3

    post = otel.span("POST /imgs")
    assert post.kind is trace.SpanKind.CLIENT
    assert post.instrumentation_scope is not None and post.instrumentation_scope.name == SCOPE
    attrs = post.attributes or {}
    assert attrs["http.request.method"] == "POST" and attrs["url.template"] == "/imgs"
    assert attrs["server.address"] == "127.0.0.1" and attrs["http.response.status_code"] == 202
    assert attrs["wesog.request_id"] == fut.request_id and fut.request_id
    assert post.parent is not None and post.parent.span_id == parent.get_span_context().span_id

    opspan = otel.span("operation POST /imgs")
    oattrs = opspan.attributes or {}
    assert oattrs["wesog.op_id"] == fut.op_id and oattrs["wesog.request_id"] == fut.request_id
    assert oattrs["wesog.operation.num_total"] == 3 and oattrs["wesog.operation.num_good"] == 3
    assert oattrs["wesog.operation.num_bad"] == 0 and oattrs["wesog.operation.records"] == 3
    assert opspan.status.status_code is trace.StatusCode.UNSET
    polls = [e for e in opspan.events if e.name == "poll"]
    assert polls and (polls[-1].attributes or {})["wesog.operation.is_finished"] is True
    assert oattrs["wesog.operation.polls"] == len(polls)
    # Polls are events of the operation, not spans of their own.
    assert not [s for s in otel.spans() if s.name.startswith("GET")]
    assert opspan.parent is not None and opspan.parent.span_id == post.parent.span_id
    assert opspan.start_time is not None and post.start_time is not None
    assert opspan.start_time <= post.start_time and opspan.end_time >= post.end_time  # type: ignore[operator]
    assert wesog_emulator.api_key not in dumped(otel.spans())

    assert otel.total("wesog.client.requests", **{"url.template": "/imgs"}) == 1
    assert otel.total("wesog.client.requests", **{"wesog.request.kind": "poll"}) == len(polls)
    succeeded = {"wesog.operation.outcome": "succeeded"}
    assert otel.total("wesog.client.operation.duration", **succeeded) == 1
    assert otel.total("wesog.client.operation.items", **{"wesog.item.outcome": "good"}) == 3
    assert otel.total("wesog.client.operations.pending") == 0
    assert otel.total("http.client.request.duration", **{"http.response.status_code": 202}) == 1
    stats = client.stats()
    assert otel.total("wesog.client.requests") == stats["requests"]
    for attrs_ in otel.all_metric_attributes():
        assert set(attrs_) <= METRIC_KEYS, attrs_
        assert fut.request_id not in json.dumps(attrs_) and str(fut.op_id) not in attrs_.values()


async def test_a_bulk_upload_is_one_run_span_with_its_calls_and_ops_inside(
    otel: Otel, wesog_emulator: EmulatorServer
) -> None:
    records = [{"id": f"img-{i}", "src": SRC} for i in range(10)]
    records.append({"id": "bad"})  # invalid: no src
    async with otel.client(wesog_emulator.url, key=wesog_emulator.api_key) as client:
        report = await client.images.ingest_all(records, batch_size=4)
    assert report.applied == 10 and report.invalid == 1

    run = otel.span("ingest create")
    rattrs = run.attributes or {}
    assert rattrs["wesog.ingest.records.applied"] == 10
    assert rattrs["wesog.ingest.records.invalid"] == 1
    assert rattrs["wesog.ingest.summary.total"] == 11
    posts = [s for s in otel.spans() if s.name == "POST /imgs"]
    ops = [s for s in otel.spans() if s.name == "operation POST /imgs"]
    assert len(posts) == len(ops) == report.batches == 3
    run_id = run.get_span_context().span_id
    for span in posts + ops:
        assert span.parent is not None and span.parent.span_id == run_id
        assert span.context is not None and span.context.trace_id == run.context.trace_id  # type: ignore[union-attr]
    applied = {"wesog.record.outcome": "applied", "wesog.ingest.mode": "create"}
    assert otel.total("wesog.ingest.records", **applied) == 10
    assert wesog_emulator.api_key not in dumped(otel.spans())


async def test_pending_operations_are_an_up_down_counter(
    otel: Otel, aiohttp_server: ServerFactory
) -> None:
    finished = False

    async def write(_r: web.Request) -> web.Response:
        return web.json_response(op_body(5, finished=False), status=202)

    async def poll(_r: web.Request) -> web.Response:
        return web.json_response(op_body(5, finished=finished))

    app = web.Application()
    app.router.add_post("/imgs/{image_id}", write)
    app.router.add_get("/ops/{op_id}", poll)
    url = await start(aiohttp_server, app)
    async with otel.client(url) as client:
        fut = await client.images.create({"id": "a", "src": SRC})
        assert otel.total("wesog.client.operations.pending") == 1
        finished = True
        await fut
    assert otel.total("wesog.client.operations.pending") == 0
    assert otel.span("POST /imgs/{image_id}").attributes["url.template"] == "/imgs/{image_id}"  # type: ignore[index]


# -- retries, errors and request ids ------------------------------------------


class Scripted:
    """Answers GET /imgs/{id} from a script of statuses, recording request ids."""

    def __init__(self, *statuses: int, server_id_header: str | None = "Request-Id") -> None:
        self.script = list(statuses)
        self.seen: list[str] = []
        self.header = server_id_header

    async def get(self, request: web.Request) -> web.Response:
        self.seen.append(request.headers["X-Request-ID"])
        status = self.script.pop(0) if self.script else 200
        headers = {self.header: f"srv-{len(self.seen)}"} if self.header else {}
        if status == 429:
            headers["Retry-After"] = "0"
        body = (
            {"id": request.match_info["image_id"], "src": SRC} if status == 200 else {"detail": "x"}
        )
        return web.json_response(body, status=status, headers=headers)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/imgs/{image_id}", self.get)
        return app


async def test_retries_are_span_events_and_counted_by_reason(
    otel: Otel, aiohttp_server: ServerFactory
) -> None:
    server = Scripted(503, 429)
    url = await start(aiohttp_server, server.app())
    async with otel.client(url) as client:
        await client.images.get("a")
        await client.images.get("b")
    first, second = (s for s in otel.spans() if s.name == "GET /imgs/{image_id}")
    attrs = first.attributes or {}
    assert attrs["http.request.resend_count"] == 2 and attrs["http.response.status_code"] == 200
    assert attrs["wesog.server_request_id"] == "srv-3"
    retries = [e for e in first.events if e.name == "retry"]
    assert [(e.attributes or {})["error.type"] for e in retries] == ["503", "429"]
    assert [(e.attributes or {})["wesog.attempt"] for e in retries] == [1, 2]
    assert "http.request.resend_count" not in (second.attributes or {})
    # One id per call, the same on each of its attempts; a new one per call.
    assert server.seen[0] == server.seen[1] == server.seen[2] != server.seen[3]
    assert attrs["wesog.request_id"] == server.seen[0]
    assert otel.total("wesog.client.retries", **{"wesog.retry.reason": "503"}) == 1
    assert otel.total("wesog.client.retries", **{"wesog.retry.reason": "429"}) == 1
    assert otel.total("wesog.client.throttles") == client.stats()["throttles"] == 1
    assert otel.total("wesog.client.requests", **{"wesog.status_class": "5xx"}) == 1
    assert otel.total("wesog.client.requests", **{"wesog.status_class": "2xx"}) == 2


async def test_a_failed_call_has_an_error_span_and_ids_on_the_error(
    otel: Otel, aiohttp_server: ServerFactory
) -> None:
    server = Scripted(404, server_id_header="X-Request-ID")
    url = await start(aiohttp_server, server.app())
    async with otel.client(url) as client:
        with pytest.raises(NotFoundError) as info:
            await client.images.get("missing")
    assert info.value.request_id == server.seen[0]
    assert info.value.server_request_id == "srv-1"
    span = otel.span("GET /imgs/{image_id}")
    assert span.status.status_code is trace.StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "404"
    assert otel.total("http.client.request.duration", **{"error.type": "404"}) == 1


async def test_transport_errors_carry_the_request_id(
    otel: Otel, aiohttp_server: ServerFactory
) -> None:
    seen: list[str] = []

    async def reset(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers["X-Request-ID"])
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    app = web.Application()
    app.router.add_get("/imgs/{image_id}", reset)
    url = await start(aiohttp_server, app)
    from wesog_async import RetryPolicy, TransportError

    async with otel.client(url, retry=RetryPolicy(attempts=2, backoff_initial=0.001)) as client:
        with pytest.raises(TransportError) as info:
            await client.images.get("a")
    assert info.value.request_id == seen[0] == seen[1] and info.value.server_request_id is None
    span = otel.span("GET /imgs/{image_id}")
    assert (span.attributes or {})["error.type"] == "connection_error"
    assert otel.total("wesog.client.retries", **{"wesog.retry.reason": "connection_error"}) == 1


# -- F34: a server request id that echoes the key ---------------------------------

CANARY_KEY = "test-key-CANARY-0xDEADBEEF"


@pytest.mark.parametrize("padding", [0, 110], ids=["whole", "past-the-cut"])
async def test_f34_an_echoed_key_is_scrubbed_from_the_server_request_id(
    otel: Otel, aiohttp_server: ServerFactory, caplog: pytest.LogCaptureFixture, padding: int
) -> None:
    # With 110 characters before it, cutting the header to 128 characters
    # first would keep "test-key-CANARY-0x": scrubbing must come first.
    def rid(request: web.Request) -> dict[str, str]:
        return {"Request-Id": "r" * padding + "-" + request.headers["API-Key"] + "-tail"}

    async def write(request: web.Request) -> web.Response:
        return web.json_response(op_body(1, finished=False), status=202, headers=rid(request))

    async def poll(request: web.Request) -> web.Response:
        return web.json_response(op_body(1, finished=True), headers=rid(request))

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"detail": "no such image"}, status=404, headers=rid(request))

    app = web.Application()
    app.router.add_post("/imgs/{image_id}", write)
    app.router.add_get("/ops/{op_id}", poll)
    app.router.add_get("/imgs/{image_id}", missing)
    url = await start(aiohttp_server, app)
    with caplog.at_level(logging.DEBUG, logger="wesog_async"):
        async with otel.client(url, key=CANARY_KEY) as client:
            fut = await client.images.create({"id": "a", "src": SRC})
            await fut.result(timeout=5)
            with pytest.raises(NotFoundError) as info:
                await client.images.get("a")
    error = info.value
    ids = [fut.server_request_id, error.server_request_id]
    for value in ids:
        assert value is not None and "<redacted>" in value and len(value) <= 128
    assert ids[0] == ("r" * padding + "-<redacted>-tail")[:128]
    logged = [json.dumps(r.__dict__, default=str) for r in caplog.records]
    assert any("<redacted>" in line for line in logged), "the id was not logged at all"
    seen = "\n".join([str(error), repr(error), *logged, dumped(otel.spans())])
    assert "wesog.server_request_id" in seen
    assert "CANARY" not in seen


async def test_a_failed_operation_ends_its_span_with_an_error(
    otel: Otel, aiohttp_server: ServerFactory
) -> None:
    async def write(_r: web.Request) -> web.Response:
        return web.json_response(
            op_body(9, finished=False), status=202, headers={"Request-Id": "w1"}
        )

    async def poll(_r: web.Request) -> web.Response:
        return web.json_response({"detail": "gone"}, status=404, headers={"Request-Id": "p1"})

    app = web.Application()
    app.router.add_post("/imgs/{image_id}", write)
    app.router.add_get("/ops/{op_id}", poll)
    url = await start(aiohttp_server, app)
    async with otel.client(url) as client:
        fut = await client.images.create({"id": "a", "src": SRC})
        with pytest.raises(OperationNotFoundError) as info:
            await fut
    assert fut.server_request_id == "w1"
    # The poll's ids come along when the poller wraps the 404.
    assert info.value.server_request_id == "p1" and info.value.request_id
    assert info.value.request_id != fut.request_id
    span = otel.span("operation POST /imgs/{image_id}")
    assert span.status.status_code is trace.StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "OperationNotFoundError"
    assert (span.attributes or {})["wesog.server_request_id"] == "w1"
    errored = {"wesog.operation.outcome": "error"}
    assert otel.total("wesog.client.operation.duration", **errored) == 1
    assert otel.total("wesog.client.operations.pending") == 0


async def test_closing_with_pending_operations_ends_their_spans(
    otel: Otel, aiohttp_server: ServerFactory
) -> None:
    async def write(_r: web.Request) -> web.Response:
        return web.json_response(op_body(8, finished=False), status=202)

    async def poll(_r: web.Request) -> web.Response:
        return web.json_response(op_body(8, finished=False))

    app = web.Application()
    app.router.add_post("/imgs/{image_id}", write)
    app.router.add_get("/ops/{op_id}", poll)
    url = await start(aiohttp_server, app)
    async with otel.client(url) as client:
        fut = await client.images.create({"id": "a", "src": SRC})
    with pytest.raises(ClientClosedError):
        await fut
    span = otel.span("operation POST /imgs/{image_id}")
    assert span.status.status_code is trace.StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "client_closed"
    assert otel.total("wesog.client.operations.pending") == 0


async def test_items_failed_mark_the_operation_span(
    otel: Otel, aiohttp_server: ServerFactory
) -> None:
    async def write(_r: web.Request) -> web.Response:
        body = op_body(3, 2, finished=True) | {"num_good": 1, "num_bad": 1, "all_good": False}
        body["errors"] = [{"id": 1, "msg": "bad src"}]
        return web.json_response(body, status=200)

    app = web.Application()
    app.router.add_post("/imgs", write)
    url = await start(aiohttp_server, app)
    async with otel.client(url) as client:
        fut = await client.images.create_many([{"id": "a", "src": SRC}, {"id": "b", "src": SRC}])
        op = await fut
    assert op.num_bad == 1
    span = otel.span("operation POST /imgs")
    assert span.status.status_code is trace.StatusCode.ERROR
    assert (span.attributes or {})["wesog.operation.outcome"] == "items_failed"
    assert otel.total("wesog.client.operation.items", **{"wesog.item.outcome": "bad"}) == 1
    # Resolved at submit: never pending.
    assert otel.points("wesog.client.operations.pending") == []


async def test_poll_retries_are_events_of_the_operation_span(
    otel: Otel, aiohttp_server: ServerFactory
) -> None:
    polls = 0

    async def write(_r: web.Request) -> web.Response:
        return web.json_response(op_body(4, finished=False), status=202)

    async def poll(_r: web.Request) -> web.Response:
        nonlocal polls
        polls += 1
        if polls == 1:
            return web.json_response({"detail": "busy"}, status=503)
        return web.json_response(op_body(4, finished=True))

    app = web.Application()
    app.router.add_post("/imgs/{image_id}", write)
    app.router.add_get("/ops/{op_id}", poll)
    url = await start(aiohttp_server, app)
    async with otel.client(url) as client:
        await (await client.images.create({"id": "a", "src": SRC}))
        followed = client.ops.follow(4)
        await followed
    span = otel.span("operation POST /imgs/{image_id}")
    names = [e.name for e in span.events]
    assert names[0] == "poll retry" and "poll" in names
    assert (span.events[0].attributes or {})["http.response.status_code"] == 503
    assert otel.total("wesog.client.retries", **{"wesog.request.kind": "poll"}) == 1
    assert otel.span("operation followed").attributes["wesog.op_id"] == 4  # type: ignore[index]


async def test_an_error_from_a_server_error_keeps_ids_without_telemetry(
    aiohttp_server: ServerFactory,
) -> None:
    server = Scripted(500, 500, 500, server_id_header=None)
    url = await start(aiohttp_server, server.app())
    from wesog_async import RetryPolicy

    async with make_client(url, retry=RetryPolicy(attempts=3, backoff_initial=0.001)) as client:
        assert not client.submitter.transport.telemetry.active
        with pytest.raises(ServerError) as info:
            await client.images.get("a")
    assert info.value.request_id == server.seen[-1] and info.value.server_request_id is None
    assert len(set(server.seen)) == 1 and len(server.seen[0]) == 16


# -- the ingestion helper -----------------------------------------------------


async def test_an_ingest_run_is_one_span_with_its_outcomes(
    otel: Otel, wesog_emulator: EmulatorServer
) -> None:
    async with otel.client(wesog_emulator.url, key=wesog_emulator.api_key) as client:
        with ingest_span(client, mode="add", strict=True, batch_size=2) as run:
            fut = await client.images.create_many(
                [{"id": "x", "src": SRC}, {"id": "y", "src": SRC}]
            )
            await fut
            run.event("batch", {"records": 2})
            run.record_outcome("applied", 2)
            run.record_outcome("invalid")
            run.record_outcome("applied", 0)
            run.end({"applied": 2, "invalid": 1, "note": "ok", "skip": None})  # type: ignore[dict-item]
        run.end({"applied": 99})  # ending twice changes nothing
    span = otel.span("ingest add")
    attrs = span.attributes or {}
    assert attrs["wesog.ingest.mode"] == "add" and attrs["wesog.ingest.strict"] is True
    assert attrs["wesog.ingest.batch_size"] == 2
    assert attrs["wesog.ingest.records.applied"] == 2 and attrs["wesog.ingest.records.invalid"] == 1
    assert attrs["wesog.ingest.summary.applied"] == 2 and attrs["wesog.ingest.summary.note"] == "ok"
    assert "wesog.ingest.summary.skip" not in attrs
    assert [e.name for e in span.events] == ["batch"]
    # Spans started inside the run are its children.
    for child in ("POST /imgs", "operation POST /imgs"):
        parent = otel.span(child).parent
        assert parent is not None and parent.span_id == span.context.span_id
    assert otel.total("wesog.ingest.records", **{"wesog.record.outcome": "applied"}) == 2
    assert otel.total("wesog.ingest.records", **{"wesog.record.outcome": "invalid"}) == 1
    assert otel.total("wesog.ingest.duration", **{"wesog.ingest.outcome": "ok"}) == 1


async def test_an_ingest_run_that_raises_is_an_error_span(
    otel: Otel, wesog_emulator: EmulatorServer
) -> None:
    async with otel.client(wesog_emulator.url, key=wesog_emulator.api_key) as client:
        run = ingest_span(client, mode="replace", strict=False, batch_size=10)
        with run.activate():
            inside = trace.get_current_span()
        assert inside is run.span and trace.get_current_span() is not run.span
        run.record_outcome("unknown", 3)
        run.end(error=RuntimeError("boom"))
    span = otel.span("ingest replace")
    assert span.status.status_code is trace.StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "RuntimeError"
    assert otel.total("wesog.ingest.duration", **{"wesog.ingest.outcome": "error"}) == 1


async def test_an_ingest_run_without_providers_only_counts(
    wesog_emulator: EmulatorServer,
) -> None:
    async with make_client(wesog_emulator.url, key=wesog_emulator.api_key) as client:
        with ingest_span(client, mode="add", strict=False, batch_size=5) as run:
            run.record_outcome("applied", 5)
            run.event("batch", {"records": 5})
    assert run.span is None and run.counts == {"applied": 5}


# -- pure helpers ---------------------------------------------------------------


def test_route_templates_and_error_types() -> None:
    from wesog_async import ConnectError, TransportError

    assert (
        route_template("/imgs") == "/imgs" and route_template("/imgs/a%2Fb") == "/imgs/{image_id}"
    )
    assert route_template("/ops/12") == "/ops/{op_id}" and route_template("/ops") == "/ops"
    assert route_template("/tag/image") == "/tag/image" and route_template("/x/y") == "other"
    assert error_type(ConnectError("x")) == "connect_error"
    assert error_type(TransportError("timed out waiting for the response")) == "timeout"
    assert error_type(ValueError()) == "ValueError"


# -- without OpenTelemetry, and with the global providers -----------------------


def run_python(*parts: str) -> str:
    code = "\n".join(textwrap.dedent(part) for part in parts)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


EMULATOR_UPLOAD = """
    import asyncio
    import sys
    from wesog_async import WesogClient
    from wesog_async.emulator import EmulatorConfig, EmulatorServer

    async def main():
        async with EmulatorServer(EmulatorConfig(api_keys=("k",)), port=0) as srv:
            async with WesogClient(api_key="k", base_url=srv.url) as client:
                fut = await client.images.create({"id": "a", "src": "https://x/a.jpg"})
                op = await fut
                tel = client.submitter.transport.telemetry
                loaded = "opentelemetry" in sys.modules
                print(op.num_good, tel.active, len(fut.request_id or ""), loaded)

    asyncio.run(main())
"""


def test_the_library_works_without_opentelemetry() -> None:
    blocker = """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ImportError(f"blocked: {name}")
                return None

        sys.meta_path.insert(0, Block())
    """
    out = run_python(blocker, EMULATOR_UPLOAD)
    assert out.split() == ["1", "False", "16", "False"]


def test_no_global_provider_means_no_telemetry() -> None:
    out = run_python(EMULATOR_UPLOAD)
    assert out.split() == ["1", "False", "16", "True"]


def test_a_global_sdk_provider_is_picked_up_when_the_client_opens() -> None:
    setup = """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    """
    tail = """
        print(sorted(s.name for s in exporter.get_finished_spans()))
    """
    out = run_python(setup, EMULATOR_UPLOAD, tail).splitlines()
    assert out[0].split() == ["1", "True", "16", "True"]
    assert out[1] == str(["POST /imgs/{image_id}", "operation POST /imgs/{image_id}"])
