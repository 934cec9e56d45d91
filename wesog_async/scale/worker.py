"""The worker loop: claim a shard, ingest it through its own journal, repeat.

Each shard is one ordinary journaled ingestion (``client.images.ingest_all``
with a :class:`~wesog_async.bulk.journal.postgres.PostgresJournal` named after
the shard). A worker that takes over a shard whose lease ran out runs the
same ingestion again with the same journal: what the dead worker's journal
says is done is counted, the operations it had accepted are followed again,
and only what never got an op id is sent again (not at all for ``strict``
writes, which stay unknown) - exactly a local resume.

While a shard runs, its lease is renewed every third of ``lease_s`` (at
least every 2 s), with the records read so far (a checkpoint for ``job
status``). The shard's journal is fenced by the lease: the ``submitting``
insert that comes before each batch is sent checks, in the same transaction,
that the lease's epoch is still the shard's (:func:`.leases.fence`). A worker
that stalled past its lease (a GC pause, SIGSTOP, a frozen VM) and was taken
over therefore sends nothing more: its next batch is refused before it
leaves, and it stops the shard at once and counts it ``lost``. What it had
already sent stays journaled (its op ids are recorded and followed for the
grace period, then by the new owner), and the new owner resends only what
never got an op id, reported ``resent``. A worker that cannot renew (its
lease was taken over, or the database is unreachable for most of a lease)
stops the shard in the same way, and the epoch keeps a stale worker from
marking the shard done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import attrs

from wesog_async.bulk.journal.postgres import PostgresJournal
from wesog_async.scale import leases
from wesog_async.scale.cooldown import SharedCoolDown
from wesog_async.scale.db import connect, journal_name
from wesog_async.scale.jobs import BUCKETS, JobSpec, load_spec
from wesog_async.scale.shards import open_shard

if TYPE_CHECKING:
    import asyncpg

    from wesog_async import WesogClient

logger = logging.getLogger("wesog_async.scale")

DEFAULT_LEASE_S: Final = 30.0
# Renewing this often leaves two missed renewals before the lease runs out;
# at least every few seconds, so that `job status` shows fresh progress.
_RENEW_FRACTION: Final = 1 / 3
_CHECKPOINT_MAX_S: Final = 2.0
# Give up a shard when no renewal succeeded for this part of a lease.
_SELF_FENCE_FRACTION: Final = 0.75
# With nothing free, look again this often (the others may finish, or die).
_IDLE_POLL_S: Final = 0.25


class ShardError(RuntimeError):
    """A shard's ingestion stopped on a fatal error (it was given back)."""

    def __init__(self, job: str, shard_id: int, error: BaseException) -> None:
        self.job = job
        self.shard_id = shard_id
        self.error = error
        super().__init__(f"job {job!r} shard {shard_id}: {type(error).__name__}: {error}")


@attrs.define
class WorkerReport:
    """What one worker did: shards finished (``takeovers`` of them taken
    over from a dead worker), leases lost, and its records per bucket."""

    worker_id: str
    shards: list[int] = attrs.field(factory=list)
    takeovers: int = 0
    lost: int = 0
    records: dict[str, int] = attrs.field(
        factory=lambda: dict.fromkeys((*BUCKETS, "resent", "total"), 0)
    )
    elapsed: float = 0.0


def default_worker_id() -> str:
    """``host:pid:random``: unique across machines and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def report_counts(report: Any) -> dict[str, int]:
    """The counts of an ingestion report a shard row keeps."""
    return {key: int(getattr(report, key)) for key in (*BUCKETS, "resent", "resumed", "total")}


def destination_scope(client: WesogClient) -> str:
    """Who shares a cool-down: one base URL and tenant (a hash, never the key)."""
    transport = client.submitter.transport
    return f"{transport.base_url} {transport.tenant_fingerprint()}"


async def run_shard(
    client: WesogClient,
    pool: asyncpg.Pool,
    dsn: str,
    lease: leases.Lease,
    spec: JobSpec,
    *,
    lease_s: float = DEFAULT_LEASE_S,
) -> dict[str, int] | None:
    """Ingest one leased shard; its counts, or None if the lease was lost (a
    renewal or a fenced journal insert was refused: the shard was stopped)."""
    read = 0

    def on_progress(progress: Any) -> None:
        nonlocal read
        read = progress.read

    ingest: asyncio.Task[Any] | None = None
    lost = False

    def lease_lost() -> None:  # a fenced journal insert was refused: stop at once
        nonlocal lost
        if not lost:
            logger.warning(
                "lease of shard %d was taken over (a journal write was refused): stopping it, "
                "nothing more is sent",
                lease.shard_id,
            )
        lost = True
        if ingest is not None:
            ingest.cancel()

    journal = PostgresJournal(
        dsn, name=journal_name(lease.job, lease.shard_id), fence=leases.fence(lease, lease_lost)
    )
    try:
        source = open_shard(lease.shard)
    except (OSError, ValueError) as exc:  # e.g. the input is not at that path on this machine
        with contextlib.suppress(Exception):
            await leases.release(pool, lease, f"{type(exc).__name__}: {exc}")
        raise ShardError(lease.job, lease.shard_id, exc) from exc
    shard_task = asyncio.get_running_loop().create_task(
        client.images.ingest_all(
            source,
            mode=spec.mode,  # type: ignore[arg-type]
            strict=spec.strict,
            batch_size=spec.batch_size,
            max_in_flight=spec.max_in_flight,
            max_pending_ops=spec.max_pending_ops,
            journal=journal,
            on_progress=on_progress,
        ),
        name=f"wesog-shard-{lease.job}/{lease.shard_id}",
    )
    ingest = shard_task

    async def renew_loop() -> None:
        nonlocal lost
        last_ok = time.monotonic()
        while not shard_task.done():
            await asyncio.sleep(min(lease_s * _RENEW_FRACTION, _CHECKPOINT_MAX_S))
            try:
                if await leases.renew(pool, lease, lease_s, read):
                    last_ok = time.monotonic()
                    continue
                logger.warning("lease of shard %d was taken over: stopping it", lease.shard_id)
            except Exception as exc:
                if time.monotonic() - last_ok < lease_s * _SELF_FENCE_FRACTION:
                    logger.warning("lease renewal failed (%s); retrying", exc)
                    continue
                logger.error("no lease renewal for most of a lease (%s): stopping it", exc)
            lost = True
            shard_task.cancel()
            return

    renewer = asyncio.get_running_loop().create_task(renew_loop())
    try:
        report = await shard_task
    except asyncio.CancelledError:
        if lost:
            return None
        raise
    except leases.LeaseLostError:
        lost = True
        return None
    except BaseException as exc:
        with contextlib.suppress(Exception):
            await leases.release(pool, lease, f"{type(exc).__name__}: {exc}")
        raise ShardError(lease.job, lease.shard_id, exc) from exc
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        source.close()
    if report.aborted:
        error = report.error or RuntimeError("aborted")
        await leases.release(pool, lease, f"{type(error).__name__}: {error}")
        raise ShardError(lease.job, lease.shard_id, error)
    counts = report_counts(report)
    if not await leases.complete(pool, lease, counts):
        return None
    return counts


async def run_worker(
    client: WesogClient,
    dsn: str,
    job: str,
    *,
    worker_id: str | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    wait_for_others: bool = True,
    on_shard: Callable[[int, dict[str, int]], None] | None = None,
) -> WorkerReport:
    """Drain ``job``: claim and ingest shards until every shard is done.

    With ``wait_for_others`` (the default) the worker stays while other
    workers hold leases, to take over any whose lease runs out; otherwise it
    returns as soon as nothing is free. ``on_shard(shard_id, counts)`` is
    called as each shard finishes. Raises :class:`ShardError` when a shard
    stops on a fatal error (bad key, unreachable server, another input).
    """
    worker = worker_id or default_worker_id()
    out = WorkerReport(worker)
    t0 = time.perf_counter()
    pool = await connect(dsn)
    try:
        spec = await load_spec(pool, job)
        async with SharedCoolDown(pool, destination_scope(client), client.submitter.transport):
            while True:
                lease = await leases.claim(pool, job, worker, lease_s)
                if lease is None:
                    left, next_expiry = await leases.unfinished(pool, job)
                    if left == 0 or not wait_for_others:
                        break
                    wait = _IDLE_POLL_S if next_expiry is None else next_expiry + 0.05
                    await asyncio.sleep(min(max(wait, 0.02), _IDLE_POLL_S))
                    continue
                if lease.takeover:
                    logger.warning("taking over shard %d of %r", lease.shard_id, job)
                counts = await run_shard(client, pool, dsn, lease, spec, lease_s=lease_s)
                if counts is None:
                    out.lost += 1
                    continue
                out.shards.append(lease.shard_id)
                out.takeovers += lease.takeover
                for key in out.records:
                    out.records[key] += counts.get(key, 0)
                if on_shard is not None:
                    on_shard(lease.shard_id, counts)
    finally:
        await pool.close()
        out.elapsed = time.perf_counter() - t0
    return out


__all__ = [
    "DEFAULT_LEASE_S",
    "ShardError",
    "WorkerReport",
    "default_worker_id",
    "destination_scope",
    "report_counts",
    "run_shard",
    "run_worker",
]
