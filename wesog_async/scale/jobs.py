"""Jobs: creating one (its shards and write options) and reading its status."""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs

from wesog_async.bulk.journal.base import DONE as ROW_DONE
from wesog_async.scale.db import DONE, LEASED, PENDING
from wesog_async.scale.shards import ShardSpec

if TYPE_CHECKING:
    import asyncpg

#: The record buckets of an ingestion report, as a shard row stores them.
BUCKETS: Final = ("applied", "failed", "invalid", "unknown", "not_sent")
_MODES: Final = ("create", "replace", "modify", "delete")


@attrs.frozen(kw_only=True)
class JobSpec:
    """How every worker sends a job's records (the ingestion options)."""

    mode: str = "create"
    strict: bool = False
    batch_size: int | None = None
    max_in_flight: int = 4
    max_pending_ops: int = 16

    def __attrs_post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {list(_MODES)}, got {self.mode!r}")

    def options(self) -> dict[str, Any]:
        """The options stored with the job (besides mode and strict)."""
        return {
            "batch_size": self.batch_size,
            "max_in_flight": self.max_in_flight,
            "max_pending_ops": self.max_pending_ops,
        }


class JobExistsError(ValueError):
    """A job of that name exists with other shards or options (``field`` says which)."""

    def __init__(self, job: str, field: str) -> None:
        self.job = job
        self.field = field
        super().__init__(
            f"job {job!r} already exists with other {field}: pick another job name, "
            "or run `wesog-async job status` on the existing one"
        )


def _shard_tuple(s: ShardSpec) -> tuple[str, str, str, int | None, int | None]:
    return (s.path, s.format, s.kind, s.start, s.stop)


async def create_job(
    pool: asyncpg.Pool, job: str, shards: Sequence[ShardSpec], spec: JobSpec
) -> bool:
    """Record ``job`` and its shards; True if created, False if an identical
    job already exists (a coordinator run twice). Raises
    :class:`JobExistsError` if the existing job differs."""
    if not job or "/" in job:
        raise ValueError(f"job name must be non-empty text without '/', got {job!r}")
    if not shards:
        raise ValueError(f"job {job!r} has no shards")
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            "INSERT INTO wesog_jobs (name, mode, strict, options) VALUES ($1, $2, $3, $4::jsonb) "
            "ON CONFLICT (name) DO NOTHING RETURNING true",
            job, spec.mode, spec.strict, json.dumps(spec.options()),
        )  # fmt: skip
        if inserted:
            await conn.executemany(
                "INSERT INTO wesog_shards (job, id, path, format, kind, start, stop) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                [(job, i, *_shard_tuple(s)) for i, s in enumerate(shards)],
            )
            return True
        row = await conn.fetchrow(
            "SELECT mode, strict, options FROM wesog_jobs WHERE name = $1", job
        )
        assert row is not None
        if (row["mode"], row["strict"], json.loads(row["options"])) != (
            spec.mode, spec.strict, spec.options(),
        ):  # fmt: skip
            raise JobExistsError(job, "options")
        stored = await conn.fetch(
            "SELECT path, format, kind, start, stop FROM wesog_shards WHERE job = $1 ORDER BY id",
            job,
        )
        if [tuple(r) for r in stored] != [_shard_tuple(s) for s in shards]:
            raise JobExistsError(job, "shards")
        return False


async def load_spec(conn: asyncpg.Connection | asyncpg.Pool, job: str) -> JobSpec:
    """The options of ``job``; ``LookupError`` if there is no such job."""
    row = await conn.fetchrow("SELECT mode, strict, options FROM wesog_jobs WHERE name = $1", job)
    if row is None:
        raise LookupError(
            f"no job {job!r} in this database: create it with `wesog-async job create`"
        )
    return JobSpec(mode=row["mode"], strict=row["strict"], **json.loads(row["options"]))


@attrs.frozen
class ShardStatus:
    """One shard as ``job status`` shows it."""

    shard_id: int
    describe: str
    state: str
    owner: str | None
    lease_left_s: float | None
    claims: int
    takeovers: int
    records_read: int
    report: dict[str, int] | None
    error: str | None
    #: For a shard not done: the records its journal holds as done so far.
    journaled: dict[str, int] | None = None


@attrs.frozen
class JobStatus:
    """Where a job stands: shards by state, records per bucket, throughput,
    and the stuck leases (expired, not yet taken over)."""

    job: str
    mode: str
    strict: bool
    shards: tuple[ShardStatus, ...]
    elapsed_s: float

    def count(self, state: str) -> int:
        """Shards in ``state`` (pending, leased or done)."""
        return sum(1 for s in self.shards if s.state == state)

    @property
    def stuck(self) -> tuple[ShardStatus, ...]:
        """Leased shards whose lease ran out: their worker died or hangs."""
        return tuple(
            s
            for s in self.shards
            if s.state == LEASED and s.lease_left_s is not None and s.lease_left_s < 0
        )

    @property
    def complete(self) -> bool:
        """Every shard is done."""
        return all(s.state == DONE for s in self.shards)

    def buckets(self) -> dict[str, int]:
        """Records per bucket, plus ``resent`` and ``total``: the reports of
        the done shards, and for the others (running, or given back) the
        batches their journals hold as done so far. A running shard's count
        is final once it is done (until then a record resent after an unknown
        outcome can show in both)."""
        out = dict.fromkeys((*BUCKETS, "resent", "total"), 0)
        for s in self.shards:
            counts = s.report if s.report is not None else s.journaled
            if counts is not None:
                for key in out:
                    out[key] += int(counts.get(key, 0))
        return out

    @property
    def records_read(self) -> int:
        """Records of done shards plus those read so far by running ones."""
        return sum(
            s.report.get("total", 0) if s.report is not None else s.records_read
            for s in self.shards
        )

    @property
    def records_per_s(self) -> float:
        """Records read per second since the first shard started."""
        return self.records_read / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able summary (``job status --json``)."""
        return {
            "job": self.job,
            "mode": self.mode,
            "strict": self.strict,
            "shards": {state: self.count(state) for state in (DONE, LEASED, PENDING)},
            "records": self.buckets(),
            "records_read": self.records_read,
            "elapsed_s": round(self.elapsed_s, 3),
            "records_per_s": round(self.records_per_s, 1),
            "complete": self.complete,
            "stuck": [
                {
                    "shard": s.shard_id,
                    "owner": s.owner,
                    "expired_s": round(-(s.lease_left_s or 0), 1),
                }
                for s in self.stuck
            ],
        }


def _entries(column: str) -> str:
    return f"COALESCE(json_array_length(b.{column}::json), 0)"


# The done batches of every shard not done yet, from the shards' journals
# (``{job}/{id}``, by their primary key): one indexed range per running shard.
_JOURNALED: Final = f"""
SELECT s.id,
    SUM(b.n_applied) AS applied, SUM({_entries("failed")}) AS failed,
    SUM({_entries("invalid")}) AS invalid, SUM({_entries("unknown")}) AS unknown,
    SUM(CASE WHEN b.resent THEN b.n_applied + {_entries("failed")} + {_entries("unknown")}
        ELSE 0 END) AS resent
FROM wesog_shards AS s
JOIN wesog_journal_batches AS b ON b.journal = s.job || '/' || s.id::text AND b.state = '{ROW_DONE}'
WHERE s.job = $1 AND s.state <> '{DONE}'
GROUP BY s.id
"""


def _journaled(row: asyncpg.Record) -> dict[str, int]:
    counts = {key: int(row[key]) for key in ("applied", "failed", "invalid", "unknown", "resent")}
    counts["not_sent"] = 0
    counts["total"] = sum(counts[key] for key in BUCKETS)
    return counts


async def job_status(conn: asyncpg.Connection | asyncpg.Pool, job: str) -> JobStatus:
    """The status of ``job``; ``LookupError`` if there is no such job."""
    spec = await load_spec(conn, job)
    rows = await conn.fetch(
        "SELECT id, path, kind, start, stop, state, owner, claims, takeovers, records_read, "
        "report, error, EXTRACT(EPOCH FROM (lease_until - now())) AS lease_left, "
        "started_at, finished_at FROM wesog_shards WHERE job = $1 ORDER BY id",
        job,
    )
    journaled = {r["id"]: _journaled(r) for r in await conn.fetch(_JOURNALED, job)}
    now = await conn.fetchval("SELECT now()")
    started = [r["started_at"] for r in rows if r["started_at"] is not None]
    elapsed = 0.0
    if started:
        finished = [r["finished_at"] for r in rows]
        end: datetime.datetime = max(f for f in finished if f is not None) if all(finished) else now
        elapsed = max(0.0, (end - min(started)).total_seconds())
    shards = tuple(
        ShardStatus(
            shard_id=r["id"],
            describe=ShardSpec(r["path"], "", r["kind"], r["start"], r["stop"]).describe(),
            state=r["state"],
            owner=r["owner"],
            lease_left_s=None if r["lease_left"] is None else float(r["lease_left"]),
            claims=r["claims"],
            takeovers=r["takeovers"],
            # The last checkpoint, or more if the journal already holds more.
            records_read=max(r["records_read"], journaled.get(r["id"], {}).get("total", 0)),
            report=None if r["report"] is None else json.loads(r["report"]),
            error=r["error"],
            journaled=None if r["state"] == DONE else journaled.get(r["id"]),
        )
        for r in rows
    )
    return JobStatus(job, spec.mode, spec.strict, shards, elapsed)


__all__ = [
    "BUCKETS",
    "JobExistsError",
    "JobSpec",
    "JobStatus",
    "ShardStatus",
    "create_job",
    "job_status",
    "load_spec",
]
