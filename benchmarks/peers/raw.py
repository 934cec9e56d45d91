"""P0: raw aiohttp, the physical limit of this stack (and P0-oracle, the polling floor).

A minimal loop: plain dicts, orjson, a bounded queue of batches feeding
``in_flight`` senders, the same endpoints and batch sizes as wesog_async, and
each operation polled on a fixed schedule (:data:`~benchmarks.peers.base.FIXED_SCHEDULE`).
Just enough retrying to survive the W6 faults (429/503 with ``Retry-After``,
connection resets, malformed poll bodies) — no models, no validation.

P0-oracle polls each operation exactly once, when the emulator says it
finished (it reads finish times from the benchmark's side channel, which is
not an API route and is not counted): the floor for polls per operation.

The HTTP calls go through a tiny :class:`Transport` so that P3 (httpx) runs the
very same loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp
import orjson

from benchmarks.harness import BENCH_PREFIX
from benchmarks.peers.base import (
    RUN_DEADLINE_S,
    Job,
    PeerResult,
    chunks,
    fixed_delay,
    now,
    record,
    records,
    staggered_start,
)

WRITE_PARAMS = {"wait": "false", "strict": "false"}
_MAX_ATTEMPTS = 8
_MAX_POLLS = 10_000
_BACKOFF_S = 0.05
_RETRY_STATUSES = frozenset({429, 502, 503, 504})

Reply = tuple[int, bytes, str | None]


class Transport(Protocol):
    """One HTTP call: ``(status, body, Retry-After)``; raises ``OSError``-like on
    transport failures (see :attr:`errors`)."""

    errors: tuple[type[BaseException], ...]

    async def request(
        self, method: str, path: str, params: dict[str, str] | None, body: bytes | None
    ) -> Reply: ...

    async def aclose(self) -> None: ...


class AiohttpTransport:
    """The P0 transport: one ``aiohttp.ClientSession``."""

    errors: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, OSError)

    def __init__(self, url: str, api_key: str, *, limit: int) -> None:
        self._url = url
        self._headers = {"API-Key": api_key, "Content-Type": "application/json"}
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit),
            timeout=aiohttp.ClientTimeout(total=60),
        )

    async def request(
        self, method: str, path: str, params: dict[str, str] | None, body: bytes | None
    ) -> Reply:
        async with self._session.request(
            method, self._url + path, params=params, data=body, headers=self._headers
        ) as resp:
            return resp.status, await resp.read(), resp.headers.get("Retry-After")

    async def aclose(self) -> None:
        await self._session.close()


class RawPeer:
    """The P0 loop over a :class:`Transport`; ``oracle`` makes it P0-oracle."""

    def __init__(
        self,
        job: Job,
        transport: Transport,
        *,
        oracle: bool = False,
        dumps: Callable[[Any], bytes] = orjson.dumps,
        loads: Callable[[bytes], Any] = orjson.loads,
    ) -> None:
        self.job = job
        self.http = transport
        self.oracle = oracle
        self.dumps = dumps
        self.loads = loads
        self.result = PeerResult()
        self._followers: set[asyncio.Task[None]] = set()
        self._finished_seen: set[int] = set()
        self._finish_waiters: dict[int, asyncio.Future[None]] = {}

    # -- HTTP with the bare minimum of retrying ------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        body: bytes | None,
        items: int = 0,
    ) -> tuple[int, bytes] | None:
        """``(status, body)`` of the first non-retryable answer; ``None`` when every
        attempt failed. A write of ``items`` records sent again after a transport
        failure (which may have left it applied) counts them in ``records_resent``."""
        resent = False
        for attempt in range(_MAX_ATTEMPTS):
            try:
                status, data, retry_after = await self.http.request(method, path, params, body)
            except self.http.errors:
                if method != "GET" and not resent:
                    resent = True
                    self.result.records_resent += items
                await asyncio.sleep(_BACKOFF_S * 2**attempt)
                continue
            if status not in _RETRY_STATUSES:
                return status, data
            wait = _BACKOFF_S * 2**attempt
            if retry_after is not None:
                with contextlib.suppress(ValueError):
                    wait = float(retry_after)
            await asyncio.sleep(wait)
        return None

    # -- following one operation ------------------------------------------------------

    async def poll(self, op_id: int) -> dict[str, Any] | None:
        self.result.polls += 1
        reply = await self.call("GET", f"/ops/{op_id}", None, None)
        if reply is None or reply[0] != 200:
            return None
        try:
            op: dict[str, Any] = self.loads(reply[1])
        except ValueError:
            return None  # a malformed body: poll again on the schedule
        return op if isinstance(op, dict) else None

    async def follow(self, op_id: int, items: int) -> None:
        op: dict[str, Any] | None = None
        if self.oracle:
            await self._wait_finished(op_id)
            op = await self.poll(op_id)
        for n in range(_MAX_POLLS):
            if op is not None and op.get("is_finished") is True:
                break
            await asyncio.sleep(fixed_delay(n, self.job.poll_schedule))
            op = await self.poll(op_id)
        self.done(op_id, items, op)

    def done(self, op_id: int, items: int, op: dict[str, Any] | None) -> None:
        result = self.result
        result.observed[op_id] = now()
        if op is None or op.get("is_finished") is not True:
            result.records_unknown += items
            return
        result.records_good += op["num_good"]
        result.records_bad += op["num_bad"]

    async def _wait_finished(self, op_id: int) -> None:
        if op_id in self._finished_seen:
            return
        fut = asyncio.get_running_loop().create_future()
        self._finish_waiters[op_id] = fut
        await fut

    async def _side_channel(self) -> None:
        """P0-oracle: learn finish times from the emulator (not an API route)."""
        async with aiohttp.ClientSession() as session:
            url = self.job.url + BENCH_PREFIX + "finished"
            async with session.get(url, params={"since": "1000000000"}) as resp:
                cursor = (await resp.json())["next"]
            while True:
                params = {"since": str(cursor), "timeout": "1"}
                async with session.get(url, params=params) as resp:
                    data = await resp.json()
                cursor = data["next"]
                for op_id, _t in data["finished"]:
                    self._finished_seen.add(op_id)
                    fut = self._finish_waiters.pop(op_id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(None)

    # -- submitting -------------------------------------------------------------------

    async def submit(self, path: str, body: bytes, items: int) -> asyncio.Task[None] | None:
        """Send one write; on success follow its operation in a task of its own
        (returned; ``None`` when there is nothing left to follow)."""
        self.result.records_sent += items
        reply = await self.call("POST", path, WRITE_PARAMS, body, items)
        if reply is None or reply[0] not in (200, 202):
            self.result.records_unknown += items
            return None
        op = self.loads(reply[1])
        op_id = op["op_id"]
        self.result.ops += 1
        if op.get("is_finished") is True:
            self.done(op_id, items, op)
            return None
        task = asyncio.create_task(self.follow(op_id, items))
        self._followers.add(task)
        task.add_done_callback(self._followers.discard)
        return task

    async def run_bulk(self) -> None:
        job = self.job
        queue: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(job.in_flight)
        pending = asyncio.Semaphore(job.max_pending_ops)

        async def produce() -> None:
            for batch in chunks(records(job.n_records, job.prefix, wide=job.wide), job.batch_size):
                await queue.put(batch)
            for _ in range(job.in_flight):
                await queue.put(None)

        async def send() -> None:
            while (batch := await queue.get()) is not None:
                await pending.acquire()
                follower = await self.submit("/imgs", self.dumps(batch), len(batch))
                if follower is None:
                    pending.release()
                else:
                    follower.add_done_callback(lambda _t: pending.release())

        await asyncio.gather(produce(), *(send() for _ in range(job.in_flight)))
        if job.on_all_submitted is not None:
            await job.on_all_submitted()
        await self._drain()

    async def run_singles(self) -> None:
        job = self.job
        submitted = itertools.count(1)

        async def one(i: int) -> None:
            await staggered_start(job, i)
            rec = record(i, job.prefix)
            image_id = rec.pop("id")
            await self.submit(f"/imgs/{image_id}", self.dumps(rec), 1)
            if next(submitted) == job.n_records and job.on_all_submitted is not None:
                await job.on_all_submitted()

        await asyncio.gather(*(one(i) for i in range(job.n_records)))
        await self._drain()

    async def _drain(self) -> None:
        while self._followers:
            await asyncio.gather(*list(self._followers))

    async def run(self) -> PeerResult:
        side = asyncio.create_task(self._side_channel()) if self.oracle else None
        companion = asyncio.create_task(self.job.companion()) if self.job.companion else None
        try:
            async with asyncio.timeout(RUN_DEADLINE_S):
                if side is not None:
                    await asyncio.sleep(0.05)  # let the side channel take its cursor
                if self.job.kind == "bulk":
                    await self.run_bulk()
                else:
                    await self.run_singles()
        finally:
            for task in (side, companion, *self._followers):
                if task is not None:
                    task.cancel()
            await asyncio.gather(
                *(t for t in (side, companion, *self._followers) if t is not None),
                return_exceptions=True,
            )
            await self.http.aclose()
        return self.result


#: The same connection limit as wesog_async's default.
CONNECTIONS = 64


async def p0(job: Job) -> PeerResult:
    """P0: raw aiohttp + orjson, fixed poll schedule."""
    return await RawPeer(job, AiohttpTransport(job.url, job.api_key, limit=CONNECTIONS)).run()


async def p0_oracle(job: Job) -> PeerResult:
    """P0-oracle: P0 that polls once per operation, at its known finish time."""
    transport = AiohttpTransport(job.url, job.api_key, limit=CONNECTIONS)
    return await RawPeer(job, transport, oracle=True).run()
