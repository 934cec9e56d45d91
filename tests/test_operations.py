"""Operation futures and the shared poller, against the emulator."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest
from aiohttp import web

from tests.conftest import OTHER_KEY, make_client
from tests.test_client_http import OP_DONE, ServerFactory, json_response, scripted
from wesog_async import (
    ClientClosedError,
    OperationError,
    OperationFailedError,
    OperationNotFoundError,
    OperationTimeoutError,
    PollPolicy,
    ResponseValidationError,
    ServerError,
    as_completed,
    gather_operations,
)
from wesog_async.emulator import EmulatorConfig, EmulatorServer

SRC = "https://cdn.example.com/a.jpg"
BAD_SRC = "https://down.invalid/a.jpg"


async def test_thousand_concurrent_writes_resolve_with_bounded_polls() -> None:
    config = EmulatorConfig(api_keys=("k",), item_delay_ms=0.05, workers_per_tenant=8)
    poll = PollPolicy(first_delay=0.005, per_item=0.0, min_delay=0.002, max_delay=0.05)
    async with EmulatorServer(config, host="127.0.0.1", port=0) as server:
        async with make_client(server, key="k", poll=poll, max_connections=32) as client:
            loop = asyncio.get_running_loop()
            start = loop.time()
            futures = await asyncio.gather(
                *(
                    client.images.create({"id": f"i{n}", "src": BAD_SRC if n % 10 == 0 else SRC})
                    for n in range(1000)
                )
            )
            ops = await gather_operations(futures)
            elapsed = loop.time() - start
            stats = client.stats()
        counters = server.state.counters.snapshot()
    assert len(ops) == 1000
    assert sum(op.num_good for op in ops) == 900  # type: ignore[union-attr]
    assert sum(op.num_bad for op in ops) == 100  # type: ignore[union-attr]
    assert stats["finished"] == 1000 and stats["pending"] == 0
    assert stats["items_good"] == 900 and stats["items_bad"] == 100
    # The bound the schedule guarantees: the geometric ramp up to max_delay, then
    # one poll per max_delay for the rest of the run (plus one for jitter).
    ramp = 1
    delay = poll.first_delay
    while delay < poll.max_delay:
        delay *= poll.growth
        ramp += 1
    bound = ramp + elapsed / (poll.max_delay * (1 - poll.jitter)) + 1
    polls = counters["requests"].get("GET /ops/{op_id}", 0)
    assert polls == stats["polls"]
    assert polls / 1000 <= bound, (polls, bound)
    assert counters["items_applied"] == 900


async def test_urgent_overtakes_queued_operations(wesog_emulator: EmulatorServer) -> None:
    wesog_emulator.state.pause_processing()
    async with make_client(wesog_emulator) as client:
        first = await client.images.create({"id": "a", "src": SRC})
        second = await client.images.create({"id": "b", "src": SRC})
        urgent = await client.images.create({"id": "c", "src": SRC}, urgent=True)
        wesog_emulator.state.resume_processing()
        ops = await gather_operations([first, second, urgent])
    started = [op.started_at for op in ops]  # type: ignore[union-attr]
    assert started[2] <= started[0] <= started[1]  # type: ignore[operator]
    assert ops[2].do_urgent is True  # type: ignore[union-attr]


async def test_deadline_raises_typed_timeout_and_op_stays_followable(
    wesog_emulator: EmulatorServer,
) -> None:
    wesog_emulator.state.pause_processing()
    async with make_client(wesog_emulator) as client:
        fut = await client.images.create({"id": "a", "src": SRC})
        with pytest.raises(OperationTimeoutError) as info:
            await fut.result(timeout=0.05)
        assert isinstance(info.value, TimeoutError)
        assert info.value.op_id == fut.op_id
        assert info.value.last_status is not None
        assert info.value.last_status.is_started is False
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02):
                await fut
        assert not fut.done()
        wesog_emulator.state.resume_processing()
        op = await fut.result(timeout=5)
    assert op.is_finished and op.num_good == 1


async def test_cancelling_one_awaiter_cancels_only_it(wesog_emulator: EmulatorServer) -> None:
    wesog_emulator.state.pause_processing()
    async with make_client(wesog_emulator) as client:
        futures = [await client.images.create({"id": f"x{n}", "src": SRC}) for n in range(10)]
        waiters = [asyncio.ensure_future(f.result()) for f in futures for _ in range(100)]
        await asyncio.sleep(0.01)
        waiters[0].cancel()
        wesog_emulator.state.resume_processing()
        results = await asyncio.gather(*waiters, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(r.num_good == 1 for r in results[1:])  # type: ignore[union-attr]
    assert futures[0].done() and futures[0].result_nowait().is_finished


async def test_close_with_pending_futures_fails_them_listing_op_ids(
    wesog_emulator: EmulatorServer,
) -> None:
    wesog_emulator.state.pause_processing()
    client = make_client(wesog_emulator)
    async with client:
        futures = [await client.images.create({"id": f"p{n}", "src": SRC}) for n in range(3)]
    for fut in futures:
        with pytest.raises(ClientClosedError) as info:
            await fut
        assert set(info.value.op_ids) == {f.op_id for f in futures}
        assert str(fut.op_id) in str(info.value)


async def test_close_with_drain_waits_for_pending(wesog_emulator: EmulatorServer) -> None:
    client = make_client(wesog_emulator)
    await client.open()
    futures = [await client.images.create({"id": f"d{n}", "src": SRC}) for n in range(5)]
    await client.aclose(drain=True)
    assert all(f.done() and f.result_nowait().num_good == 1 for f in futures)


async def test_follow_by_token_across_two_clients(wesog_emulator: EmulatorServer) -> None:
    wesog_emulator.state.pause_processing()
    async with make_client(wesog_emulator) as first:
        fut = await first.images.create_many(
            [{"id": "t0", "src": SRC}, {"id": "t1", "src": BAD_SRC}, {"id": "t2", "src": SRC}]
        )
        token = fut.token()
        op_id = fut.op_id
    wesog_emulator.state.resume_processing()
    async with make_client(wesog_emulator) as second:
        followed = second.ops.follow(token)
        op = await followed
        by_id = await second.ops.wait(op_id)  # type: ignore[arg-type]
    assert followed.op_id == op_id and op.num_bad == 1
    assert followed.failed_ids == ["t1"] and followed.applied_ids == ["t0", "t2"]
    assert by_id.num_good == 2


async def test_another_tenants_op_is_not_found(wesog_emulator: EmulatorServer) -> None:
    async with make_client(wesog_emulator) as client:
        fut = await client.images.create({"id": "z", "src": SRC})
        await fut
    async with make_client(wesog_emulator, key=OTHER_KEY) as other:
        with pytest.raises(OperationNotFoundError) as info:
            await other.ops.follow(fut.op_id, image_ids=["z"])  # type: ignore[arg-type]
    assert info.value.op_id == fut.op_id and info.value.image_ids == ("z",)


async def test_raise_on_failure_reports_failed_ids(wesog_emulator: EmulatorServer) -> None:
    async with make_client(wesog_emulator, raise_on_failure=True) as client:
        fut = await client.images.create_many(
            [{"id": "ok", "src": SRC}, {"id": "ko", "src": BAD_SRC}]
        )
        with pytest.raises(OperationFailedError) as info:
            await fut
    assert info.value.failed_ids == ["ko"] and info.value.operation.num_good == 1


async def test_futures_on_one_op_share_one_poll_stream(wesog_emulator: EmulatorServer) -> None:
    wesog_emulator.state.pause_processing()
    async with make_client(wesog_emulator) as client:
        fut = await client.images.create({"id": "s", "src": SRC})
        again = client.ops.follow(fut.op_id)  # type: ignore[arg-type]
        assert again._tracked is fut._tracked
        assert client.stats()["pending"] == 1
        wesog_emulator.state.resume_processing()
        await gather_operations([fut, again])
        polls = client.stats()["polls"]
        await asyncio.sleep(0.05)
        assert client.stats()["polls"] == polls, "a finished op is never polled again"


async def test_cancel_a_queued_operation(wesog_emulator: EmulatorServer) -> None:
    wesog_emulator.state.pause_processing()
    async with make_client(wesog_emulator) as client:
        fut = await client.images.create_many([{"id": "q0", "src": SRC}, {"id": "q1", "src": SRC}])
        cancelled = await client.ops.cancel(fut.op_id)  # type: ignore[arg-type]
        assert cancelled.is_finished and cancelled.num_bad == 2
        op = await fut
    assert op.num_bad == 2 and {e.msg for e in fut.failed} == {"cancelled"}
    assert fut.failed_ids == ["q0", "q1"]


async def test_progress_done_callbacks_and_as_completed(wesog_emulator: EmulatorServer) -> None:
    seen: list[int | None] = []
    async with make_client(wesog_emulator) as client:
        futures = [
            await client.images.create_many([{"id": f"c{n}-{k}", "src": SRC} for k in range(n + 1)])
            for n in range(5)
        ]
        for fut in futures:
            fut.add_done_callback(lambda f: seen.append(f.op_id))
        order = [f async for f in as_completed(futures)]
        stats = client.stats()
    assert sorted(f.op_id for f in order) == sorted(f.op_id for f in futures)  # type: ignore[type-var]
    assert sorted(seen) == sorted(f.op_id for f in futures)  # type: ignore[type-var]
    assert all(f.latest is not None and f.latest.num_good == f.latest.num_total for f in futures)
    assert stats["submitted"] == 5 and stats["finished"] == 5 and stats["items_good"] == 15


async def test_malformed_poll_bodies_are_retried_then_fail_naming_the_op(
    aiohttp_server: ServerFactory,
) -> None:
    accepted = json_response(202, '{"op_id": 41}')
    garbage = json_response(200, '{"num_total": 1, "num_good": "1", ')
    server = await scripted(aiohttp_server, accepted, garbage)
    async with make_client(str(server.make_url(""))) as client:
        fut = await client.images.create({"id": "a", "src": SRC})
        with pytest.raises(ResponseValidationError) as info:
            await fut
    assert info.value.op_id == 41 and "operation 41" in str(info.value)
    assert len(server.seen) == 1 + client.retry_policy.attempts


async def test_poll_transport_failures_after_the_budget_fail_naming_the_op(
    aiohttp_server: ServerFactory,
) -> None:
    server = await scripted(
        aiohttp_server, json_response(202, '{"op_id": 42}'), json_response(502, "{}")
    )
    async with make_client(str(server.make_url(""))) as client:
        fut = await client.images.create({"id": "a", "src": SRC})
        with pytest.raises(OperationError) as info:
            await fut
    assert info.value.op_id == 42 and "operation 42" in str(info.value)
    assert isinstance(info.value.__cause__, ServerError)


async def test_malformed_poll_body_then_good_one_resolves(aiohttp_server: ServerFactory) -> None:
    server = await scripted(
        aiohttp_server,
        json_response(202, '{"op_id": 9}'),
        json_response(200, "{truncated"),
        web.Response(status=200, body=b'{"x": 1}', content_type="text/html"),
        json_response(200, OP_DONE),
    )
    async with make_client(str(server.make_url(""))) as client:
        op = await (await client.images.create({"id": "a", "src": SRC}))
        assert client.stats()["poll_retries"] == 2
    assert op.is_finished


def test_no_warnings_on_close_with_pending_under_dev_mode(tmp_path: object) -> None:
    script = textwrap.dedent(
        """
        import asyncio
        from wesog_async import WesogClient, ClientClosedError
        from wesog_async.emulator import EmulatorConfig, EmulatorServer

        async def main():
            cfg = EmulatorConfig(api_keys=("k",), item_delay_ms=5000)  # pending at close
            async with EmulatorServer(cfg, host="127.0.0.1", port=0) as srv:
                async with WesogClient(api_key="k", base_url=srv.url) as client:
                    futs = [await client.images.create({"id": str(n), "src": "https://a/b"})
                            for n in range(5)]
                try:
                    await futs[0]
                except ClientClosedError as exc:
                    print("closed", len(exc.op_ids))

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "closed 5" in result.stdout
    assert "Task was destroyed" not in result.stderr and "Unclosed" not in result.stderr
    assert result.stderr == ""


def test_token_parsing_rejects_foreign_data() -> None:
    from wesog_async._future import parse_token

    assert parse_token('{"v":1,"op_id":5,"image_ids":["a"]}') == (5, ("a",))
    for bad in [
        "nope",
        "[]",
        '{"v":2,"op_id":5}',
        '{"v":1,"op_id":"5"}',
        '{"v":1,"op_id":5,"image_ids":[1]}',
    ]:
        with pytest.raises(ValueError, match="token"):
            parse_token(bad)


async def test_errors_naming_image_ids_are_mapped_and_unknown_ones_kept(
    aiohttp_server: ServerFactory,
) -> None:
    done = (
        '{"op_id": 7, "num_total": 3, "num_good": 1, "num_bad": 2, "is_finished": true,'
        ' "errors": [{"id": "b", "msg": "bad"}, {"id": 9, "msg": "out of range"}]}'
    )
    server = await scripted(aiohttp_server, json_response(200, done))
    async with make_client(str(server.make_url(""))) as client:
        fut = await client.images.create_many(
            [{"id": "a", "src": SRC}, {"id": "b", "src": SRC}, {"id": "c", "src": SRC}]
        )
    assert [e.image_id for e in fut.failed] == ["b", None]
    assert fut.failed_ids == ["b"]
    assert fut.applied_ids == [], "ids are not guessed when a failure cannot be mapped"
    assert fut.done() and fut.exception() is None
    assert "done" in repr(fut)


async def test_a_write_started_during_a_drain_is_refused_known_not_sent(
    wesog_emulator: EmulatorServer,
) -> None:
    # Once a close has begun no new write leaves, so none can be caught in
    # flight by the close (an outcome nobody could know); polls still run.
    wesog_emulator.state.pause_processing()
    client = make_client(wesog_emulator)
    await client.open()
    pending = await client.images.create({"id": "w0", "src": SRC})
    closing = asyncio.create_task(client.aclose(drain=True))
    await asyncio.sleep(0)
    with pytest.raises(ClientClosedError) as info:
        await client.images.create({"id": "w1", "src": SRC})
    assert not info.value.maybe_applied and info.value.image_ids == ("w1",)
    wesog_emulator.state.resume_processing()
    await closing
    assert pending.result_nowait().num_good == 1
    assert wesog_emulator.state.counters.ops_created == 1
