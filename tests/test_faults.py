"""The FAULTS.md matrix, one test (or more) per row F1-F25.

Faults come from the emulator's injector over loopback (``state.faults``), or
from a scripted aiohttp.web / raw asyncio socket server where exact HTTP-level
control is needed. F24 (random mixes) lives in ``test_faults_stateful.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import traceback
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import pytest_asyncio
from aiohttp import web

from tests.conftest import make_client
from tests.test_client_http import OP_DONE, Recorder, ServerFactory, json_response, scripted
from wesog_async import (
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConnectError,
    ImageInput,
    OperationNotFoundError,
    OperationTimeoutError,
    OutcomeUnknownError,
    RateLimitError,
    ResponseValidationError,
    RetryPolicy,
    WesogClient,
    WesogError,
    gather_operations,
)
from wesog_async.emulator import EmulatorConfig, EmulatorServer, FaultRule

KEY = "canary-KEY-7f3a9c"
SRC = "https://cdn.example.com/a.jpg"
ONE = "POST /imgs/{image_id}"
MANY = "POST /imgs"
POLL = "GET /ops/{op_id}"
QUICK = RetryPolicy(attempts=8, budget=10.0, backoff_initial=0.002, backoff_max=0.02)


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[EmulatorServer]:
    config = EmulatorConfig(api_keys=(KEY,), item_delay_ms=0.1, workers_per_tenant=4)
    async with EmulatorServer(config, host="127.0.0.1", port=0) as server:
        yield server


def client_for(server: EmulatorServer | str, **kwargs: object) -> WesogClient:
    options: dict[str, object] = {"retry": QUICK}
    options.update(kwargs)
    return make_client(server, key=KEY, **options)


def counters(server: EmulatorServer) -> dict[str, object]:
    return server.state.counters.snapshot()


def records(n: int, prefix: str = "r") -> list[dict[str, str]]:
    return [{"id": f"{prefix}{i}", "src": f"{SRC}?{i}"} for i in range(n)]


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait for the emulator to reach a state (it processes in the background)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.002)


def assert_accounted(report: object, total: int) -> None:
    r = report
    parts = r.applied + r.failed + r.invalid + r.unknown + r.not_sent  # type: ignore[attr-defined]
    assert r.total == total and parts == total, r.summary()  # type: ignore[attr-defined]


# -- F1 F2 F3: rate limiting ---------------------------------------------------


@pytest.mark.parametrize("retry_after", ["0.05", "0.2", "date+1"])
async def test_f01_429_retry_after_is_waited_and_cools_down_the_session(
    emu: EmulatorServer, retry_after: str
) -> None:
    emu.state.faults.script(ONE, [f"429({retry_after})"])
    sleep = Recorder()
    async with client_for(emu, sleep=sleep) as client:
        submit = asyncio.create_task(client.images.create({"id": "a", "src": SRC}))
        await asyncio.sleep(0)  # the 429 first...
        while client.stats()["throttles"] == 0:
            await asyncio.sleep(0.001)
        # ...then an unrelated request of the same client waits out the cool-down.
        await client.ops.list()
        op = await (await submit)
    hint = 0.0 if retry_after.startswith("date") else float(retry_after)
    waits = [d for d in sleep.delays if d >= hint * 0.9]
    assert len(waits) >= 2, sleep.delays  # the retry and the other request
    assert op.num_good == 1


async def test_f02_429_with_a_huge_retry_after_is_not_retried(emu: EmulatorServer) -> None:
    emu.state.faults.add(FaultRule(kind="status", route=MANY, status=429, retry_after="7200"))
    async with client_for(emu) as client:
        with pytest.raises(RateLimitError) as info:
            await client.images.create_many(records(3))
        assert info.value.retry_after == 7200
        report = await client.images.ingest_all(records(250), batch_size=50)
    # One request for create_many, then at most the batches already in flight.
    assert counters(emu)["requests"][MANY] <= 1 + 4  # type: ignore[index]
    assert report.aborted and isinstance(report.error, RateLimitError)
    assert report.not_sent == 250 and report.applied == 0
    assert_accounted(report, 250)


async def test_f03_429_storm_without_header_ends_with_everything_applied(
    emu: EmulatorServer,
) -> None:
    emu.state.faults.add(FaultRule(kind="status", route=MANY, status=429, probability=0.3))
    async with client_for(
        emu, retry=RetryPolicy(attempts=12, budget=30, backoff_initial=0.002, backoff_max=0.02)
    ) as client:
        report = await client.images.ingest_all(records(2000), batch_size=50, max_in_flight=8)
        retries = client.stats()["retries"]
    c = counters(emu)
    assert report.applied == 2000 and report.ok
    assert c["items_applied"] == 2000 and c["duplicate_applies"] == 0
    assert 0 < retries < 40 * 12, "bounded attempts"


# -- F4 F5: gateway errors, refused connections ---------------------------------


async def test_f04_gateway_errors_on_submit_are_retried_without_duplicates(
    emu: EmulatorServer,
) -> None:
    emu.state.faults.load_spec(f"{MANY} 502 p=0.1; {MANY} 503 p=0.1; {MANY} 504 p=0.1")
    async with client_for(emu) as client:
        report = await client.images.ingest_all(records(1500), batch_size=50)
    c = counters(emu)
    assert report.applied == 1500
    assert c["items_applied"] == 1500 and c["duplicate_applies"] == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_f05_connection_refused_then_the_server_comes_up() -> None:
    port = free_port()
    config = EmulatorConfig(api_keys=(KEY,))
    retry = RetryPolicy(attempts=30, budget=10, backoff_initial=0.02, backoff_max=0.05)
    async with client_for(f"http://127.0.0.1:{port}", retry=retry) as client:
        submit = asyncio.create_task(client.images.create({"id": "a", "src": SRC}, strict=True))
        await asyncio.sleep(0.15)
        assert not submit.done()
        async with EmulatorServer(config, host="127.0.0.1", port=port) as server:
            op = await (await submit)
            assert op.num_good == 1
            assert client.stats()["retries"] >= 1
            assert server.state.counters.snapshot()["duplicate_applies"] == 0


async def test_f05_connection_refused_past_the_budget_is_a_connect_error() -> None:
    async with client_for(
        f"http://127.0.0.1:{free_port()}", retry=RetryPolicy(attempts=3, backoff_initial=0.001)
    ) as client:
        with pytest.raises(ConnectError):
            await client.images.create({"id": "a", "src": SRC})


# -- F6 F7 F8: ambiguous failures --------------------------------------------


async def test_f06_reset_after_body_safe_write_is_resent_and_reported(
    emu: EmulatorServer,
) -> None:
    emu.state.faults.script(ONE, ["reset_after"])
    async with client_for(emu) as client:
        fut = await client.images.create({"id": "a", "src": SRC, "title": "t"})
        op = await fut
        assert client.stats()["ambiguous_resends"] == 1
    assert op.num_good == 1 and fut.resent, "the user is told it may have run twice"
    await until(lambda: counters(emu)["ops_finished"] == 2)
    image = emu.state.images(KEY)["a"]
    assert image["title"] == "t", "the same end state: strict=false writes are upserts"
    assert emu.state.counters.applies_by_image[(0, "a")] == 2
    assert counters(emu)["duplicate_applies"] == 1


async def test_f06_reset_after_body_strict_write_is_outcome_unknown(emu: EmulatorServer) -> None:
    emu.state.faults.script(ONE, ["reset_after"])
    async with client_for(emu) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.images.create({"id": "a", "src": SRC}, strict=True)
    assert info.value.image_ids == ("a",)
    assert counters(emu)["requests"][ONE] == 1, "never resent"  # type: ignore[index]
    await until(lambda: "a" in emu.state.images(KEY))  # it was applied: hence "unknown"


async def test_f06_reset_before_body_is_retried_even_when_strict_is_false(
    emu: EmulatorServer,
) -> None:
    emu.state.faults.script(ONE, ["reset_before"])
    async with client_for(emu) as client:
        op = await (await client.images.create({"id": "a", "src": SRC}))
    assert op.num_good == 1 and counters(emu)["duplicate_applies"] == 0


async def test_f06_bulk_with_resets_accounts_for_every_record(emu: EmulatorServer) -> None:
    emu.state.faults.load_spec(f"{MANY} reset_after p=0.1; {MANY} reset_before p=0.1")
    async with client_for(emu) as client:
        report = await client.images.ingest_all(records(1000), batch_size=50)
        resends = client.stats()["ambiguous_resends"]
    assert report.applied == 1000
    c = counters(emu)
    assert c["items_applied"] == 1000 + c["duplicate_applies"]
    assert c["duplicate_applies"] <= resends * 50, "every duplicate apply was reported"


async def test_f07_read_timeout_on_submit_applied_anyway(emu: EmulatorServer) -> None:
    emu.state.faults.script(ONE, ["hang(0.3)"])
    async with client_for(emu, timeout=0.1) as client:
        with pytest.raises(OutcomeUnknownError, match="timed out"):
            await client.images.create({"id": "s", "src": SRC}, strict=True)
        assert counters(emu)["requests"][ONE] == 1  # type: ignore[index]
        emu.state.faults.script(ONE, ["hang(0.3)"])
        fut = await client.images.create({"id": "n", "src": SRC})
        assert fut.resent and (await fut).num_good == 1


async def test_f08_server_closing_idle_keepalive_connections_loses_nothing(
    emu: EmulatorServer,
) -> None:
    emu.state.faults.load_spec("* close_idle(0.005)")
    async with client_for(emu) as client:
        futures = []
        for n in range(30):
            futures.append(await client.images.create({"id": f"k{n}", "src": SRC}))
            await asyncio.sleep(0.01)  # let the server close the idle connection
        ops = await gather_operations(futures)
        retries = client.stats()["retries"]
        resends = client.stats()["ambiguous_resends"]
    assert all(op.num_good == 1 for op in ops)  # type: ignore[union-attr]
    assert retries <= 30, "bounded extra attempts"
    c = counters(emu)
    # A close racing a request is ambiguous: the resend is reported, never silent.
    assert c["items_applied"] == 30 + c["duplicate_applies"]
    assert c["duplicate_applies"] <= resends
    assert sum(f.resent for f in futures) == resends


# -- F9 F10 F11 F12 F13 F14: bodies and operations ------------------------------


@pytest.mark.parametrize("kind", ["malformed_json", "no_op_id", "truncated_json"])
async def test_f09_garbage_or_missing_op_id_is_outcome_unknown_never_resent(
    emu: EmulatorServer, kind: str
) -> None:
    emu.state.faults.script(MANY, [kind])
    async with client_for(emu) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.images.create_many(records(3), strict=True)
    assert info.value.raw_body, "the raw body is attached"
    assert info.value.image_ids == ("r0", "r1", "r2")
    assert counters(emu)["requests"][MANY] == 1  # type: ignore[index]


async def test_f09_bulk_reports_the_batch_unknown(emu: EmulatorServer) -> None:
    emu.state.faults.script(MANY, ["pass", "no_op_id"])
    async with client_for(emu) as client:
        report = await client.images.ingest_all(records(300), batch_size=100, max_in_flight=1)
    assert report.unknown == 100 and report.applied == 200
    assert_accounted(report, 300)


@pytest.mark.parametrize(
    ("actions", "retries"),
    [
        # A valid JSON body under a wrong content type is read, not retried.
        (["malformed_json", "truncated_json", "content_type"], 2),
        (["hang(1)"], 1),
        (["503", "429(0.01)", "reset_before"], 3),
    ],
)
async def test_f10_bad_polls_are_retried(
    emu: EmulatorServer, actions: list[str], retries: int
) -> None:
    emu.state.faults.script(POLL, actions)
    async with client_for(emu, timeout=0.2) as client:
        op = await (await client.images.create({"id": "a", "src": SRC}))
        assert client.stats()["poll_retries"] >= retries
    assert op.is_finished and op.num_good == 1


async def test_f10_polls_failing_past_the_budget_fail_only_that_future(
    emu: EmulatorServer,
) -> None:
    async with client_for(emu, retry=RetryPolicy(attempts=3, backoff_initial=0.001)) as client:
        emu.state.pause_processing()
        doomed = await client.images.create({"id": "d", "src": SRC})
        emu.state.faults.add(FaultRule(kind="truncated_json", route=POLL, times=3))
        emu.state.resume_processing()
        with pytest.raises(ResponseValidationError) as info:
            await doomed
        assert info.value.op_id == doomed.op_id and str(doomed.op_id) in str(info.value)
        emu.state.faults.load_spec(f"{POLL} malformed_json p=0.3")
        others = [await client.images.create({"id": f"o{n}", "src": SRC}) for n in range(20)]
        ops = await gather_operations(others)
    assert all(op.num_good == 1 for op in ops)  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["extra_fields", "unknown_enum"])
async def test_f11_unknown_fields_and_enum_values_are_tolerated(
    emu: EmulatorServer, kind: str
) -> None:
    emu.state.faults.load_spec(f"{POLL} {kind}; {ONE} {kind}")
    async with client_for(emu) as client:
        op = await (await client.images.create({"id": "a", "src": SRC}))
    assert op.is_finished and op.num_good == 1
    if kind == "unknown_enum":
        assert op.method == "mix"


@pytest.mark.parametrize("fields", ["is_finished", "num_good"])
async def test_f12_wrong_types_are_a_validation_error_naming_the_field(
    emu: EmulatorServer, fields: str
) -> None:
    emu.state.faults.load_spec(f"{POLL} wrong_types({fields})")
    async with client_for(emu, retry=RetryPolicy(attempts=2, backoff_initial=0.001)) as client:
        fut = await client.images.create({"id": "a", "src": SRC})
        with pytest.raises(ResponseValidationError) as info:
            await fut
    assert f"$.{fields}" in str(info.value) and info.value.op_id == fut.op_id


async def test_f13_an_operation_that_never_finishes(emu: EmulatorServer) -> None:
    emu.state.faults.script(ONE, ["never_finish"])
    async with client_for(emu) as client:
        fut = await client.images.create({"id": "a", "src": SRC})
        with pytest.raises(OperationTimeoutError) as info:
            await fut.result(timeout=0.2)
        assert isinstance(info.value, TimeoutError)
        assert info.value.op_id == fut.op_id and info.value.last_status is not None
        assert info.value.last_status.is_finished is False
        later = client.ops.follow(fut.op_id)  # type: ignore[arg-type]
        assert not later.done() and later.op_id == fut.op_id
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await later


async def test_f14_404_on_the_operation_names_it_and_its_records(emu: EmulatorServer) -> None:
    emu.state.faults.script(MANY, ["vanish"])
    async with client_for(emu) as client:
        fut = await client.images.create_many(records(3))
        with pytest.raises(OperationNotFoundError) as info:
            await fut
        assert info.value.op_id == fut.op_id and info.value.image_ids == ("r0", "r1", "r2")
        emu.state.faults.script(MANY, ["pass", "vanish"])
        report = await client.images.ingest_all(records(30, "v"), batch_size=10, max_in_flight=1)
    assert report.unknown == 10 and report.applied == 20
    assert_accounted(report, 30)


# -- F15 F16 F17: client errors, 413, redirects -----------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, AuthenticationError),
        (403, AuthenticationError),
        (400, BadRequestError),
        (422, BadRequestError),
    ],
)
async def test_f15_client_errors_are_not_retried(
    emu: EmulatorServer, status: int, cls: type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emu.state.faults.add(FaultRule(kind="status", route=MANY, status=status))
    async with client_for(emu) as client:
        with pytest.raises(cls) as info:
            await client.images.create_many(records(2))
    assert counters(emu)["requests"][MANY] == 1  # type: ignore[index]
    assert KEY not in str(info.value) + repr(info.value) + caplog.text


async def test_f15_server_422_details_are_surfaced_per_item() -> None:
    config = EmulatorConfig(api_keys=(KEY,), max_batch_items=2)
    async with (
        EmulatorServer(config, host="127.0.0.1", port=0) as server,
        client_for(server) as client,
    ):
        with pytest.raises(BadRequestError) as info:
            await client.images.create_many(records(3))
        with pytest.raises(BadRequestError) as typed:
            await client.images.search("id>=")
    assert info.value.status == 422 and info.value.errors
    assert all({"loc", "msg"} <= set(e) for e in info.value.errors)
    assert typed.value.errors[0]["msg"]


async def test_f16_413_splits_the_batch_and_accounts_every_record() -> None:
    config = EmulatorConfig(api_keys=(KEY,), max_body_bytes=2500)
    async with EmulatorServer(config, host="127.0.0.1", port=0) as server:
        async with client_for(server) as client:
            report = await client.images.ingest_all(records(200), batch_size=100)
        c = server.state.counters.snapshot()
    assert report.applied == 200 and c["items_applied"] == 200
    assert c["requests"][MANY] > 2, "batches were split"  # type: ignore[index]


async def test_f17_redirects_are_not_followed(aiohttp_server: ServerFactory) -> None:
    elsewhere = await scripted(aiohttp_server, json_response(200, OP_DONE))
    moved = web.Response(status=302, headers={"Location": str(elsewhere.make_url("/imgs"))})
    server = await scripted(aiohttp_server, moved)
    async with client_for(str(server.make_url(""))) as client:
        with pytest.raises(WesogError, match="redirect"):
            await client.images.create_many(records(2))
    assert elsewhere.seen == []


# -- F18 F19 F20: cancellation and shutdown ---------------------------------


async def test_f18_one_of_a_thousand_awaiters_cancelled(emu: EmulatorServer) -> None:
    emu.state.pause_processing()
    async with client_for(emu, max_connections=32) as client:
        futures = await asyncio.gather(
            *(client.images.create({"id": f"c{n}", "src": SRC}) for n in range(1000))
        )
        waiters = [asyncio.create_task(f.result()) for f in futures]
        await asyncio.sleep(0)
        waiters[500].cancel()
        emu.state.resume_processing()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert client.stats()["pending"] == 0
    assert isinstance(results[500], asyncio.CancelledError)
    others = results[:500] + results[501:]
    assert all(not isinstance(r, BaseException) and r.num_good == 1 for r in others)
    assert futures[500].done(), "the poller followed the cancelled awaiter's op to the end"


async def test_f19_cancelling_a_bulk_upload_keeps_every_op_id(
    emu: EmulatorServer, tmp_path: object
) -> None:
    from wesog_async import Journal

    consumed = 0

    def source() -> Iterator[dict[str, str]]:
        nonlocal consumed
        for n in range(100_000):
            consumed += 1
            yield {"id": f"j{n}", "src": SRC}

    path = f"{tmp_path}/journal.db"
    async with client_for(emu) as client:
        outcomes = []

        async def run() -> None:
            async for outcome in client.images.ingest(source(), batch_size=100, journal=path):
                outcomes.append(outcome)

        task = asyncio.create_task(run())
        while len(outcomes) < 3:
            await asyncio.sleep(0.005)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert consumed < 100_000, "input consumption stopped"
    async with Journal(path) as journal:
        summary = await journal.summary()
    batches = summary["batches"]
    with_op_id = batches.get("accepted", 0) + batches.get("done", 0)
    # Every operation the server created is in the journal with its op id.
    assert with_op_id == counters(emu)["ops_created"], summary
    assert batches.get("done", 0) >= len(outcomes)


async def test_f20_close_with_pending_operations(emu: EmulatorServer) -> None:
    emu.state.pause_processing()
    client = client_for(emu)
    async with client:
        futures = [await client.images.create({"id": f"p{n}", "src": SRC}) for n in range(3)]
    errors = await gather_operations(futures, return_exceptions=True)
    assert all(isinstance(e, ClientClosedError) for e in errors)
    assert set(errors[0].op_ids) == {f.op_id for f in futures}  # type: ignore[union-attr]


# -- F21 F22 F23: input, secrets, plain http ----------------------------------


async def test_f21_invalid_records_in_bulk_are_reported_and_never_sent(
    emu: EmulatorServer,
) -> None:
    bad = [
        {"id": "ok0", "src": SRC},
        {"id": "", "src": SRC},
        {"id": 7, "src": SRC},
        {"id": "nosrc"},
        {"id": "typed", "src": SRC, "nsfw": "yes"},
        {"id": "ok1", "src": SRC},
        ImageInput(id="ok2", src=SRC),
    ]
    async with client_for(emu) as client:
        report = await client.images.ingest_all(bad, batch_size=10)
    assert report.applied == 3 and report.invalid == 4
    assert [(e.position, e.field) for e in report.invalid_items] == [
        (1, "id"),
        (2, "id"),
        (3, "src"),
        (4, "nsfw"),
    ]
    assert counters(emu)["items_applied"] == 3


async def test_f22_a_canary_key_never_leaks(
    emu: EmulatorServer, caplog: pytest.LogCaptureFixture, aiohttp_server: ServerFactory
) -> None:
    caplog.set_level(logging.DEBUG, logger="wesog_async")
    caplog.set_level(logging.DEBUG)
    seen: list[BaseException] = []
    async with client_for(emu) as client:
        assert KEY not in repr(client) + str(client)
        for spec in [f"{MANY} 401", f"{MANY} 429(9999)", f"{MANY} 500", f"{MANY} no_op_id"]:
            emu.state.faults.clear()
            emu.state.faults.load_spec(spec)
            try:
                await client.images.create_many(records(1), strict=True)
            except WesogError as exc:
                seen.append(exc)
        emu.state.faults.clear()
        emu.state.faults.load_spec(f"{POLL} wrong_types")
        try:
            await (await client.images.create({"id": "x", "src": SRC}))
        except WesogError as exc:
            seen.append(exc)
    try:
        async with client_for(
            f"http://127.0.0.1:{free_port()}", retry=RetryPolicy(attempts=1)
        ) as c:
            await c.ops.list()
    except WesogError as exc:
        seen.append(exc)
    assert len(seen) == 6
    for exc in seen:
        text = str(exc) + repr(exc) + "".join(traceback.format_exception(exc))
        text += repr(vars(exc))
        assert KEY not in text, type(exc)
    assert KEY not in caplog.text


def test_f23_plain_http_to_a_remote_host_is_refused() -> None:
    with pytest.raises(ValueError, match="unencrypted"):
        WesogClient(api_key=KEY, base_url="http://api.wesog.com")
    with pytest.raises(ValueError, match="unencrypted"):
        WesogClient(api_key=KEY, base_url="http://10.0.0.1:8080")
    WesogClient(api_key=KEY, base_url="http://api.wesog.com", allow_insecure_http=True)


# -- F25: nothing leaks after faults ----------------------------------------


async def test_f25_no_leaked_tasks_or_connections_after_faults(emu: EmulatorServer) -> None:
    before = set(asyncio.all_tasks())
    emu.state.faults.load_spec(
        f"{MANY} reset_after p=0.2; {MANY} 503 p=0.2; "
        f"{POLL} malformed_json p=0.2; {POLL} hang(0.5) p=0.05"
    )
    client = client_for(emu, timeout=0.1)
    async with client:
        report = await client.images.ingest_all(records(500), batch_size=25)
        session = client._transport._session
        assert session is not None
        connector = session.connector
    assert report.applied + report.unknown == 500
    assert session.closed and connector is not None and connector.closed
    await asyncio.sleep(0)
    leaked = {t for t in asyncio.all_tasks() if not t.done()} - before - {asyncio.current_task()}
    names = sorted(t.get_name() for t in leaked)
    assert not [n for n in names if n.startswith("wesog_async")], names
    gc.collect()
