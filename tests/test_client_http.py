"""Client lifecycle, configuration, the request path and its error mapping.

Scripted aiohttp.web servers on loopback give exact control over statuses,
headers and bodies; the emulator covers the real API behaviour.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import API_KEY, FAST_RETRY, make_client
from wesog_async import (
    APIStatusError,
    AuthenticationError,
    ConflictError,
    ConnectError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitError,
    ResponseValidationError,
    RetryPolicy,
    ServerError,
    TransportError,
    WesogClient,
    WesogError,
)
from wesog_async.emulator import EmulatorServer

SRC = "https://cdn.example.com/a.jpg"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ServerFactory = Callable[..., Awaitable[TestServer]]


class Recorder:
    """Sleeps nothing, remembers every delay asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


async def scripted(aiohttp_server: ServerFactory, *responses: Handler | web.Response) -> Any:
    """A server answering each request with the next scripted response."""
    seen: list[web.Request] = []
    bodies: list[bytes] = []
    script = list(responses)

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        bodies.append(await request.read())
        item = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(item, web.Response):
            return web.Response(status=item.status, body=item.body, headers=item.headers)
        return await item(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app)
    server.seen = seen
    server.bodies = bodies
    return server


def json_response(status: int, body: str, **headers: str) -> web.Response:
    return web.Response(
        status=status, body=body.encode(), headers={"Content-Type": "application/json", **headers}
    )


OP_DONE = (
    '{"op_id": 9, "method": "add", "resource": "image", "num_total": 1, "num_good": 1,'
    ' "num_bad": 0, "is_started": true, "is_finished": true, "all_good": true}'
)
OP_QUEUED = (
    '{"op_id": 9, "method": "add", "resource": "image", "num_total": 1, "num_good": 0,'
    ' "num_bad": 0, "is_started": false, "is_finished": false, "all_good": null}'
)


# -- configuration ---------------------------------------------------------


def test_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WESOG_API_KEY", "env-key")
    monkeypatch.setenv("WESOG_BASE_URL", "https://example.test/")
    client = WesogClient()
    assert client.base_url == "https://example.test"
    assert "env-key" not in repr(client)


def test_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WESOG_BASE_URL", raising=False)
    assert WesogClient(api_key="k").base_url == "https://api.wesog.com"


def test_missing_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WESOG_API_KEY", raising=False)
    with pytest.raises(ValueError, match="WESOG_API_KEY"):
        WesogClient()


def test_plain_http_to_remote_host_is_refused() -> None:
    with pytest.raises(ValueError, match="unencrypted"):
        WesogClient(api_key="k", base_url="http://api.wesog.com")
    WesogClient(api_key="k", base_url="http://api.wesog.com", allow_insecure_http=True)
    WesogClient(api_key="k", base_url="http://127.0.0.1:8080")
    WesogClient(api_key="k", base_url="http://[::1]:8080")
    WesogClient(api_key="k", base_url="http://localhost:8080")


def test_repr_never_shows_the_key() -> None:
    client = WesogClient(api_key="canary-SECRET-123", base_url="https://x.test")
    assert "canary-SECRET-123" not in repr(client)
    assert "canary-SECRET-123" not in str(vars(client).get("_base_url"))


async def test_use_outside_async_with_is_a_clear_error() -> None:
    client = WesogClient(api_key="k", base_url="http://127.0.0.1:9")
    with pytest.raises(RuntimeError, match="async with"):
        await client.images.get("x")


async def test_closed_client_cannot_be_used(wesog_emulator: EmulatorServer) -> None:
    client = make_client(wesog_emulator)
    async with client:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        await client.images.get("x")
    with pytest.raises(RuntimeError, match="closed"):
        await client.open()


async def test_use_from_another_event_loop_is_a_clear_error(
    wesog_emulator: EmulatorServer,
) -> None:
    errors: list[BaseException] = []
    async with make_client(wesog_emulator) as client:

        def other_thread() -> None:
            try:
                asyncio.run(client.ops.list())
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert "another event loop" in str(errors[0])


async def test_borrowed_session_is_not_closed(wesog_emulator: EmulatorServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with make_client(wesog_emulator, session=session) as client:
            await client.ops.list()
        assert not session.closed
        async with make_client(wesog_emulator, session=session) as client:
            assert await client.ops.list() is not None


async def test_owned_session_is_closed(wesog_emulator: EmulatorServer) -> None:
    client = make_client(wesog_emulator)
    async with client:
        session = client._transport._session
        assert session is not None
    assert session.closed


# -- headers, redirects ------------------------------------------------------


async def test_sends_key_user_agent_and_always_wait_and_strict(
    aiohttp_server: ServerFactory,
) -> None:
    server = await scripted(aiohttp_server, json_response(200, OP_DONE))
    async with make_client(str(server.make_url(""))) as client:
        await client.images.create({"id": "a", "src": SRC})
        await client.images.delete("a", urgent=True, strict=True)
    first, second = server.seen
    assert first.headers["API-Key"] == API_KEY
    assert first.headers["User-Agent"].startswith("wesog-async/")
    assert first.headers["Content-Type"] == "application/json"
    assert first.query["wait"] == "false" and first.query["strict"] == "false"
    assert "urgent" not in first.query and "lang" not in first.query
    assert second.method == "DELETE" and second.path == "/imgs/a"
    assert second.query["urgent"] == "true" and second.query["strict"] == "true"
    assert server.bodies[0] == b'{"src":"https://cdn.example.com/a.jpg"}'


async def test_redirect_is_not_followed(aiohttp_server: ServerFactory) -> None:
    elsewhere = await scripted(aiohttp_server, json_response(200, OP_DONE))
    redirect = web.Response(status=307, headers={"Location": str(elsewhere.make_url("/imgs/a"))})
    server = await scripted(aiohttp_server, redirect)
    async with make_client(str(server.make_url(""))) as client:
        with pytest.raises(APIStatusError) as info:
            await client.images.create({"id": "a", "src": SRC})
    assert info.value.status == 307 and "redirect" in str(info.value)
    assert elsewhere.seen == [], "no body or key sent to the redirect target"


# -- status → error, retries -------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, APIStatusError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, APIStatusError),
        (418, APIStatusError),
    ],
)
async def test_error_statuses_are_typed_and_not_retried(
    aiohttp_server: ServerFactory, status: int, cls: type[APIStatusError]
) -> None:
    server = await scripted(aiohttp_server, json_response(status, '{"detail": "nope"}'))
    async with make_client(str(server.make_url(""))) as client:
        with pytest.raises(cls) as info:
            await client.images.get("a")
    assert info.value.status == status and info.value.detail == "nope"
    assert len(server.seen) == 1, "only 408, 429, 5xx and transport errors are retried"


@pytest.mark.parametrize("status", [408, 500, 501, 502, 503, 504, 599])
async def test_reads_retry_408_and_every_5xx(aiohttp_server: ServerFactory, status: int) -> None:
    server = await scripted(
        aiohttp_server,
        json_response(status, '{"detail": "transient"}'),
        json_response(200, '{"image_id": "a", "src": "https://x/a.jpg"}'),
    )
    async with make_client(str(server.make_url(""))) as client:
        image = await client.images.get("a")
    assert image.image_id == "a"
    assert len(server.seen) == 2


async def test_a_read_failing_with_500_past_the_budget_is_a_server_error(
    aiohttp_server: ServerFactory,
) -> None:
    server = await scripted(aiohttp_server, json_response(500, '{"detail": "down"}'))
    async with make_client(str(server.make_url(""))) as client:
        with pytest.raises(ServerError) as info:
            await client.images.get("a")
    assert info.value.status == 500
    assert len(server.seen) == client.retry_policy.attempts


async def test_unauthorized_key_against_the_emulator(wesog_emulator: EmulatorServer) -> None:
    async with make_client(wesog_emulator, key="canary-WRONG-KEY") as client:
        with pytest.raises(AuthenticationError) as info:
            await client.ops.list()
    assert info.value.status == 401
    assert "canary-WRONG-KEY" not in str(info.value) + repr(info.value)


async def test_fastapi_422_details_are_kept(aiohttp_server: ServerFactory) -> None:
    body = '{"detail": [{"loc": ["body", 0, "src"], "msg": "field required", "type": "missing"}]}'
    server = await scripted(aiohttp_server, json_response(422, body))
    async with make_client(str(server.make_url(""))) as client:
        with pytest.raises(APIStatusError) as info:
            await client.images.create_many([{"id": "a", "src": SRC}])
    assert info.value.errors == [
        {"loc": ["body", 0, "src"], "msg": "field required", "type": "missing"}
    ]
    assert "body.0.src: field required" in str(info.value)


async def test_429_retry_after_is_honoured_then_succeeds(aiohttp_server: ServerFactory) -> None:
    server = await scripted(
        aiohttp_server,
        json_response(429, '{"detail": "slow down"}', **{"Retry-After": "0.05"}),
        json_response(200, OP_DONE),
    )
    sleep = Recorder()
    async with make_client(str(server.make_url("")), sleep=sleep) as client:
        op = await (await client.images.create({"id": "a", "src": SRC}))
        assert op.num_good == 1
        assert client.stats()["throttles"] == 1 and client.stats()["retries"] == 1
    assert len(server.seen) == 2
    assert max(sleep.delays) >= 0.05


async def test_429_retry_after_over_the_cap_is_raised(aiohttp_server: ServerFactory) -> None:
    server = await scripted(
        aiohttp_server, json_response(429, '{"detail": "later"}', **{"Retry-After": "3600"})
    )
    async with make_client(str(server.make_url(""))) as client:
        with pytest.raises(RateLimitError) as info:
            await client.images.create({"id": "a", "src": SRC})
    assert info.value.retry_after == 3600 and len(server.seen) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_gateway_errors_are_retried_for_safe_writes(
    aiohttp_server: ServerFactory, status: int
) -> None:
    server = await scripted(
        aiohttp_server, json_response(status, '{"detail": "x"}'), json_response(200, OP_DONE)
    )
    async with make_client(str(server.make_url(""))) as client:
        op = await (await client.images.create({"id": "a", "src": SRC}))
    assert op.num_good == 1 and len(server.seen) == 2


@pytest.mark.parametrize(("status", "retried"), [(502, False), (504, False), (503, True)])
async def test_strict_writes_are_not_resent_after_ambiguous_errors(
    aiohttp_server: ServerFactory, status: int, retried: bool
) -> None:
    server = await scripted(
        aiohttp_server, json_response(status, '{"detail": "x"}'), json_response(200, OP_DONE)
    )
    async with make_client(str(server.make_url(""))) as client:
        if retried:
            await client.images.create({"id": "a", "src": SRC}, strict=True)
        else:
            # Maybe applied: unknown, with the ids and the server's error as cause.
            with pytest.raises(OutcomeUnknownError) as info:
                await client.images.create({"id": "a", "src": SRC}, strict=True)
            assert info.value.image_ids == ("a",)
            assert isinstance(info.value.__cause__, ServerError)
            assert info.value.__cause__.status == status
    assert len(server.seen) == (2 if retried else 1)


async def test_write_answer_without_op_id_is_outcome_unknown(
    aiohttp_server: ServerFactory,
) -> None:
    server = await scripted(aiohttp_server, json_response(202, '{"accepted": true}'))
    async with make_client(str(server.make_url(""))) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.images.create({"id": "a", "src": SRC})
    assert info.value.raw_body == b'{"accepted": true}'
    assert info.value.image_ids == ("a",)
    assert len(server.seen) == 1, "never resent blindly"


async def test_write_answer_with_garbage_body_is_outcome_unknown(
    aiohttp_server: ServerFactory,
) -> None:
    server = await scripted(aiohttp_server, json_response(202, "<html>oops"))
    async with make_client(str(server.make_url(""))) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.images.create({"id": "a", "src": SRC}, strict=True)
    assert info.value.raw_body == b"<html>oops"


@pytest.mark.parametrize("body", ['{"op_id": 9}', '{"id": 9}', '{"operation_id": "9"}', OP_QUEUED])
async def test_op_id_is_read_from_every_tolerated_shape(
    aiohttp_server: ServerFactory, body: str
) -> None:
    server = await scripted(aiohttp_server, json_response(202, body), json_response(200, OP_DONE))
    async with make_client(str(server.make_url(""))) as client:
        fut = await client.images.create({"id": "a", "src": SRC})
        assert fut.op_id == 9
        op = await fut
    assert op.is_finished and op.op_id == 9
    assert server.seen[1].path == "/ops/9"


async def test_wait_true_answer_without_op_id_still_resolves(
    aiohttp_server: ServerFactory,
) -> None:
    body = OP_DONE.replace('"op_id": 9, ', "")
    server = await scripted(aiohttp_server, json_response(200, body))
    async with make_client(str(server.make_url(""))) as client:
        fut = await client.images.create({"id": "a", "src": SRC}, wait=True)
        op = await fut
    assert fut.op_id is None and op.is_finished


async def test_invalid_body_on_get_is_a_response_validation_error(
    aiohttp_server: ServerFactory,
) -> None:
    server = await scripted(
        aiohttp_server, json_response(200, OP_DONE.replace('"num_good": 1', '"num_good": "1"'))
    )
    async with make_client(str(server.make_url(""))) as client:
        with pytest.raises(ResponseValidationError, match="num_good"):
            await client.ops.get(9)


async def test_connect_error_is_retried_then_raised() -> None:
    sleep = Recorder()
    async with make_client("http://127.0.0.1:9", sleep=sleep) as client:
        with pytest.raises(ConnectError) as info:
            await client.images.create({"id": "a", "src": SRC}, strict=True)
    assert len(sleep.delays) == FAST_RETRY.attempts - 1, "connect errors are safe to retry"
    assert isinstance(info.value, TransportError) and isinstance(info.value, WesogError)
    assert info.value.__cause__ is None or "aiohttp" not in type(info.value.__cause__).__module__


async def test_read_timeout_on_a_safe_write_is_retried_then_unknown(
    aiohttp_server: ServerFactory,
) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return json_response(200, OP_DONE)

    server = await scripted(aiohttp_server, hang)
    async with make_client(
        str(server.make_url("")), timeout=0.05, retry=RetryPolicy(attempts=2, backoff_initial=0.001)
    ) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.images.create({"id": "a", "src": SRC})
    assert len(server.seen) == 2
    assert "timed out" in str(info.value)


async def test_read_timeout_on_a_strict_write_is_not_resent(
    aiohttp_server: ServerFactory,
) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return json_response(200, OP_DONE)

    server = await scripted(aiohttp_server, hang)
    async with make_client(str(server.make_url("")), timeout=0.05) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.images.create({"id": "a", "src": SRC}, strict=True)
    assert len(server.seen) == 1


async def test_cancel_conflict_after_start(wesog_emulator: EmulatorServer) -> None:
    async with make_client(wesog_emulator) as client:
        fut = await client.images.create({"id": "c", "src": SRC})
        await fut
        with pytest.raises(ConflictError) as info:
            await client.ops.cancel(fut.op_id)  # type: ignore[arg-type]
    assert info.value.status == 409


async def test_unknown_op_is_not_found(wesog_emulator: EmulatorServer) -> None:
    async with make_client(wesog_emulator) as client:
        with pytest.raises(NotFoundError):
            await client.ops.get(987654)
