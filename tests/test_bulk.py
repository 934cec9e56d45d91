"""Bulk ingestion against the emulator: counts, bad records, 413, 429, fatal errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.conftest import API_KEY, FAST_POLL, FAST_RETRY, make_client
from wesog_async import (
    AuthenticationError,
    ImageInput,
    Operation,
    OperationItemError,
    RateLimitError,
    RetryPolicy,
    WesogClient,
    _validate,
)
from wesog_async._errors import InvalidInputError
from wesog_async._models import UNSET
from wesog_async.bulk import (
    IngestReport,
    InvalidRecord,
    Outcome,
    Progress,
    ingest,
    ingest_all,
)
from wesog_async.bulk.batcher import Batch
from wesog_async.bulk.flow import Gate
from wesog_async.bulk.outcomes import from_operation
from wesog_async.bulk.records import compile_check
from wesog_async.emulator import EmulatorConfig, EmulatorServer

SRC = "https://img.example.com/{}.jpg"
BAD_SRC = "https://cdn.unreachable.invalid/{}.jpg"


@pytest.fixture
def wesog_emulator_config() -> EmulatorConfig:
    return EmulatorConfig(api_keys=(API_KEY, "other-key"), item_delay_ms=0)


def images(n: int, *, start: int = 0, bad_every: int = 0) -> Iterator[dict[str, Any]]:
    for i in range(start, start + n):
        bad = bad_every and i % bad_every == bad_every - 1
        yield {"id": f"img-{i:06d}", "src": (BAD_SRC if bad else SRC).format(i), "title": f"#{i}"}


async def drain(stream: AsyncIterator[Outcome]) -> None:
    async for _ in stream:
        pass


def check_invariant(report: IngestReport) -> None:
    assert (
        report.applied + report.failed + report.invalid + report.unknown + report.not_sent
        == report.total
    ), report.summary()
    assert len(report.failed_items) == report.failed
    assert len(report.invalid_items) == report.invalid
    assert len(report.unknown_items) == report.unknown
    assert len(report.not_sent_items) == report.not_sent


async def test_20k_records_match_the_emulator_counters(
    wesog_emulator: EmulatorServer, client: WesogClient
) -> None:
    records = list(images(20_000, bad_every=1000))
    records[5] = {"id": "img-bad-5"}  # no src: invalid, never sent
    report = await ingest_all(client, iter(records), batch_size=500, max_pending_ops=8)

    check_invariant(report)
    counters = wesog_emulator.state.counters
    assert report.total == 20_000
    assert report.invalid == 1
    assert report.failed == 20  # every 1000th src is unreachable
    assert report.applied == 20_000 - 21
    assert counters.items_applied == report.applied
    assert counters.items_failed == report.failed
    assert counters.duplicate_applies == 0
    assert max(counters.applies_by_image.values()) == 1
    assert counters.requests["POST /imgs"] == report.ops == 40 == counters.ops_created
    assert len(set(report.op_ids)) == 40
    assert not report.aborted and report.error is None
    assert report.records_per_s > 0
    failed = {e.image_id: e for e in report.failed_items}
    assert failed["img-000999"].message == "src unreachable"
    assert failed["img-000999"].position == 999
    assert failed["img-000999"].record["src"] == BAD_SRC.format(999)
    assert report.invalid_items[0].position == 5
    assert report.invalid_items[0].field == "src"
    assert "img-bad-5" not in wesog_emulator.state.images(API_KEY)


async def test_outcomes_cover_every_position_exactly_once(client: WesogClient) -> None:
    records: list[Any] = list(images(250, bad_every=50))
    records[7] = {"id": "x7"}
    seen: list[int] = []
    outcomes: list[Outcome] = []
    async for outcome in ingest(client, records, batch_size=40):
        outcomes.append(outcome)
        seen.extend(e.position for e in (*outcome.failed, *outcome.invalid))
        assert outcome.op_id is not None and outcome.operation is not None
        assert outcome.operation.is_finished
        assert outcome.num_records == len(outcome.positions)
        seen.extend(outcome.positions[i] for i in range(len(outcome.positions)))
    spans = sorted(p for o in outcomes for p in o.positions)
    assert spans == list(range(250))
    applied = {i for o in outcomes for i in o.applied_ids}
    assert len(applied) == 250 - 5 - 1
    assert sorted(o.batch for o in outcomes) == list(range(1, 8))


async def test_invalid_records_are_reported_one_by_one_and_never_sent(
    wesog_emulator: EmulatorServer, client: WesogClient
) -> None:
    records: list[Any] = [
        {"id": "ok-0", "src": SRC.format(0)},
        {"id": "no-src"},
        {"id": 42, "src": SRC.format(2)},
        {"id": "  ", "src": SRC.format(3)},
        {"id": "ok-0", "src": SRC.format(4)},  # duplicate in the same batch
        {"id": "typo", "src": SRC.format(5), "titel": "x"},
        {"id": "wrong-type", "src": SRC.format(6), "nsfw": "yes"},
        ImageInput("model-7", src=SRC.format(7), keywords=("a", "b")),
        InvalidRecord("line 9: malformed JSON", image_id=None),
        "not-a-record",
        {"id": "tuple-kw", "src": SRC.format(10), "keywords": ("x",)},
        {"id": "computed", "src": SRC.format(11), "height": 3},
    ]
    report = await ingest_all(client, records)
    check_invariant(report)
    invalid = {e.position: e for e in report.invalid_items}
    assert sorted(invalid) == [1, 2, 3, 4, 5, 6, 8, 9, 11]
    assert invalid[1].field == "src" and invalid[1].image_id == "no-src"
    assert invalid[2].field == "id"
    assert invalid[3].message == "must not be empty"
    assert "duplicate id" in invalid[4].message and "position 0" in invalid[4].message
    assert invalid[5].field == "titel"
    assert invalid[6].field == "nsfw"
    assert invalid[8].message == "line 9: malformed JSON"
    assert invalid[9].record == "not-a-record"
    assert invalid[11].field == "height"
    stored = wesog_emulator.state.images(API_KEY)
    assert sorted(stored) == ["model-7", "ok-0", "tuple-kw"]
    assert stored["ok-0"]["src"] == SRC.format(0)
    assert report.applied == 3


async def test_only_invalid_records_make_no_request(
    wesog_emulator: EmulatorServer, client: WesogClient
) -> None:
    async with ingest(client, [{"id": "a"}, {"src": "x"}]) as stream:
        outcomes = [o async for o in stream]
    assert len(outcomes) == 1
    assert outcomes[0].op_id is None and len(outcomes[0].invalid) == 2
    assert stream.report.invalid == 2 == stream.report.total
    assert wesog_emulator.state.counters.requests["POST /imgs"] == 0


async def test_empty_input(client: WesogClient) -> None:
    report = await ingest_all(client, [])
    assert report.total == 0 and report.ok and report.batches == 0


async def test_delete_replace_and_modify_modes(
    wesog_emulator: EmulatorServer, client: WesogClient
) -> None:
    await ingest_all(client, images(30))
    replaced = await ingest_all(
        client, ({"id": f"img-{i:06d}", "src": SRC.format(i + 100)} for i in range(10)),
        mode="replace", lang="en",
    )  # fmt: skip
    assert replaced.applied == 10
    modified = await ingest_all(
        client, [ImageInput(f"img-{i:06d}", title="new") for i in range(10, 20)], mode="modify"
    )
    assert modified.applied == 10
    deleted = await ingest_all(
        client,
        ["img-000020", {"id": "img-000021"}, ImageInput("img-000022"), "", 7, {"src": "x"}],
        mode="delete",
        strict=True,
    )
    check_invariant(deleted)
    assert deleted.applied == 3 and deleted.invalid == 3
    stored = wesog_emulator.state.images(API_KEY)
    assert stored["img-000001"].get("title") is None  # replace cleared it
    assert stored["img-000001"]["src"] == SRC.format(101)
    assert stored["img-000011"]["title"] == "new"
    assert "img-000020" not in stored and len(stored) == 27
    missing = await ingest_all(client, ["img-000020"], mode="delete", strict=True)
    assert missing.failed == 1 and "not found" in missing.failed_items[0].message


async def test_413_splits_the_batch_down_to_single_records(
    wesog_emulator_config: EmulatorConfig,
) -> None:
    config = EmulatorConfig(api_keys=(API_KEY,), max_body_bytes=1500)
    async with EmulatorServer(config) as server, make_client(server) as client:
        records = list(images(60))
        records[30]["caption"] = "x" * 2000  # alone over the limit
        report = await ingest_all(client, records, batch_size=60)
        check_invariant(report)
        counters = server.state.counters
        assert counters.responses[413] > 0
        assert report.applied == 59
        assert report.failed == 1
        failure = report.failed_items[0]
        assert failure.position == 30 and failure.image_id == "img-000030"
        assert "413" in failure.message
        assert counters.items_applied == 59 and counters.duplicate_applies == 0
        assert report.ops == counters.ops_created > 1


async def test_batches_respect_max_batch_bytes(
    wesog_emulator: EmulatorServer, client: WesogClient
) -> None:
    report = await ingest_all(client, images(100), batch_size=100, max_batch_bytes=1000)
    assert report.applied == 100
    # ~75-byte records: about 12 per 1000-byte body
    assert report.ops >= 8
    assert wesog_emulator.state.counters.responses.get(413, 0) == 0


async def test_throttling_slows_down_and_every_record_lands(
    wesog_emulator: EmulatorServer, client: WesogClient, caplog: pytest.LogCaptureFixture
) -> None:
    wesog_emulator.state.faults.load_spec("POST /imgs 429(0.005) p=0.3")
    with caplog.at_level(logging.INFO, logger="wesog_async"):
        report = await ingest_all(client, images(600), batch_size=20, max_in_flight=8)
    check_invariant(report)
    assert report.applied == 600
    assert client.stats()["throttles"] > 0
    assert any("throttled: at most" in r.getMessage() for r in caplog.records)
    counters = wesog_emulator.state.counters
    assert counters.duplicate_applies == 0
    assert counters.items_applied == 600


def test_gate_aimd_halves_and_recovers() -> None:
    gate = Gate(8)
    gate.throttled()
    assert gate.limit == 4
    gate.throttled()
    gate.throttled()
    gate.throttled()
    assert gate.limit == 1
    for _ in range(8 * 20):
        gate.succeeded()
    assert gate.limit == 8


async def test_gate_waiters_and_cancellation() -> None:
    gate = Gate(1)
    await gate.acquire()
    waiter = asyncio.ensure_future(gate.acquire())
    cancelled = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    gate.release()
    await waiter
    assert gate.used == 1
    gate.force(2)
    assert gate.used == 3
    gate.release(3)
    assert gate.used == 0


async def test_bad_api_key_is_fatal_and_reports_not_sent(wesog_emulator: EmulatorServer) -> None:
    async with make_client(wesog_emulator, key="wrong-key") as client:
        with pytest.raises(AuthenticationError):
            await drain(ingest(client, images(1000), batch_size=50))
        report = await ingest_all(client, images(1000), batch_size=50, max_in_flight=2)
    check_invariant(report)
    assert report.aborted and isinstance(report.error, AuthenticationError)
    assert report.applied == 0 and report.not_sent == report.total > 0
    assert report.total < 1000  # input reading stopped
    assert "not sent" in report.not_sent_items[0].message
    assert "wrong-key" not in repr(report) and "wrong-key" not in str(report.error)


async def test_retry_after_over_the_cap_is_fatal_after_draining(
    wesog_emulator: EmulatorServer, client: WesogClient
) -> None:
    wesog_emulator.state.faults.load_spec("POST /imgs script pass, pass, 429(3600)")
    report = await ingest_all(client, images(1000), batch_size=50, max_in_flight=1)
    check_invariant(report)
    assert report.aborted and isinstance(report.error, RateLimitError)
    assert report.error.retry_after == 3600
    assert report.applied == 100  # the two batches accepted before finish
    assert report.not_sent >= 50
    assert wesog_emulator.state.counters.items_applied == 100


async def test_server_errors_end_failed_or_unknown(
    wesog_emulator: EmulatorServer, client: WesogClient
) -> None:
    # 503 until the retries run out: certainly not applied -> failed.
    # 500 on a strict write: not retried, may have been applied -> unknown.
    attempts = FAST_RETRY.attempts
    wesog_emulator.state.faults.load_spec(
        "POST /imgs script " + ", ".join(["503"] * attempts + ["500"])
    )
    report = await ingest_all(client, images(30), batch_size=10, max_in_flight=1, strict=True)
    check_invariant(report)
    assert report.failed == 10 and report.unknown == 10 and report.applied == 10
    assert "503" in report.failed_items[0].message
    assert report.unknown_items[0].message.startswith("outcome unknown")
    assert not report.aborted


async def test_vanished_operation_is_unknown_with_its_op_id(
    wesog_emulator: EmulatorServer, client: WesogClient
) -> None:
    wesog_emulator.state.faults.load_spec("POST /imgs script vanish")
    async with ingest(client, images(20), batch_size=10, max_in_flight=1) as stream:
        outcomes = [o async for o in stream]
    report = stream.report
    check_invariant(report)
    assert report.unknown == 10 and report.applied == 10
    vanished = next(o for o in outcomes if o.unknown)
    assert vanished.op_id is not None
    assert all(e.op_id == vanished.op_id for e in vanished.unknown)
    assert "404" in vanished.unknown[0].message or "unknown" in vanished.unknown[0].message


async def test_cancelling_the_consumer_reports_pending_ops_as_unknown(
    wesog_emulator: EmulatorServer, client: WesogClient
) -> None:
    wesog_emulator.state.pause_processing()
    stream = ingest(client, images(1000), batch_size=50, max_pending_ops=4)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(drain(stream), 0.3)
    report = stream.report
    check_invariant(report)
    counters = wesog_emulator.state.counters
    assert counters.ops_created == 4  # max_pending_ops, then backpressure
    assert report.unknown == 200 and report.applied == 0
    assert {e.op_id for e in report.unknown_items} == set(report.op_ids)
    assert len(report.op_ids) == 4
    assert report.total <= 1000 and report.not_sent == report.total - 200
    # Nothing of ours is left running (the client's poller follows its ops).
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert "wesog_async-ingest" not in names


async def test_slow_consumer_applies_backpressure(
    wesog_emulator: EmulatorServer, client: WesogClient
) -> None:
    counters = wesog_emulator.state.counters
    snapshots: list[Progress] = []
    consumed = 0
    async for _ in ingest(
        client, images(400), batch_size=10, max_pending_ops=2, on_progress=snapshots.append
    ):
        consumed += 1
        # operations created but not yet handed out: pending + the outcome queue
        assert counters.ops_created - consumed <= 2 * 2 + 1
        await asyncio.sleep(0.01)
    assert consumed == 40
    assert snapshots and snapshots[-1].done and snapshots[-1].applied == 400
    assert all(s.ops_pending <= 3 for s in snapshots)


async def test_async_iterable_input_and_progress(client: WesogClient) -> None:
    async def source() -> AsyncIterator[dict[str, Any]]:
        for record in images(300):
            yield record
            if record["id"].endswith("0"):
                await asyncio.sleep(0)

    snapshots: list[Progress] = []
    report = await ingest_all(client, source(), batch_size=25, on_progress=snapshots.append)
    assert report.applied == 300
    last = snapshots[-1]
    assert last.done and last.read == 300 and last.sent == 300 and last.ops_pending == 0


async def test_progress_callback_errors_do_not_stop_the_upload(
    client: WesogClient, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_: Progress) -> None:
        raise RuntimeError("display bug")

    report = await ingest_all(client, images(50), on_progress=broken)
    assert report.applied == 50
    assert "on_progress callback failed" in caplog.text


async def test_client_raise_on_failure_still_yields_outcomes(
    wesog_emulator: EmulatorServer,
) -> None:
    async with make_client(wesog_emulator, raise_on_failure=True) as client:
        report = await ingest_all(client, images(20, bad_every=10))
    assert report.failed == 2 and report.applied == 18


async def test_images_api_entry_points(client: WesogClient) -> None:
    report = await client.images.ingest_all(images(10), mode="create")
    assert report.applied == 10
    outcomes = [o async for o in client.images.ingest(["img-000001"], mode="delete")]
    assert outcomes[0].applied_ids == ("img-000001",)


async def test_usage_errors(client: WesogClient) -> None:
    with pytest.raises(ValueError, match="mode"):
        ingest(client, [], mode="upsert")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        ingest(client, [], batch_size=0)
    with pytest.raises(ValueError, match="lang"):
        ingest(client, [], mode="delete", lang="en")
    with pytest.raises(ValueError, match="lang"):
        ingest(client, [], lang="xx")
    with pytest.raises(TypeError, match="iterable"):
        ingest(client, "img-1", mode="delete")
    with pytest.raises(ValueError, match="max_in_flight"):
        ingest(client, [], max_in_flight=0)


async def test_input_errors_stop_the_run_and_raise(client: WesogClient) -> None:
    def broken() -> Iterator[dict[str, Any]]:
        yield from images(30)
        raise OSError("disk gone")

    stream = ingest(client, broken(), batch_size=20)
    with pytest.raises(OSError, match="disk gone"):
        await drain(stream)
    report = stream.report
    check_invariant(report)
    assert report.applied == 20 and report.not_sent == 10 and report.aborted


def test_outcome_is_unknown_when_the_error_list_disagrees_with_the_counts() -> None:
    batch = Batch(0)
    batch.set_ids(["a", "b", "c"], [0, 1, 2])
    batch.parts = [b'{"id":"a"}', b'{"id":"b"}', b'{"id":"c"}']
    op = Operation(
        num_total=3, num_good=1, num_bad=2, is_finished=True, op_id=9,
        errors=(OperationItemError(1, "boom"),),
    )  # fmt: skip
    outcome = from_operation(batch, op)
    assert outcome.failed[0].image_id == "b" and outcome.failed[0].record == {"id": "b"}
    assert [e.image_id for e in outcome.unknown] == ["a", "c"]
    assert outcome.applied_ids == ()
    # Errors naming the image id instead of the index are understood too.
    op = Operation(
        num_total=3, num_good=2, num_bad=1, is_finished=True, op_id=9,
        errors=(OperationItemError("c", "bad"),),
    )  # fmt: skip
    outcome = from_operation(batch, op)
    assert outcome.applied_ids == ("a", "b") and outcome.failed_ids == ("c",)


async def test_strict_write_without_retry_budget(wesog_emulator: EmulatorServer) -> None:
    # A strict create of existing ids: item errors, reported failed.
    async with make_client(wesog_emulator, retry=RetryPolicy(attempts=1)) as client:
        await ingest_all(client, images(5), poll=FAST_POLL)
        report = await ingest_all(client, images(5), strict=True, urgent=True)
    assert report.failed == 5
    assert "already exists" in report.failed_items[0].message


async def test_unreachable_server_is_fatal() -> None:
    async with make_client("http://127.0.0.1:9") as client:  # discard port: refused
        report = await ingest_all(client, images(500), batch_size=50)
    check_invariant(report)
    assert report.aborted and type(report.error).__name__ == "ConnectError"
    assert report.not_sent == report.total and report.total < 500


async def test_closing_the_client_mid_run(wesog_emulator: EmulatorServer) -> None:
    wesog_emulator.state.pause_processing()
    client = make_client(wesog_emulator)
    await client.open()

    async def close_soon() -> None:
        # Once the client holds the four op ids (the server creating them is not
        # enough: an answer still on the wire leaves its op id unknown).
        while client.stats()["submitted"] < 4:
            await asyncio.sleep(0.005)
        await client.aclose()

    closer = asyncio.create_task(close_soon())
    report = await ingest_all(client, images(1000), batch_size=50, max_pending_ops=4)
    await closer
    check_invariant(report)
    assert report.aborted and type(report.error).__name__ == "ClientClosedError"
    assert report.unknown == 200 and {e.op_id for e in report.unknown_items} == {1, 2, 3, 4}
    assert "client closed" in report.unknown_items[0].message


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(["", " ", ".", "..", "x", "https://a.example/b.jpg", "\t"]),
    st.text(max_size=5),
    st.lists(st.one_of(st.text(max_size=3), st.integers()), max_size=3),
    st.tuples(st.text(max_size=3)),
    st.just(UNSET),
)
_KEYS = st.sampled_from(
    ["id", "src", "title", "nsfw", "keywords", "collections", "height", "titel", "city"]
)


_IDS = st.one_of(_VALUES, st.sampled_from([".", "..", " x", "ok"]))


@settings(max_examples=500, deadline=None)
@given(
    image_id=_IDS,
    src=_VALUES,
    extra=st.dictionaries(_KEYS, _VALUES, max_size=4),
    require_src=st.booleans(),
)
@example(image_id=".", src="https://a.example/b.jpg", extra={}, require_src=True)
@example(image_id="..", src=None, extra={}, require_src=False)
@example(image_id="ok", src=UNSET, extra={}, require_src=False)
@example(image_id="ok", src="s", extra={"keywords": ("a",)}, require_src=True)
def test_fast_validation_never_accepts_what_image_body_rejects(
    image_id: Any, src: Any, extra: dict[str, Any], require_src: bool
) -> None:
    record = {"id": image_id, "src": src, **extra}
    for candidate in (record, {k: v for k, v in record.items() if k != "src"}):
        check = compile_check(tuple(candidate), require_src)
        try:
            checked_id, body = _validate.image_body(candidate, require_src=require_src, index=0)
        except InvalidInputError:
            assert not check(candidate), candidate
            continue
        if check(candidate):  # the fast path sends the record as given: it must be identical
            assert body == candidate and checked_id == candidate["id"]
