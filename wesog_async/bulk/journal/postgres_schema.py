"""The PostgreSQL journal's tables: their SQL, their creation, and a row's columns.

:class:`~wesog_async.bulk.journal.postgres.PostgresJournal` reads and writes
these two tables (``wesog_journals`` and ``wesog_journal_batches``, see
:mod:`wesog_async.bulk.journal.postgres`); a scale-out job's database creates
them too (:mod:`wesog_async.scale.db`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from wesog_async.bulk.journal.base import (
    ROW_COLUMNS,
    JournalRow,
    encode_text,
)

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

SCHEMA_VERSION: Final = 1
# Any fixed 64-bit number: serializes schema creation by concurrent workers.
_SCHEMA_LOCK: Final = 0x5765736F674A6E6C

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS wesog_journals (
    name TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    meta JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS wesog_journal_batches (
    journal TEXT NOT NULL REFERENCES wesog_journals (name) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    start BIGINT NOT NULL,
    stop BIGINT NOT NULL,
    positions TEXT,
    state TEXT NOT NULL,
    op_id BIGINT,
    image_ids TEXT,
    fingerprint TEXT,
    invalid TEXT,
    failed TEXT,
    unknown TEXT,
    n_applied INTEGER NOT NULL DEFAULT 0,
    resent BOOLEAN NOT NULL DEFAULT false,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (journal, id)
);
"""


def insert_args(name: str, r: JournalRow) -> tuple[Any, ...]:
    return (
        name, r.row_id, r.start, r.stop, encode_text(r.positions), r.state, r.op_id,
        encode_text(r.image_ids), r.fingerprint, encode_text(r.invalid), encode_text(r.failed),
        encode_text(r.unknown), r.n_applied, r.resent,
    )  # fmt: skip


INSERT: Final = (
    f"INSERT INTO wesog_journal_batches (journal, {ROW_COLUMNS}) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
)


async def ensure_schema(conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any]) -> None:
    """Create the journal tables if missing (safe when many workers start at once)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
        await conn.execute(_SCHEMA)


__all__ = [
    "INSERT",
    "SCHEMA_VERSION",
    "ensure_schema",
    "insert_args",
]
