"""Shard leases: claim (``FOR UPDATE SKIP LOCKED``), renew, complete, release.

A claim takes a pending shard, or a leased one whose lease ran out (a
takeover), and raises the shard's ``epoch``. Renewing, completing and
releasing all require the epoch of the claim, so a worker whose lease was
taken over learns it at its next renewal and stops, and can never mark the
shard done behind the new owner's back. The shard's journal is fenced by the
lease too (:func:`fence`): every journal insert, which comes before each batch
is sent, checks the epoch in its own transaction, so a worker that stalled
past its lease and was taken over sends nothing more. Lease times are the
database's clock, never a worker's.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import attrs

from wesog_async.scale.db import DONE, LEASED, PENDING
from wesog_async.scale.shards import ShardSpec

if TYPE_CHECKING:
    import asyncpg

_CLAIM: Final = f"""
UPDATE wesog_shards AS s
SET state = '{LEASED}', owner = $2, lease_until = now() + make_interval(secs => $3),
    epoch = s.epoch + 1, claims = s.claims + 1,
    takeovers = s.takeovers + (CASE WHEN s.state = '{LEASED}' THEN 1 ELSE 0 END),
    records_read = 0, started_at = COALESCE(s.started_at, now()), checkpoint_at = now()
FROM (
    SELECT job, id, state AS was FROM wesog_shards
    WHERE job = $1 AND (state = '{PENDING}' OR (state = '{LEASED}' AND lease_until < now()))
    ORDER BY id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
) AS free
WHERE s.job = free.job AND s.id = free.id
RETURNING s.id, s.path, s.format, s.kind, s.start, s.stop, s.epoch, free.was
"""


@attrs.frozen
class Lease:
    """A worker's claim on one shard; ``takeover`` when it took the shard
    from a worker whose lease ran out."""

    job: str
    shard_id: int
    epoch: int
    owner: str
    shard: ShardSpec
    takeover: bool


class LeaseLostError(RuntimeError):
    """A shard's lease is no longer this worker's (it ran out and another
    worker took the shard over): the journal write that found out was refused."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        super().__init__(
            f"lost the lease of job {lease.job!r} shard {lease.shard_id} (epoch {lease.epoch}) "
            "to another worker: nothing more is sent for it"
        )


_HELD: Final = (
    "SELECT true FROM wesog_shards "
    f"WHERE job = $1 AND id = $2 AND epoch = $3 AND state = '{LEASED}' FOR SHARE"
)


def fence(
    lease: Lease, on_lost: Callable[[], None] | None = None
) -> Callable[[asyncpg.Connection[Any]], Awaitable[None]]:
    """A :class:`~wesog_async.bulk.journal.postgres.PostgresJournal` fence for
    ``lease``: in the write's transaction, check that the shard is still
    leased under the claim's epoch (``FOR SHARE``, so a takeover waits for the
    write to commit, or the write sees the takeover), else call ``on_lost``
    and raise :class:`LeaseLostError`, which refuses the write."""

    async def check(conn: asyncpg.Connection[Any]) -> None:
        if not await conn.fetchval(_HELD, lease.job, lease.shard_id, lease.epoch):
            if on_lost is not None:
                on_lost()
            raise LeaseLostError(lease)

    return check


async def claim(pool: asyncpg.Pool, job: str, owner: str, lease_s: float) -> Lease | None:
    """Lease the next free shard of ``job`` for ``lease_s`` seconds, or None."""
    row = await pool.fetchrow(_CLAIM, job, owner, float(lease_s))
    if row is None:
        return None
    spec = ShardSpec(row["path"], row["format"], row["kind"], row["start"], row["stop"])
    return Lease(job, row["id"], row["epoch"], owner, spec, row["was"] == LEASED)


async def renew(pool: asyncpg.Pool, lease: Lease, lease_s: float, records_read: int) -> bool:
    """Extend the lease (a checkpoint); False if it was lost to a takeover."""
    done = await pool.fetchval(
        "UPDATE wesog_shards SET lease_until = now() + make_interval(secs => $4), "
        "records_read = $5, checkpoint_at = now() "
        f"WHERE job = $1 AND id = $2 AND epoch = $3 AND state = '{LEASED}' RETURNING true",
        lease.job, lease.shard_id, lease.epoch, float(lease_s), records_read,
    )  # fmt: skip
    return bool(done)


async def complete(pool: asyncpg.Pool, lease: Lease, report: dict[str, Any]) -> bool:
    """Mark the shard done with its report counts; False if the lease was lost."""
    done = await pool.fetchval(
        f"UPDATE wesog_shards SET state = '{DONE}', lease_until = NULL, report = $4::jsonb, "
        "records_read = $5, error = NULL, finished_at = now(), checkpoint_at = now() "
        f"WHERE job = $1 AND id = $2 AND epoch = $3 AND state = '{LEASED}' RETURNING true",
        lease.job, lease.shard_id, lease.epoch, json.dumps(report), int(report.get("total", 0)),
    )  # fmt: skip
    return bool(done)


async def release(pool: asyncpg.Pool, lease: Lease, error: str | None) -> bool:
    """Give the shard back (pending, for any worker), noting ``error``."""
    done = await pool.fetchval(
        f"UPDATE wesog_shards SET state = '{PENDING}', owner = NULL, lease_until = NULL, "
        "error = $4, checkpoint_at = now() "
        f"WHERE job = $1 AND id = $2 AND epoch = $3 AND state = '{LEASED}' RETURNING true",
        lease.job, lease.shard_id, lease.epoch, error,
    )  # fmt: skip
    return bool(done)


async def unfinished(pool: asyncpg.Pool, job: str) -> tuple[int, float | None]:
    """Shards not done, and the seconds until the first running lease runs out."""
    row = await pool.fetchrow(
        f"SELECT COUNT(*) FILTER (WHERE state <> '{DONE}') AS open, "
        f"MIN(EXTRACT(EPOCH FROM (lease_until - now()))) FILTER (WHERE state = '{LEASED}') "
        "AS next_expiry FROM wesog_shards WHERE job = $1",
        job,
    )
    assert row is not None
    expiry = row["next_expiry"]
    return int(row["open"]), None if expiry is None else float(expiry)


__all__ = [
    "Lease",
    "LeaseLostError",
    "claim",
    "complete",
    "fence",
    "release",
    "renew",
    "unfinished",
]
