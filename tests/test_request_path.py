"""The request path and the poller against scripted loopback servers that
misbehave in ways the emulator does not (FAULTS F28-F34)."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections import Counter
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import make_client
from tests.test_client_http import ServerFactory
from wesog_async import (
    BodyLimits,
    ClientClosedError,
    OperationError,
    OutcomeUnknownError,
    PollPolicy,
    ResponseTooLargeError,
    ResponseValidationError,
    RetryPolicy,
    TransportError,
    WesogClient,
)

KEY = "test-key-CANARY-0xDEADBEEF"
SRC = "https://cdn.example.com/a.jpg"


def op_body(op_id: int, n: int = 1, *, finished: bool) -> dict[str, Any]:
    return {
        "op_id": op_id, "method": "add", "resource": "image", "num_total": n,
        "num_good": n if finished else 0, "num_bad": 0, "is_started": finished,
        "is_finished": finished, "all_good": True if finished else None,
        "idle_ms": 0, "exec_ms": 0.1 if finished else 0, "errors": [],
    }  # fmt: skip


class OpServer:
    """Accepts writes as numbered operations; ``finished(op_id)`` decides polls."""

    def __init__(self, *, post_delay: float = 0.0) -> None:
        self.next_id = 0
        self.stuck: set[int] = set()
        self.polls: Counter[int] = Counter()
        self.posts = 0
        self.post_delay = post_delay
        self.sizes: dict[int, int] = {}
        #: Seconds after its submit an op finishes (unlisted: at once).
        self.takes: dict[int, float] = {}
        self.default_take = 0.0
        self.ages: dict[int, list[int]] = {}
        self.submitted: dict[int, float] = {}

    async def write(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.posts += 1
        if self.post_delay:
            await asyncio.sleep(self.post_delay)
        self.next_id += 1
        data = json.loads(body) if body else {}
        n = len(data) if isinstance(data, list) else 1
        self.sizes[self.next_id] = n
        self.submitted[self.next_id] = asyncio.get_running_loop().time()
        return web.json_response(op_body(self.next_id, n, finished=False), status=202)

    async def poll(self, request: web.Request) -> web.Response:
        op_id = int(request.match_info["op_id"])
        self.polls[op_id] += 1
        self.ages.setdefault(op_id, []).append(
            round((asyncio.get_running_loop().time() - self.submitted.get(op_id, 0.0)) * 1000)
        )
        n = self.sizes.get(op_id, 1)
        age = asyncio.get_running_loop().time() - self.submitted.get(op_id, 0.0)
        finished = op_id not in self.stuck and age >= self.takes.get(op_id, self.default_take)
        return web.json_response(op_body(op_id, n, finished=finished))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/imgs/{image_id}", self.write)
        app.router.add_post("/imgs", self.write)
        app.router.add_get("/ops/{op_id}", self.poll)
        return app


async def start(aiohttp_server: ServerFactory, app: web.Application) -> str:
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


# -- F33: one slow or stuck operation delays nobody else ------------------------


async def test_f33_an_op_behind_a_stuck_one_is_seen_soon_after_it_finishes(
    aiohttp_server: ServerFactory,
) -> None:
    # Nothing of the kind learned yet, an older op seen running for a while:
    # the cold-start hold may delay a younger op's later polls by one step of
    # its own schedule at most, never by seconds.
    ops = OpServer()
    ops.stuck.add(1)
    ops.takes[2] = 0.06
    url = await start(aiohttp_server, ops.app())
    async with WesogClient(KEY, base_url=url) as client:
        await client.images.create({"id": "stuck", "src": SRC})
        await asyncio.sleep(0.4)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        fut = await client.images.create({"id": "sixty", "src": SRC})
        async with asyncio.timeout(2):
            await fut
        elapsed = loop.time() - t0
    assert elapsed < 0.25, elapsed


async def test_f33_one_slow_finished_op_does_not_delay_the_next_first_poll(
    aiohttp_server: ServerFactory,
) -> None:
    ops = OpServer()
    ops.takes[1] = 0.8
    url = await start(aiohttp_server, ops.app())
    async with WesogClient(KEY, base_url=url) as client:
        await (await client.images.create({"id": "slow", "src": SRC}))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        fut = await client.images.create({"id": "fast", "src": SRC})
        async with asyncio.timeout(2):
            await fut
        elapsed = loop.time() - t0
    assert elapsed < 0.2, elapsed  # the cold guess (20 ms), not the slow op's 0.8 s
    assert ops.polls[2] == 1


async def test_a_cold_kind_is_probed_at_once_and_the_others_follow_what_it_learns(
    aiohttp_server: ServerFactory,
) -> None:
    # A cold guess of 2 s, a server that finishes at once: one op of the kind
    # looks right away, and what it learns brings the others' first polls forward.
    ops = OpServer()
    url = await start(aiohttp_server, ops.app())
    policy = PollPolicy(first_delay=2.0)
    async with WesogClient(KEY, base_url=url, poll=policy) as client:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        futures = await asyncio.gather(
            *(client.images.create({"id": f"c{n}", "src": SRC}) for n in range(8))
        )
        async with asyncio.timeout(3):
            await asyncio.gather(*futures)
        elapsed = loop.time() - t0
    assert elapsed < 0.5, elapsed
    assert sum(ops.polls.values()) == 8  # one poll each


async def test_a_slow_kind_is_polled_on_evidence_then_at_the_learned_finish(
    aiohttp_server: ServerFactory,
) -> None:
    # Every op takes 0.4 s: the ops submitted before any finish wait on the
    # evidence of three older ones still running, and move to the learned
    # finish when the first finishes, instead of each backing off alone.
    ops = OpServer()
    ops.default_take = 0.4
    url = await start(aiohttp_server, ops.app())
    async with WesogClient(KEY, base_url=url) as client:

        async def one(n: int) -> float:
            await asyncio.sleep(n * 0.01)
            fut = await client.images.create({"id": f"s{n}", "src": SRC})
            t0 = asyncio.get_running_loop().time()
            await fut
            return asyncio.get_running_loop().time() - t0

        async with asyncio.timeout(5):
            seen = await asyncio.gather(*(one(n) for n in range(20)))
    rest = [ops.polls[i] for i in range(5, 21)]
    assert max(seen) < 0.4 + 0.25, seen  # nobody seen long after its finish
    # The cold first poll, the learned finish, and at most one or two more:
    # this server's timing is absurd (exec_ms 0.1), so the learned time is the
    # middle of the window the client saw, a little before the 0.4 s. Without
    # the holds each op would back off alone from 20 ms (~8 polls, ops 2 and 3).
    assert sum(rest) / len(rest) <= 3.25, ops.ages


async def test_an_op_is_polled_when_aimed_though_the_estimate_rose_meanwhile(
    aiohttp_server: ServerFactory,
) -> None:
    # The kind was learned at 0.2 s when the op was tracked; while it waits,
    # slower ops of the kind finish (the estimate nearly triples). Its first
    # poll still comes at 0.2 s: re-aiming at the newest estimate would aim
    # every op at the highest estimate seen while it waited.
    ops = OpServer()
    ops.default_take = 0.2
    url = await start(aiohttp_server, ops.app())
    policy = PollPolicy(jitter=0)
    async with WesogClient(KEY, base_url=url, poll=policy) as client:
        schedule = client._submitter.poller.schedule
        kind = ("POST", 1)
        for _ in range(5):
            schedule.learn(policy, kind, 1, submitted_at=0.0, now=0.2)
        fut = await client.images.create({"id": "aimed", "src": SRC})
        await asyncio.sleep(0.05)
        for _ in range(10):
            schedule.learn(policy, kind, 1, submitted_at=0.0, now=1.0)
        assert schedule.first_delay(policy, kind, 1) > 0.5  # the estimate rose
        async with asyncio.timeout(2):
            await fut
    assert ops.polls[1] == 1
    assert ops.ages[1][0] < 400, ops.ages  # aimed at 0.2 s, not at the new 0.5 s


async def test_f33_a_stuck_op_does_not_delay_new_fast_ops(aiohttp_server: ServerFactory) -> None:
    ops = OpServer()
    ops.stuck.add(1)
    url = await start(aiohttp_server, ops.app())
    # Default poll policy, fresh client: the schedule has learned nothing.
    async with WesogClient(KEY, base_url=url) as client:
        stuck = await client.images.create({"id": "slow", "src": SRC})
        await asyncio.sleep(0.4)  # the stuck op is seen running for a while
        assert not stuck.done()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        futures = [await client.images.create({"id": f"i{n}", "src": SRC}) for n in range(5)]
        async with asyncio.timeout(2):
            results = await asyncio.gather(*futures)
        elapsed = loop.time() - t0
    assert all(op.is_finished for op in results)
    assert [ops.polls[f.op_id] for f in futures if f.op_id is not None] == [1] * 5
    assert elapsed < 0.3, f"new ops waited {elapsed:.2f}s behind the stuck one"


# -- F28: waiting for a connection is never "maybe applied" ---------------------


async def test_f28_pool_waits_never_make_strict_writes_unknown(
    aiohttp_server: ServerFactory,
) -> None:
    ops = OpServer(post_delay=0.01)
    url = await start(aiohttp_server, ops.app())
    n = 600
    # 600 writes over 8 connections at ~10 ms each: the last waits ~0.75 s for a
    # connection, far past the 0.2 s response timeout.
    async with make_client(url, key=KEY, timeout=0.2, max_connections=8) as client:
        results = await asyncio.gather(
            *(client.images.create({"id": f"i{i}", "src": SRC}, strict=True) for i in range(n)),
            return_exceptions=True,
        )
        stats = client.stats()
    unknown = [r for r in results if isinstance(r, OutcomeUnknownError)]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not unknown and not errors, errors[:3]
    assert not any(r.resent for r in results if not isinstance(r, BaseException))
    assert ops.posts == n and stats["ambiguous_resends"] == 0


async def test_a_per_call_response_timeout_overrides_the_client_default(
    aiohttp_server: ServerFactory,
) -> None:
    ops = OpServer(post_delay=0.3)
    url = await start(aiohttp_server, ops.app())
    async with make_client(url, key=KEY, timeout=5.0) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.images.create({"id": "a", "src": SRC}, strict=True, response_timeout=0.05)
    assert info.value.image_ids == ("a",)
    assert ops.posts == 1, "a strict write that may have been applied is never resent"


def slow_app(delay: float) -> web.Application:
    """Every read-like route answers correctly, ``delay`` seconds late."""

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(delay)
        route = request.match_info.route.resource
        path = route.canonical if route is not None else request.path
        if path == "/ops/{op_id}":
            return web.json_response(op_body(int(request.match_info["op_id"]), finished=True))
        if path == "/ops":
            return web.json_response([op_body(1, finished=True)])
        if path == "/tag/image":
            return web.json_response({"keywords": ["dog"]})
        return web.json_response({"results": [{"image_id": "a"}], "count": 1})

    app = web.Application()
    app.router.add_get("/ops/{op_id}", answer)
    app.router.add_delete("/ops/{op_id}", answer)
    app.router.add_get("/ops", answer)
    app.router.add_post("/tag/image", answer)
    app.router.add_get("/imgs", answer)
    return app


async def _search_all(client: WesogClient, **kwargs: Any) -> list[str | None]:
    return [image.image_id async for image in client.images.search_iter(**kwargs)]


REQUEST_METHODS: dict[str, Any] = {
    "ops.get": lambda c, **kw: c.ops.get(1, **kw),
    "ops.list": lambda c, **kw: c.ops.list(**kw),
    "ops.cancel": lambda c, **kw: c.ops.cancel(1, **kw),
    "tag.image": lambda c, **kw: c.tag.image(b"jpeg bytes", **kw),
    "images.search_iter": _search_all,
}


@pytest.mark.parametrize("method", sorted(REQUEST_METHODS))
async def test_response_timeout_on_every_request_method(
    aiohttp_server: ServerFactory, method: str
) -> None:
    url = await start(aiohttp_server, slow_app(0.3))
    call = REQUEST_METHODS[method]
    no_retry = RetryPolicy(attempts=1)
    async with make_client(url, key=KEY, timeout=5.0, retry=no_retry) as client:
        assert await call(client)  # 0.3 s is well within the client's 5 s
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(TransportError, match="timed out waiting for the response"):
            await call(client, response_timeout=0.05)
        assert loop.time() - t0 < 0.25, "the per-call timeout was not applied"
    # A per-call timeout longer than the client's is honoured too.
    async with make_client(url, key=KEY, timeout=0.05, retry=no_retry) as client:
        assert await call(client, response_timeout=5.0)


def test_every_request_method_takes_response_timeout() -> None:
    """What README promises: each method that sends requests of its own has it
    (``follow``/``wait`` only poll, under the client's timeout and your deadline)."""
    import inspect

    from wesog_async._images import ImagesAPI
    from wesog_async._ops import OpsAPI
    from wesog_async._search import SearchEndpoints
    from wesog_async._tag import TagAPI

    polls_or_bulk = {"follow", "wait", "ingest", "ingest_all"}
    missing = [
        f"{api.__name__}.{name}"
        for api in (ImagesAPI, SearchEndpoints, OpsAPI, TagAPI)
        for name, fn in vars(api).items()
        if not name.startswith("_") and callable(fn) and name not in polls_or_bulk
        if "response_timeout" not in inspect.signature(fn).parameters
    ]
    assert missing == []


# -- F29: transient errors on polls are retried ---------------------------------


@pytest.mark.parametrize("status", [408, 500, 502, 503, 520])
async def test_f29_transient_poll_errors_are_retried(
    aiohttp_server: ServerFactory, status: int
) -> None:
    ops = OpServer()
    failed_once: set[int] = set()

    async def poll(request: web.Request) -> web.Response:
        op_id = int(request.match_info["op_id"])
        if op_id not in failed_once:
            failed_once.add(op_id)
            return web.json_response({"detail": "transient"}, status=status)
        return await ops.poll(request)

    app = web.Application()
    app.router.add_post("/imgs/{image_id}", ops.write)
    app.router.add_get("/ops/{op_id}", poll)
    url = await start(aiohttp_server, app)
    async with make_client(url, key=KEY) as client:
        fut = await client.images.create({"id": "a", "src": SRC})
        op = await fut.result(timeout=5)
        stats = client.stats()
    assert op.is_finished and stats["poll_retries"] == 1


# -- F30: body caps while reading -----------------------------------------------


async def test_f30_a_gzip_bomb_on_a_poll_is_stopped_at_the_cap(
    aiohttp_server: ServerFactory,
) -> None:
    ops = OpServer()
    bomb = gzip.compress(b'{"op_id": 1, "x": "' + b"0" * (16 << 20) + b'"}', compresslevel=9)

    async def poll(_request: web.Request) -> web.Response:
        return web.Response(
            body=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
        )

    app = web.Application()
    app.router.add_post("/imgs/{image_id}", ops.write)
    app.router.add_get("/ops/{op_id}", poll)
    url = await start(aiohttp_server, app)
    limits = BodyLimits(status=1 << 20)
    retry = RetryPolicy(attempts=2, backoff_initial=0.001, backoff_max=0.001)
    async with make_client(url, key=KEY, body_limits=limits, retry=retry) as client:
        fut = await client.images.create({"id": "a", "src": SRC})
        with pytest.raises(OperationError) as info:
            await fut.result(timeout=10)
    cause = info.value.__cause__
    assert isinstance(cause, ResponseTooLargeError)
    assert cause.limit == 1 << 20 and "/ops/1" in str(cause)
    assert len(bomb) < 1 << 20, "the compressed body itself is under the cap"


async def test_f30_an_announced_oversized_body_is_refused_before_reading(
    aiohttp_server: ServerFactory,
) -> None:
    async def get(_request: web.Request) -> web.Response:
        return web.json_response({"image_id": "a", "title": "x" * 5000})

    app = web.Application()
    app.router.add_get("/imgs/{image_id}", get)
    url = await start(aiohttp_server, app)
    async with make_client(url, key=KEY, body_limits=BodyLimits(default=1000)) as client:
        with pytest.raises(ResponseTooLargeError, match="1,000-byte cap"):
            await client.images.get("a")


# -- F31: search_iter against servers that cap pages or ignore paging -----------


def search_app(total: int, *, cap: int | None, honour_page: bool, count: bool) -> web.Application:
    requests: list[dict[str, str]] = []

    async def search(request: web.Request) -> web.Response:
        requests.append(dict(request.query))
        limit = int(request.query.get("limit", "50"))
        if cap is not None:
            limit = min(limit, cap)
        page = int(request.query.get("page", "1")) if honour_page else 1
        start = (page - 1) * limit
        results = [{"image_id": f"i{n}"} for n in range(start, min(start + limit, total))]
        asked = request.query.get("count") == "true"
        return web.json_response({"results": results, "count": total if asked and count else None})

    app = web.Application()
    app.router.add_get("/imgs", search)
    app["requests"] = requests
    return app


@pytest.mark.parametrize("count", [True, False])
async def test_f31_search_iter_with_a_server_capping_page_size(
    aiohttp_server: ServerFactory, count: bool
) -> None:
    app = search_app(250, cap=100, honour_page=True, count=count)
    url = await start(aiohttp_server, app)
    async with make_client(url, key=KEY) as client:
        ids = [image.image_id async for image in client.images.search_iter(limit=1000)]
    assert ids == [f"i{n}" for n in range(250)]
    assert len(app["requests"]) == 3


async def test_f31_search_iter_ends_on_an_exact_multiple(aiohttp_server: ServerFactory) -> None:
    app = search_app(200, cap=None, honour_page=True, count=False)
    url = await start(aiohttp_server, app)
    async with make_client(url, key=KEY) as client:
        ids = [image.image_id async for image in client.images.search_iter(limit=100)]
    assert len(ids) == 200 and len(set(ids)) == 200


def uneven_search_app(sizes: list[int], *, count: int | None) -> web.Application:
    """Page ``n`` holds ``sizes[n - 1]`` results (none past the list), whatever
    the ``limit``: a server that cuts pages by bytes, or loses results to
    deletes between pages. The first page reports ``count``."""
    requests: list[dict[str, str]] = []
    starts = [sum(sizes[:n]) for n in range(len(sizes) + 1)]

    async def search(request: web.Request) -> web.Response:
        requests.append(dict(request.query))
        page = int(request.query.get("page", "1"))
        if page > len(sizes):
            results: list[dict[str, str]] = []
        else:
            results = [{"image_id": f"i{n}"} for n in range(starts[page - 1], starts[page])]
        asked = request.query.get("count") == "true"
        return web.json_response({"results": results, "count": count if asked else None})

    app = web.Application()
    app.router.add_get("/imgs", search)
    app["requests"] = requests
    return app


async def test_f31_search_iter_follows_the_count_past_short_pages(
    aiohttp_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sizes = [100, 37, 100, 1, 62]
    app = uneven_search_app(sizes, count=sum(sizes))
    url = await start(aiohttp_server, app)
    with caplog.at_level(logging.WARNING, logger="wesog_async"):
        async with make_client(url, key=KEY) as client:
            ids = [image.image_id async for image in client.images.search_iter(limit=100)]
    assert ids == [f"i{n}" for n in range(300)]
    assert [r["page"] for r in app["requests"]] == ["1", "2", "3", "4", "5"]
    assert not caplog.records, "the count was reached: nothing to warn about"


async def test_f31_without_a_count_a_short_page_still_ends_search_iter(
    aiohttp_server: ServerFactory,
) -> None:
    app = uneven_search_app([100, 37, 100], count=None)
    url = await start(aiohttp_server, app)
    async with make_client(url, key=KEY) as client:
        ids = [image.image_id async for image in client.images.search_iter(limit=100)]
    assert len(ids) == 137 and len(app["requests"]) == 2


@pytest.mark.parametrize("sizes", [[50, 50, 20], []], ids=["overstated", "all-empty"])
async def test_f31_an_empty_page_before_the_count_ends_search_iter_with_a_warning(
    aiohttp_server: ServerFactory, caplog: pytest.LogCaptureFixture, sizes: list[int]
) -> None:
    # The count says 1,000 remain; the server has fewer, then keeps answering
    # empty pages: one empty page ends it, and says so.
    app = uneven_search_app(sizes, count=1000)
    url = await start(aiohttp_server, app)
    with caplog.at_level(logging.WARNING, logger="wesog_async"):
        async with make_client(url, key=KEY) as client:
            ids = [image.image_id async for image in client.images.search_iter(limit=50)]
    assert ids == [f"i{n}" for n in range(sum(sizes))]
    assert len(app["requests"]) == len(sizes) + 1
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert f"after {sum(sizes)} of the 1000 results" in record.getMessage()
    assert record.__dict__["wesog_seen"] == sum(sizes)
    assert record.__dict__["wesog_count"] == 1000


async def test_f31_search_iter_fails_when_the_server_ignores_page(
    aiohttp_server: ServerFactory,
) -> None:
    app = search_app(10_000, cap=None, honour_page=False, count=False)
    url = await start(aiohttp_server, app)
    seen: list[str | None] = []

    async def drain(client: WesogClient) -> None:
        async for image in client.images.search_iter(limit=100):
            seen.append(image.image_id)

    async with make_client(url, key=KEY) as client:
        with pytest.raises(ResponseValidationError, match="repeats page 1"):
            await drain(client)
    assert len(seen) == 100 and len(set(seen)) == 100


# -- F34: a server that echoes the key ------------------------------------------


async def test_f34_an_echoed_key_is_scrubbed_from_errors(aiohttp_server: ServerFactory) -> None:
    async def echo(request: web.Request) -> web.Response:
        key = request.headers["API-Key"]
        return web.json_response({"detail": f"bad key {key}"}, status=401)

    app = web.Application()
    app.router.add_get("/imgs/{image_id}", echo)
    url = await start(aiohttp_server, app)
    async with make_client(url, key=KEY) as client:
        with pytest.raises(Exception) as info:
            await client.images.get("a")
    exc = info.value
    text = str(exc) + repr(exc) + repr(getattr(exc, "detail", "")) + repr(getattr(exc, "body", ""))
    assert KEY not in text and "<redacted>" in text


# -- writes cut off by aclose() ------------------------------------------------


async def test_a_write_in_flight_during_aclose_is_a_client_closed_error(
    aiohttp_server: ServerFactory,
) -> None:
    ops = OpServer(post_delay=2.0)
    url = await start(aiohttp_server, ops.app())
    client = make_client(url, key=KEY)
    await client.open()
    task = asyncio.create_task(client.images.create({"id": "a", "src": SRC}))
    while ops.posts == 0:
        await asyncio.sleep(0.005)
    await client.aclose()
    with pytest.raises(ClientClosedError) as info:
        await task
    assert info.value.image_ids == ("a",) and info.value.maybe_applied


async def test_a_write_after_aclose_is_refused_clearly(aiohttp_server: ServerFactory) -> None:
    url = await start(aiohttp_server, OpServer().app())
    client = make_client(url, key=KEY)
    async with client:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        await client.images.create({"id": "a", "src": SRC})


def test_poll_policy_defaults_find_out_fast() -> None:
    policy = PollPolicy()
    assert policy.first(1, None, None) <= 0.025
    assert policy.first(1000, None, None) <= 0.15
    assert policy.min_delay < 0.01


# -- answers about something else ------------------------------------------------


async def test_an_answer_about_another_image_or_op_is_refused(
    aiohttp_server: ServerFactory,
) -> None:
    async def image(_request: web.Request) -> web.Response:
        return web.json_response({"image_id": "other", "src": SRC})

    async def op(_request: web.Request) -> web.Response:
        return web.json_response(op_body(99, finished=True))

    app = web.Application()
    app.router.add_get("/imgs/{image_id}", image)
    app.router.add_get("/ops/{op_id}", op)
    app.router.add_delete("/ops/{op_id}", op)
    url = await start(aiohttp_server, app)
    async with make_client(url, key=KEY) as client:
        with pytest.raises(ResponseValidationError, match="answered about 'other'"):
            await client.images.get("mine")
        with pytest.raises(ResponseValidationError, match="answered about operation 99"):
            await client.ops.get(5)
        with pytest.raises(ResponseValidationError, match="answered about operation 99"):
            await client.ops.cancel(5)
        fut = client.ops.follow(5, image_ids=["a"])
        # A poll answered with another op's status proves nothing about ours:
        # retried like a malformed body, then the future fails naming op 5.
        with pytest.raises(ResponseValidationError, match="operation 5") as info:
            await fut.result(timeout=10)
    assert "answered about operation 99" in str(info.value.__cause__)
    assert fut.applied_ids == [] and fut.unknown_ids == []


def test_a_status_about_another_op_proves_nothing() -> None:
    from wesog_async import Operation, prove

    status = Operation(num_total=1, num_good=1, num_bad=0, is_finished=True, op_id=99)
    proof = prove(status, ["a"], op_id=5)
    assert proof.applied == () and proof.unknown == (0,)
    assert proof.reason is not None and "about operation 99" in proof.reason


async def test_write_failures_carry_their_image_ids(aiohttp_server: ServerFactory) -> None:
    from wesog_async import BadRequestError, ServerError

    statuses = iter([422, 500, 500, 500])

    async def write(_request: web.Request) -> web.Response:
        return web.json_response({"detail": "no"}, status=next(statuses))

    app = web.Application()
    app.router.add_post("/imgs", write)
    url = await start(aiohttp_server, app)
    retry = RetryPolicy(attempts=3, backoff_initial=0.001, backoff_max=0.001)
    batch = [{"id": "a", "src": SRC}, {"id": "b", "src": SRC}]
    async with make_client(url, key=KEY, retry=retry) as client:
        with pytest.raises(BadRequestError) as rejected:
            await client.images.create_many(batch)
        # A 500 left standing after the retries: maybe applied, so unknown.
        with pytest.raises(OutcomeUnknownError) as unknown:
            await client.images.create_many(batch)
    assert rejected.value.image_ids == ("a", "b")
    assert unknown.value.image_ids == ("a", "b")
    assert isinstance(unknown.value.__cause__, ServerError)


async def test_a_poll_failing_during_a_drain_fails_its_future_and_the_drain_ends(
    aiohttp_server: ServerFactory,
) -> None:
    # A drain waits for every pending future: one whose polls keep failing must
    # fail (OperationError), not be left for a close that is waiting on it.
    ops = OpServer()
    failing = False

    async def poll(request: web.Request) -> web.Response:
        if failing:
            return web.json_response({"detail": "down"}, status=500)
        return await ops.poll(request)

    ops.stuck.add(1)
    app = web.Application()
    app.router.add_post("/imgs/{image_id}", ops.write)
    app.router.add_get("/ops/{op_id}", poll)
    url = await start(aiohttp_server, app)
    retry = RetryPolicy(attempts=2, backoff_initial=0.001, backoff_max=0.001)
    client = make_client(url, key=KEY, retry=retry)
    await client.open()
    fut = await client.images.create({"id": "a", "src": SRC})
    await asyncio.sleep(0.05)  # polled once or twice: running
    failing = True
    async with asyncio.timeout(10):
        await client.aclose(drain=True)
    with pytest.raises(OperationError, match="polling operation 1 failed"):
        fut.result_nowait()


async def test_a_fault_in_learning_loses_no_outcome_and_stops_no_poll_worker(
    aiohttp_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # If what the poller does with a finished status raises (a bug of ours),
    # the outcome the server proved is still delivered, later polls still run,
    # and a fault while following one op fails only that op, naming it.
    from wesog_async._schedule import Schedule

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError("learning broke")

    monkeypatch.setattr(Schedule, "learn", broken)
    ops = OpServer()
    url = await start(aiohttp_server, ops.app())
    async with WesogClient(KEY, base_url=url, max_polls_in_flight=1) as client:
        futures = [await client.images.create({"id": f"l{n}", "src": SRC}) for n in range(3)]
        async with asyncio.timeout(5):
            results = await asyncio.gather(*futures)
        assert [op.num_good for op in results] == [1, 1, 1]
        monkeypatch.setattr(Schedule, "seen_running", broken)
        ops.stuck.add(4)
        stuck = await client.images.create({"id": "s", "src": SRC})
        with pytest.raises(OperationError, match="following operation 4 failed"):
            async with asyncio.timeout(5):
                await stuck
        fine = await client.images.create({"id": "f", "src": SRC})
        async with asyncio.timeout(5):
            assert (await fine).num_good == 1
