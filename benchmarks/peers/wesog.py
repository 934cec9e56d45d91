"""P1: wesog_async with default settings (bulk through ``client.images.ingest``),
and the W8 load test's client. Public API only."""

from __future__ import annotations

import asyncio
import itertools

import attrs

from benchmarks.peers.base import (
    RUN_DEADLINE_S,
    Job,
    PeerResult,
    now,
    record,
    records,
    staggered_start,
)
from wesog_async import OutcomeUnknownError, WesogClient, WesogError


def bulk_available() -> bool:
    """Whether this wesog_async has streaming bulk ingestion (public ``ingest``)."""
    import wesog_async

    return hasattr(wesog_async, "ingest")


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
        raise RuntimeError("this wesog_async has no bulk ingestion (wesog_async.ingest)")
    stream = client.images.ingest(
        records(job.n_records, job.prefix, wide=job.wide),
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


@attrs.define
class LoadResult:
    """What each write of the W8 load test ended as, by image id (client side)."""

    good: set[str] = attrs.field(factory=set)
    bad: set[str] = attrs.field(factory=set)
    #: ``OutcomeUnknownError`` raised by ``create``.
    unknown: set[str] = attrs.field(factory=set)
    #: Writes whose future says ``resent`` (sent again after an ambiguous failure).
    resent: set[str] = attrs.field(factory=set)
    #: Any other failure of ``create`` or of awaiting its operation: id -> error type.
    failed: dict[str, str] = attrs.field(factory=dict)
    client_stats: dict[str, int] = attrs.field(factory=dict)
    error: str | None = None


async def p1_load(job: Job, *, strict: bool, max_connections: int, timeout: float) -> LoadResult:
    """W8: ``job.n_records`` concurrent single creates, each awaited, through one
    client with ``max_connections`` connections and a per-attempt ``timeout``
    (public API only)."""
    out = LoadResult()

    async def one(client: WesogClient, i: int) -> None:
        rec = record(i, job.prefix)
        image_id = rec["id"]
        try:
            fut = await client.images.create(rec, strict=strict)
        except OutcomeUnknownError:
            out.unknown.add(image_id)
            return
        except Exception as exc:  # every other failure is counted, by type
            out.failed[image_id] = _kind(exc, "create")
            return
        if fut.resent:
            out.resent.add(image_id)
        try:
            op = await fut
        except Exception as exc:
            out.failed[image_id] = _kind(exc, "await")
            return
        (out.good if op.num_good == 1 else out.bad).add(image_id)

    async with asyncio.timeout(RUN_DEADLINE_S):
        client = WesogClient(
            api_key=job.api_key, base_url=job.url, max_connections=max_connections, timeout=timeout
        )
        async with client:
            await asyncio.gather(*(one(client, i) for i in range(job.n_records)))
            out.client_stats = client.stats()
    return out


def _kind(exc: BaseException, where: str) -> str:
    name = type(exc).__name__
    return (
        f"{where}: {name}" if isinstance(exc, WesogError) else f"{where}: {name} (not a WesogError)"
    )
