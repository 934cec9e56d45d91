"""A write whose 202 arrives while the client closes (F20, F27): the server
accepted it, so the error carries its op id and records, maybe applied.

Scripted loopback servers hold the POST answer until the test has started
(or finished) ``aclose()``, so the race is played out deterministically.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from tests.conftest import make_client
from tests.test_client_http import ServerFactory
from wesog_async import ClientClosedError, WesogError

SRC = "https://cdn.example.com/a.jpg"


class HeldServer:
    """``POST /imgs/a`` is op 1 at once; ``POST /imgs/b`` (or a batch) is op 2, answered
    once ``post`` is set; ``GET /ops/1`` finishes once ``poll`` is set."""

    def __init__(self) -> None:
        self.post = asyncio.Event()
        self.poll = asyncio.Event()
        self.held = asyncio.Event()  # the held POST has arrived

    def app(self) -> web.Application:
        async def write(request: web.Request) -> web.Response:
            await request.read()
            op_id = 1 if request.match_info.get("iid") == "a" else 2
            if op_id == 2:
                self.held.set()
                await self.post.wait()
            return web.json_response(
                {"op_id": op_id, "num_total": 1, "num_good": 0, "num_bad": 0,
                 "is_finished": False},
                status=202,
            )  # fmt: skip

        async def poll(request: web.Request) -> web.Response:
            await self.poll.wait()
            op_id = int(request.match_info["op_id"])
            return web.json_response(
                {"op_id": op_id, "num_total": 1, "num_good": 1, "num_bad": 0,
                 "is_started": True, "is_finished": True, "all_good": True},
            )  # fmt: skip

        app = web.Application()
        app.router.add_post("/imgs/{iid}", write)
        app.router.add_post("/imgs", write)  # a bulk batch
        app.router.add_get("/ops/{op_id}", poll)
        return app


def check_accepted_but_closed(exc: BaseException) -> None:
    assert isinstance(exc, ClientClosedError) and isinstance(exc, WesogError)
    assert exc.op_ids == (2,) and exc.image_ids == ("b",) and exc.maybe_applied
    assert "operation 2" in str(exc) and "client.ops.follow(2)" in str(exc)
    assert exc.request_id is not None, "the request ids of the answered write are kept"


async def test_a_202_arriving_during_a_draining_close_carries_its_op_id(
    aiohttp_server: ServerFactory,
) -> None:
    held = HeldServer()
    server = await aiohttp_server(held.app())
    client = make_client(str(server.make_url("")))
    await client.open()
    first = await client.images.create({"id": "a", "src": SRC})  # op 1, its poll held
    write = asyncio.create_task(client.images.create({"id": "b", "src": SRC}))
    await held.held.wait()  # the write is on the wire
    closing = asyncio.create_task(client.aclose(drain=True))
    await asyncio.sleep(0.01)
    assert client.closed and not closing.done(), "the drain waits for op 1"
    held.post.set()  # op 2's 202 arrives while the client closes
    exc = await asyncio.gather(write, return_exceptions=True)
    check_accepted_but_closed(exc[0])
    held.poll.set()
    await closing
    assert (await first).num_good == 1, "the drain still ends op 1"


async def test_a_202_arriving_after_the_close_carries_its_op_id(
    aiohttp_server: ServerFactory,
) -> None:
    # A borrowed session is left open by aclose(), so the answer of a write
    # already on the wire still arrives after the client closed.
    held = HeldServer()
    server = await aiohttp_server(held.app())
    async with aiohttp.ClientSession() as session:
        client = make_client(str(server.make_url("")), session=session)
        await client.open()
        write = asyncio.create_task(client.images.create({"id": "b", "src": SRC}))
        await held.held.wait()
        await client.aclose()
        held.post.set()
        exc = await asyncio.gather(write, return_exceptions=True)
    check_accepted_but_closed(exc[0])


async def test_a_finished_answer_arriving_during_the_close_is_still_returned(
    aiohttp_server: ServerFactory,
) -> None:
    # wait=True: the answer is the finished status, so the outcome is known
    # and returned, not turned into an error by the close.
    release, arrived = asyncio.Event(), asyncio.Event()

    async def write(request: web.Request) -> web.Response:
        await request.read()
        arrived.set()
        await release.wait()
        return web.json_response(
            {"op_id": 5, "num_total": 1, "num_good": 1, "num_bad": 0,
             "is_started": True, "is_finished": True, "all_good": True},
        )  # fmt: skip

    app = web.Application()
    app.router.add_post("/imgs/{iid}", write)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        client = make_client(str(server.make_url("")), session=session)
        await client.open()
        task = asyncio.create_task(client.images.create({"id": "b", "src": SRC}, wait=True))
        await arrived.wait()
        await client.aclose()
        release.set()
        fut = await task
    assert fut.done() and fut.succeeded and fut.applied_ids == ["b"] and fut.op_id == 5


async def test_many_writes_answered_as_the_client_closes_are_all_client_closed_errors(
    aiohttp_server: ServerFactory,
) -> None:
    # The audit's repro (race_close.py): 50 writes answered just as aclose()
    # runs. Whichever side of the race each lands on, it is a ClientClosedError
    # naming its records, maybe applied; one that got its 202 names its op.
    release = asyncio.Event()
    arrived = 0
    ops = iter(range(100, 200))

    async def write(request: web.Request) -> web.Response:
        nonlocal arrived
        await request.read()
        arrived += 1
        if arrived > 1:
            await release.wait()
        return web.json_response({"op_id": next(ops), "is_finished": False}, status=202)

    async def poll(_request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/imgs/{iid}", write)
    app.router.add_get("/ops/{op_id}", poll)
    server = await aiohttp_server(app)
    client = make_client(str(server.make_url("")), max_connections=64)
    await client.open()
    # One op followed, its poll hanging: the close awaits the poll worker's end.
    first = await client.images.create({"id": "a", "src": SRC})
    tasks = [
        asyncio.create_task(client.images.create({"id": f"b{i}", "src": SRC})) for i in range(50)
    ]
    while arrived < 51:
        await asyncio.sleep(0.005)
    release.set()
    await asyncio.sleep(0)
    await client.aclose()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(first.exception(), ClientClosedError)
    for i, exc in enumerate(results):
        assert isinstance(exc, ClientClosedError), repr(exc)
        assert exc.image_ids == (f"b{i}",) and exc.maybe_applied
        assert all(op_id is not None for op_id in exc.op_ids)


async def test_a_bulk_batch_accepted_as_the_client_closes_is_unknown_with_its_op_id(
    aiohttp_server: ServerFactory,
) -> None:
    held = HeldServer()
    server = await aiohttp_server(held.app())
    async with aiohttp.ClientSession() as session:
        client = make_client(str(server.make_url("")), session=session)
        await client.open()
        run = asyncio.create_task(client.images.ingest_all([{"id": "b", "src": SRC}]))
        await held.held.wait()
        await client.aclose()
        held.post.set()
        report = await run
    assert report.total == 1 and report.unknown == 1 and report.applied == 0
    (record,) = report.unknown_items
    assert record.image_id == "b" and record.op_id == 2
    assert "client.ops.follow(2)" in record.message
