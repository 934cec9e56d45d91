"""The tables of scale-out jobs, beside the journal tables in the same database.

``wesog_jobs``: one row per job (its write options). ``wesog_shards``: one
row per shard, with its lease (``owner``, ``lease_until``, and ``epoch``,
which grows at every claim so that a worker whose lease was taken over can no
longer renew or complete it) and, once done, its report counts.
``wesog_cooldowns``: the shared cool-down of every worker sending to one
destination. Each shard's batches are in the journal named
``{job}/{shard id}`` (:mod:`wesog_async.bulk.journal.postgres`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from wesog_async.bulk.journal.postgres import is_postgres_dsn, redact_dsn, split_dsn
from wesog_async.bulk.journal.postgres_schema import ensure_schema as ensure_journal_schema

if TYPE_CHECKING:
    import asyncpg

PENDING: Final = "pending"
LEASED: Final = "leased"
DONE: Final = "done"
SHARD_STATES: Final = (PENDING, LEASED, DONE)
# Any fixed 64-bit number other than the journal's: serializes schema creation.
_SCHEMA_LOCK: Final = 0x5765736F674A6F62

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS wesog_jobs (
    name TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    strict BOOLEAN NOT NULL,
    options JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS wesog_shards (
    job TEXT NOT NULL REFERENCES wesog_jobs (name) ON DELETE CASCADE,
    id INTEGER NOT NULL,
    path TEXT NOT NULL,
    format TEXT NOT NULL,
    kind TEXT NOT NULL,
    start BIGINT,
    stop BIGINT,
    state TEXT NOT NULL DEFAULT 'pending',
    owner TEXT,
    lease_until TIMESTAMPTZ,
    epoch INTEGER NOT NULL DEFAULT 0,
    claims INTEGER NOT NULL DEFAULT 0,
    takeovers INTEGER NOT NULL DEFAULT 0,
    records_read BIGINT NOT NULL DEFAULT 0,
    report JSONB,
    error TEXT,
    started_at TIMESTAMPTZ,
    checkpoint_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    PRIMARY KEY (job, id)
);
CREATE INDEX IF NOT EXISTS wesog_shards_claim ON wesog_shards (job, state, lease_until);
CREATE TABLE IF NOT EXISTS wesog_cooldowns (
    scope TEXT PRIMARY KEY,
    cool_down_until TIMESTAMPTZ NOT NULL
);
"""


class DatabaseRefusedError(ValueError):
    """The job database answered but refused the connection (a role, password
    or database it does not have): a configuration error, not an outage."""


def check_dsn(dsn: str) -> str:
    """``dsn`` if it is a ``postgresql://`` URL (without a ``journal=`` part)."""
    if not is_postgres_dsn(dsn):
        raise ValueError(
            f"a scale-out job lives in PostgreSQL: expected a postgresql:// URL, "
            f"got {redact_dsn(str(dsn))!r}"
        )
    base, name = split_dsn(dsn)
    if name is not None:
        raise ValueError("a job's URL names no journal: each shard has its own")
    return base


def journal_name(job: str, shard_id: int) -> str:
    """The journal of one shard of ``job``."""
    return f"{job}/{shard_id}"


async def connect(dsn: str) -> asyncpg.Pool:
    """A small pool to the job database, with every table created."""
    try:
        import asyncpg  # noqa: PLC0415 - the optional postgres extra
    except ImportError:  # pragma: no cover - the extra is part of dev
        raise RuntimeError(
            'scale-out jobs need asyncpg: pip install "wesog-async[postgres]"'
        ) from None
    base = check_dsn(dsn)
    try:
        pool = await asyncpg.create_pool(base, min_size=1, max_size=4)
    except asyncpg.PostgresError as exc:  # reached, and refused: no such role, database, ...
        raise DatabaseRefusedError(
            f"the job database {redact_dsn(base)} refused the connection: {exc}"
        ) from exc
    try:
        async with pool.acquire() as conn:
            await ensure_journal_schema(conn)
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
                await conn.execute(_SCHEMA)
    except BaseException:
        await pool.close()
        raise
    return pool


__all__ = [
    "DONE",
    "LEASED",
    "PENDING",
    "SHARD_STATES",
    "DatabaseRefusedError",
    "check_dsn",
    "connect",
    "journal_name",
]
