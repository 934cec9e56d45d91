"""Every batch ends in the report, however its run ends: a bug while
submitting, following or classifying, a cancelled consumer, a client closed
mid-run (F27). Against the scripted server, which keeps the truth."""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from tests.conftest import FAST_POLL
from tests.scripted_bulk import ScriptedBulkServer, Step, check_truth
from wesog_async import (
    ClientClosedError,
    OperationFuture,
    RetryPolicy,
    WesogClient,
    ingest,
    ingest_all,
)
from wesog_async._submit import Submitter
from wesog_async.bulk.pipeline import STOP_GRACE_S

KEY = "scripted-key-0123"
RETRY = RetryPolicy(attempts=2, budget=2.0, backoff_initial=0.001, backoff_max=0.002)


class Counted:
    """An input that counts the records it gave out."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.read = 0
        self.ids = [f"r{i:04d}" for i in range(n)]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for image_id in self.ids:
            self.read += 1
            yield {"id": image_id, "src": f"https://img.example.com/{image_id}.jpg"}


class Broken:
    """A future whose await raises, or returns something that is no status."""

    def __init__(self, fut: OperationFuture, result: Any) -> None:
        self._fut, self._result = fut, result
        self.op_id, self.resent = fut.op_id, fut.resent

    def __await__(self) -> Generator[Any, None, Any]:
        yield from self._fut.__await__()
        if isinstance(self._result, BaseException):
            raise self._result
        return self._result


class Buggy:
    """A target whose submitter misbehaves for one batch (a bug of ours)."""

    def __init__(self, client: WesogClient, *, bad_batch: int, where: str) -> None:
        self.real: Submitter = client.submitter
        self.transport = self.real.transport
        self.batch_size, self.max_batch_items = 10, client.max_batch_items
        self.submitter = self
        self.calls = 0
        self.bad_batch, self.where = bad_batch, where

    async def submit(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        fut = await self.real.submit(*args, **kwargs)
        if self.calls != self.bad_batch:
            return fut
        if self.where == "submit":
            raise RuntimeError("bug after the request left")
        if self.where == "follow":
            return Broken(fut, KeyError("bug while following"))
        return Broken(fut, object())  # "classify": no status at all

    def follow(self, *args: Any, **kwargs: Any) -> OperationFuture:
        return self.real.follow(*args, **kwargs)


@pytest.mark.parametrize("where", ["submit", "follow", "classify"])
async def test_a_bug_in_one_batch_makes_that_batch_unknown_and_the_run_goes_on(
    where: str,
) -> None:
    source = Counted(50)
    async with ScriptedBulkServer() as server:
        async with WesogClient(api_key=KEY, base_url=server.url, poll=FAST_POLL) as client:
            target = Buggy(client, bad_batch=2, where=where)
            report = await ingest_all(target, source, max_in_flight=1)  # type: ignore[arg-type]
        check_truth(report, source.ids, server)
    assert report.total == source.read == 50 and not report.aborted
    assert report.unknown == 10 and report.applied == 40
    assert {e.image_id for e in report.unknown_items} == set(source.ids[10:20])
    if where != "submit":
        assert {e.op_id for e in report.unknown_items} == {2}  # the op id is kept


async def _stalled(n: int, stop: str) -> tuple[Any, Counted, ScriptedBulkServer]:
    source = Counted(n)
    server = ScriptedBulkServer([Step(status="never")] * 1000)
    async with server:
        client = WesogClient(api_key=KEY, base_url=server.url, poll=FAST_POLL, retry=RETRY)
        await client.open()
        stream = ingest(client, source, batch_size=10, max_pending_ops=4)

        async def consume() -> None:
            async for _ in stream:
                pass

        task = asyncio.create_task(consume())
        while server.writes < 4:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)
        started = asyncio.get_running_loop().time()
        if stop == "cancel":
            task.cancel()
        else:
            await client.aclose()
        with pytest.raises((asyncio.CancelledError, ClientClosedError)):
            await task
        # The stop's grace is for requests on the wire, never for operations
        # being followed (a batch's task follows its own operation).
        assert asyncio.get_running_loop().time() - started < STOP_GRACE_S / 2
        await stream.aclose()
        await client.aclose()
        return stream.report, source, server


@pytest.mark.parametrize("stop", ["cancel", "close"])
async def test_a_stopped_run_counts_every_record_read_and_keeps_accepted_batches(
    stop: str,
) -> None:
    report, source, server = await _stalled(500, stop)
    assert report.total == source.read  # nothing read is missing from the report
    check_truth(report, source.ids[: source.read], server)
    # The four accepted batches may be applied: unknown with their op ids, never not_sent.
    assert report.unknown == 40 and {e.op_id for e in report.unknown_items} == {1, 2, 3, 4}
    assert report.not_sent == report.total - 40
    if stop == "close":
        assert report.aborted and isinstance(report.error, ClientClosedError)


async def test_a_close_while_a_request_is_on_the_wire_is_unknown_not_unsent() -> None:
    source = Counted(20)
    async with ScriptedBulkServer([Step(), Step("slow_accept", delay=0.3)]) as server:
        client = WesogClient(api_key=KEY, base_url=server.url, poll=FAST_POLL, retry=RETRY)
        await client.open()

        async def close_soon() -> None:
            while server.writes < 2:
                await asyncio.sleep(0.002)
            await client.aclose()

        closer = asyncio.create_task(close_soon())
        report = await ingest_all(client, source, batch_size=10, max_in_flight=1)
        await closer
    check_truth(report, source.ids, server)
    assert report.total == 20 and report.not_sent == 0
    on_the_wire = [e for e in report.unknown_items if e.image_id in source.ids[10:]]
    assert len(on_the_wire) == 10 and report.aborted
