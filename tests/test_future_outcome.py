"""What an operation future says about its records: ``succeeded``, ``failed``,
``applied_ids`` and ``unknown_ids`` all come from one proof of the status,
against scripted loopback servers."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import weakref
from typing import Any

import pytest

from tests.conftest import make_client
from tests.test_client_http import ServerFactory, json_response, scripted
from wesog_async import OperationFailedError, OperationNotFoundError

SRC = "https://cdn.example.com/a.jpg"


def status(op_id: int = 42, **kw: Any) -> str:
    body: dict[str, Any] = {
        "op_id": op_id, "num_total": 5, "num_good": 5, "num_bad": 0,
        "is_started": True, "is_finished": True, "all_good": True, "errors": [],
    }  # fmt: skip
    body.update(kw)
    return json.dumps(body)


ALL_BAD = status(
    num_good=0, num_bad=5, all_good=False, errors=[{"id": i, "msg": "bad src"} for i in range(5)]
)


@pytest.mark.parametrize(
    ("body", "succeeded"),
    [
        (status(), True),
        (ALL_BAD, False),
        (status(num_good=4, num_bad=1, all_good=False, errors=[{"id": 2, "msg": "x"}]), False),
        (status(num_good=4), False),  # 4 good + 0 bad of 5: does not add up
        (status(num_good=-1, num_bad=6, num_total=5), False),
        (status(all_good=False), False),
        (status(errors=[{"id": 0, "msg": "x"}]), False),  # an error with 0 bad
    ],
)
async def test_a_future_followed_by_op_id_succeeds_only_on_a_status_that_says_all_good(
    aiohttp_server: ServerFactory, body: str, succeeded: bool
) -> None:
    server = await scripted(aiohttp_server, json_response(200, body))
    async with make_client(str(server.make_url(""))) as client:
        fut = client.ops.follow(42)
        assert not fut.succeeded, "never succeeded before the first poll"
        await fut
    assert fut.done() and fut.succeeded is succeeded


async def test_a_follow_by_op_id_that_failed_is_not_succeeded(
    aiohttp_server: ServerFactory,
) -> None:
    server = await scripted(aiohttp_server, json_response(404, '{"detail": "gone"}'))
    async with make_client(str(server.make_url(""))) as client:
        fut = client.ops.follow(42)
        with pytest.raises(OperationNotFoundError, match="unknown to the server"):
            await fut
    assert fut.done() and not fut.succeeded


@pytest.mark.parametrize("close_first", [False, True])
async def test_a_failed_follow_nobody_awaits_logs_nothing_when_collected(
    aiohttp_server: ServerFactory, caplog: pytest.LogCaptureFixture, close_first: bool
) -> None:
    # The poller marks every exception it sets as retrieved: a follower dropped
    # unawaited must not make asyncio log "exception was never retrieved".
    server = await scripted(aiohttp_server, json_response(404, '{"detail": "gone"}'))
    async with make_client(str(server.make_url(""))) as client:
        fut = client.ops.follow(42)
        if not close_first:
            while not fut.done():  # the 404 fails it
                await asyncio.sleep(0.001)
    # (close_first: the close fails it with ClientClosedError.)
    assert fut.done()  # (done() reads no exception: .succeeded would)
    shared = weakref.ref(fut._tracked.future)
    del fut  # the client stays referenced: its closed poller holds no op
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        gc.collect()
        await asyncio.sleep(0)
    assert shared() is None  # collected: asyncio would have logged by now
    assert "never retrieved" not in caplog.text


@pytest.mark.parametrize(
    ("body", "succeeded"),
    [
        (status(num_total=3, num_good=3), True),
        (
            status(
                num_total=3,
                num_good=0,
                num_bad=3,
                all_good=False,
                errors=[{"id": i, "msg": "x"} for i in range(3)],
            ),
            False,
        ),
        (status(num_total=5, num_good=5), False),  # counts 5 items, 3 were sent
        (
            status(
                num_total=3,
                num_good=2,
                num_bad=2,
                all_good=False,
                errors=[{"id": i, "msg": "x"} for i in range(3)],
            ),
            False,
        ),
    ],
)
async def test_a_write_succeeds_only_when_every_record_is_proven_applied(
    aiohttp_server: ServerFactory, body: str, succeeded: bool
) -> None:
    queued = json.dumps({"op_id": 42, "num_total": 3, "num_good": 0, "num_bad": 0,
                         "is_finished": False})  # fmt: skip
    server = await scripted(aiohttp_server, json_response(202, queued), json_response(200, body))
    async with make_client(str(server.make_url(""))) as client:
        fut = await client.images.create_many([{"id": i, "src": SRC} for i in ("a", "b", "c")])
        assert not fut.succeeded
        await fut
    assert fut.succeeded is succeeded
    assert fut.succeeded == (fut.applied_ids == ["a", "b", "c"])


TWICE = json.dumps({
    "op_id": 42, "num_total": 3, "num_good": 1, "num_bad": 2, "is_finished": True,
    "errors": [{"id": 0, "msg": "x"}, {"id": 0, "msg": "y"}],
})  # fmt: skip


async def test_an_index_listed_twice_fails_its_record_once_and_proves_nothing_else(
    aiohttp_server: ServerFactory,
) -> None:
    server = await scripted(aiohttp_server, json_response(200, TWICE))
    async with make_client(str(server.make_url(""))) as client:
        fut = await client.images.create_many([{"id": i, "src": SRC} for i in ("a", "b", "c")])
        await fut
    assert fut.failed_ids == ["a"], "one record, listed once"
    assert [(e.msg, e.image_id) for e in fut.failed] == [("x", "a"), ("y", None)]
    assert fut.unknown_ids == ["b", "c"] and fut.applied_ids == []
    assert not set(fut.failed_ids) & set(fut.unknown_ids)
    assert not fut.succeeded


async def test_raise_on_failure_names_the_records_the_proof_counts_failed(
    aiohttp_server: ServerFactory,
) -> None:
    server = await scripted(aiohttp_server, json_response(200, TWICE))
    async with make_client(str(server.make_url("")), raise_on_failure=True) as client:
        fut = await client.images.create_many([{"id": i, "src": SRC} for i in ("a", "b", "c")])
        with pytest.raises(OperationFailedError) as info:
            await fut
    assert info.value.failed_ids == ["a"] == fut.failed_ids
