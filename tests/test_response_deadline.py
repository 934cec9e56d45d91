"""The response deadline: on the client's own session ``timeout=`` bounds an
attempt from the moment it has a connection, new or pooled (sending the
request and reading the whole answer), with one timer per attempt; a borrowed
session on another connector keeps aiohttp's ``total`` and ``sock_read``."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import make_client
from tests.test_client_http import ServerFactory
from tests.test_request_path import KEY, op_body, start
from wesog_async import RetryPolicy, TransportError

ONCE = RetryPolicy(attempts=1)


def trickling_app(spaces: int, step: float) -> web.Application:
    """``GET /ops/1`` answers one byte of leading whitespace every ``step``
    seconds, then the status: data never stops flowing for long."""

    async def op(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        for _ in range(spaces):
            await resp.write(b" ")
            await asyncio.sleep(step)
        await resp.write(json.dumps(op_body(1, finished=True)).encode())
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/ops/{op_id}", op)
    return app


async def test_a_trickling_answer_is_bounded_by_the_timeout_not_reset_per_read(
    aiohttp_server: ServerFactory,
) -> None:
    # aiohttp's sock_read restarts with every byte; the deadline does not.
    url = await start(aiohttp_server, trickling_app(spaces=40, step=0.05))
    async with make_client(url, key=KEY, timeout=0.3, retry=ONCE) as client:
        t0 = time.monotonic()
        with pytest.raises(TransportError, match="timed out"):
            await client.ops.get(1)
        assert time.monotonic() - t0 < 0.55  # 0.3 s, where total would allow 0.6


async def test_a_silent_server_on_a_pooled_connection_times_out_at_the_timeout(
    aiohttp_server: ServerFactory,
) -> None:
    calls = 0

    async def op(_request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls > 1:
            await asyncio.sleep(5)  # silent: no byte at all
        return web.json_response(op_body(1, finished=True))

    app = web.Application()
    app.router.add_get("/ops/{op_id}", op)
    url = await start(aiohttp_server, app)
    async with make_client(url, key=KEY, timeout=0.3, retry=ONCE) as client:
        assert (await client.ops.get(1)).is_finished  # the connection is now pooled
        t0 = time.monotonic()
        with pytest.raises(TransportError, match="timed out"):
            await client.ops.get(1)
        assert 0.25 < time.monotonic() - t0 < 1.0


async def test_a_borrowed_session_keeps_aiohttps_timeouts(aiohttp_server: ServerFactory) -> None:
    url = await start(aiohttp_server, trickling_app(spaces=60, step=0.05))
    session = aiohttp.ClientSession()  # a plain TCPConnector
    async with session, make_client(url, key=KEY, timeout=0.3, retry=ONCE, session=session) as c:
        t0 = time.monotonic()
        with pytest.raises(TransportError, match="timed out"):
            await c.ops.get(1)
        assert time.monotonic() - t0 < 2.0  # bounded by total, not the 3 s trickle
