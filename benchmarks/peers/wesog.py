"""P1: wesog_async with default settings (bulk through ``client.images.ingest``)."""

from __future__ import annotations

import asyncio
import itertools

from benchmarks.peers.base import (
    RUN_DEADLINE_S,
    Job,
    PeerResult,
    now,
    record,
    records,
    staggered_start,
)
from wesog_async import WesogClient


def bulk_available() -> bool:
    """Whether this wesog_async has streaming bulk ingestion (``_bulk``)."""
    try:
        import wesog_async._bulk  # noqa: F401
    except ImportError:
        return False
    return True


async def p1(job: Job) -> PeerResult:
    """wesog_async, default client settings; the job's batch size and bounds."""
    result = PeerResult()
    companion = asyncio.create_task(job.companion()) if job.companion else None
    try:
        async with asyncio.timeout(RUN_DEADLINE_S):
            async with WesogClient(api_key=job.api_key, base_url=job.url) as client:
                if job.kind == "bulk":
                    await _bulk(client, job, result)
                else:
                    await _singles(client, job, result)
                stats = client.stats()
        result.polls = stats["polls"]
        result.extra["client_stats"] = stats
        if job.kind == "bulk":
            # Each ambiguous resend is one batch POST of at most batch_size records
            # (every W6 batch is full: an exact count there).
            result.records_resent = stats["ambiguous_resends"] * job.batch_size
    finally:
        if companion is not None:
            companion.cancel()
            await asyncio.gather(companion, return_exceptions=True)
    return result


async def _bulk(client: WesogClient, job: Job, result: PeerResult) -> None:
    if not bulk_available():
        raise RuntimeError("this wesog_async has no bulk ingestion (wesog_async._bulk)")
    stream = client.images.ingest(
        records(job.n_records, job.prefix),
        mode="create",
        batch_size=job.batch_size,
        max_in_flight=job.in_flight,
        max_pending_ops=job.max_pending_ops,
    )
    async for outcome in stream:
        if outcome.op_id is not None:
            result.observed[outcome.op_id] = now()
            result.ops += 1
        result.records_good += len(outcome.applied_ids)
        result.records_bad += len(outcome.failed) + len(outcome.invalid) + len(outcome.not_sent)
        result.records_unknown += len(outcome.unknown)
    if job.on_all_submitted is not None:
        await job.on_all_submitted()


async def _singles(client: WesogClient, job: Job, result: PeerResult) -> None:
    submitted = itertools.count(1)

    async def one(i: int) -> None:
        await staggered_start(job, i)
        fut = await client.images.create(record(i, job.prefix))
        if next(submitted) == job.n_records and job.on_all_submitted is not None:
            await job.on_all_submitted()
        if fut.resent:
            result.records_resent += 1
        op = await fut
        if op.op_id is not None:
            result.observed[op.op_id] = now()
        result.ops += 1
        result.records_good += op.num_good
        result.records_bad += op.num_bad

    await asyncio.gather(*(one(i) for i in range(job.n_records)))
